"""The seed tool (VRE 1.18.6) and vre on the same seed config and frames: shapes, dtypes and value differences.

    python bench/bench_seed_parity.py --seed-vre /path/to/seed-venv/bin/vre [--frames 8] [--output-size 400 600]
        [--video CLIP] [--save-reference tests/data/seed_parity.npz [--reference-types rgb hsv ...]]

Installs nothing: the seed tool must already be installed in a virtualenv of its own (`pip install
video-representations-extractor==1.18.6 opencv-python-headless torch`, and ffmpeg for its ffprobe). It runs with
only its CPU classes (`--no_vre_repository -J`), on the offline types of its repository's test config
(test/vre_repository/end_to_end/vre_batched/cfg.yaml): rgb, hsv, python-halftone, sift, canny, generalized
boundaries. vre runs the same config through `vre export --seed-config`. Prints one row per type: the shapes and
dtypes of both, max |difference| and the share of values that differ by more than 1e-3. ``--save-reference``
stores the seed's arrays (every frame run; of ``--reference-types`` when given) for tests/test_seed_parity.py.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT / "tests" / "seed_configs" / "upstream" / "test__vre_repository__end_to_end__vre_batched__cfg.yaml"
OFFLINE = ("rgb", "hsv", "halftone1", "sift", "edges_canny", "softseg_gb")
REPOSITORY = '''
def get_repository():
    from vre_repository.color.rgb import RGB
    from vre_repository.color.hsv import HSV
    from vre_repository.edges.canny import Canny
    from vre_repository.soft_segmentation.halftone import Halftone
    from vre_repository.soft_segmentation.generalized_boundaries import GeneralizedBoundaries
    from vre_repository.descriptor.sift import SIFT
    return {"color/rgb": RGB, "color/hsv": HSV, "edges/canny": Canny, "soft-segmentation/python-halftone": Halftone,
            "soft-segmentation/generalized-boundaries": GeneralizedBoundaries, "descriptor/sift": SIFT}
'''


def seed_config(output_size: list[int] | None) -> dict:
    """The upstream test config, its offline types only, at ``output_size`` (None: each type at its own size)."""
    cfg = yaml.safe_load(UPSTREAM.read_text())
    cfg["representations"] = {k: v for k, v in cfg["representations"].items() if k in OFFLINE}
    cfg["default_io_parameters"].update(image_format="not-set", output_size=output_size)
    if output_size is None:
        del cfg["default_io_parameters"]["output_size"]
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed-vre", required=True, help="the seed tool's `vre` script, in its own virtualenv")
    ap.add_argument("--video", default=str(ROOT / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--output-size", type=int, nargs=2, default=None)
    ap.add_argument("--save-reference", type=Path)
    ap.add_argument("--reference-types", nargs="+", choices=[t for t in OFFLINE if t != "sift"],
                    help="the types --save-reference stores (default: every comparable one)")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="seed-parity-") as tmp:
        work = Path(tmp)
        (work / "cfg.yaml").write_text(yaml.safe_dump(seed_config(ns.output_size)))
        (work / "repository.py").write_text(REPOSITORY)
        video = work / Path(ns.video).name  # a copy: the seed tool writes its ffmpeg log beside the video
        shutil.copyfile(ns.video, video)
        subprocess.run([ns.seed_vre, str(video), "--config_path", "cfg.yaml", "-o", "seed", "--frames",
                        f"0..{ns.frames}", "--no_vre_repository", "-J", "repository.py:get_repository"],
                       cwd=work, check=True, capture_output=True, env={"VRE_PBAR": "0", "PATH": "/usr/bin:/bin"})
        subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "--seed-config", "cfg.yaml",
                        f"video={ns.video}", "output_dir=vre", f"frames=0..{ns.frames}"], cwd=work, check=True,
                       capture_output=True)
        size = "each type's own size" if ns.output_size is None else f"output_size {ns.output_size}"
        print(f"{ns.frames} frames of {Path(ns.video).name}, {size}")
        print("| type | seed: shape, dtype | vre: shape, dtype | max abs diff | values off by > 1e-3 |")
        print("|---|---|---|---|---|")
        reference = {}
        for name in OFFLINE:
            seed = np.stack([np.load(work / "seed" / name / "npz" / f"{t}.npz", allow_pickle=False)["arr_0"]
                             for t in range(ns.frames)])
            ours = np.stack([np.load(work / "vre" / name / "npz" / f"{t}.npz", allow_pickle=False)["arr_0"]
                             for t in range(ns.frames)])
            reference[name] = seed
            row = f"| {name} | {seed.shape[1:]}, {seed.dtype} | {ours.shape[1:]}, {ours.dtype} |"
            if seed.shape == ours.shape:
                diff = np.abs(seed.astype(np.float64) - ours.astype(np.float64))
                print(f"{row} {diff.max():.3g} | {(diff > 1e-3).mean():.2%} |")
            else:
                print(f"{row} — | not comparable |")
        if ns.save_reference is not None:
            ns.save_reference.parent.mkdir(parents=True, exist_ok=True)
            kept = ns.reference_types or [t for t in OFFLINE if t != "sift"]
            np.savez_compressed(ns.save_reference, **{k: v for k, v in reference.items() if k in kept},
                                output_size=np.array(ns.output_size or [0, 0]), frames=np.array(ns.frames))
            print(f"wrote {ns.save_reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
