"""The paper's Figure 7 grid side by side with the seed tool (VRE 1.18.6): rgb+hsv, 100 frames, 4 sizes x 3 outputs.

    python bench/bench_figure7.py --seed-vre /path/to/seed-venv/bin/vre [--repeat 3] [--seed-repeat 1]
        [--sizes 240 540 720 1080] [--frames 100]

Each size's clip is made from the shipped footage (its 44 frames repeated, resized, H.264). Each cell runs
`vre export` and the seed's `vre` as processes on the same clip, config and frames, interleaved, each into a
fresh folder (deleted after), and reports wall-clock seconds (process start to exit, start-up included) and the
ratio. The seed runs with its CPU classes only (`--no_vre_repository -J`, see bench_seed_parity.py) and the same
batch size. Outputs: npz; npz + jpg previews; compressed npz + jpg previews.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"
SIZES = {240: (426, 240), 540: (960, 540), 720: (1280, 720), 1080: (1920, 1080)}
OUTPUTS = {"npz": ("npz", "none", False), "npz+jpg": ("npz", "jpg", False),
           "compressed npz+jpg": ("npz-compressed", "jpg", True)}
REPOSITORY = '''
def get_repository():
    from vre_repository.color.rgb import RGB
    from vre_repository.color.hsv import HSV
    return {"color/rgb": RGB, "color/hsv": HSV}
'''


def make_clip(path: Path, size: tuple[int, int], frames: int) -> Path:
    """``frames`` frames of the shipped footage (repeated), resized to ``size`` (width, height), H.264."""
    import av
    import cv2

    with av.open(str(FOOTAGE)) as src:
        decoded = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for k in range(frames):
            image = cv2.resize(decoded[k % len(decoded)], size, interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def seed_config(binary: str, image: str, compress: bool, batch: int) -> dict:
    return {"default_compute_parameters": {"batch_size": batch},
            "default_io_parameters": {"binary_format": "npz" if binary != "none" else "not-set",
                                      "image_format": image if image != "none" else "not-set",
                                      "compress": compress},
            "representations": {"rgb": {"type": "color/rgb", "dependencies": [], "parameters": {}},
                                "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "parameters": {}}}}


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed-vre", help="the seed tool's `vre` script, in its own virtualenv (omit: vre only)")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--outputs", nargs="+", default=list(OUTPUTS))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="vre runs per cell (median)")
    ap.add_argument("--seed-repeat", type=int, default=1, help="seed runs per cell (median)")
    ap.add_argument("--workdir", type=Path, default=None)
    ns = ap.parse_args()
    script = Path(sys.executable).with_name("vre")  # the command a user types; bytecode kept, as an install keeps it
    vre = [str(script), "export"] if script.exists() else [sys.executable, "-m", "vrecore.cli", "export"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    print(f"rgb+hsv, {ns.frames} frames, batch {ns.batch_size}; seconds per process (start-up included), median of "
          f"{ns.repeat} (vre) / {ns.seed_repeat} (seed); load before: {os.getloadavg()[0]:.1f}")
    print("| size | output | vre s | seed s | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="fig7-", dir=ns.workdir) as tmp:
        work = Path(tmp)
        (work / "repository.py").write_text(REPOSITORY)
        for height in ns.sizes:
            clip = make_clip(work / f"clip{height}.mp4", SIZES[height], ns.frames)
            for name in ns.outputs:
                binary, image, compress = OUTPUTS[name]
                cfg = work / f"cfg_{name.replace(' ', '_')}.yaml"
                cfg.write_text(yaml.safe_dump(seed_config(binary, image, compress, ns.batch_size)))
                ours, theirs = [], []
                for k in range(max(ns.repeat, ns.seed_repeat)):
                    if k < ns.repeat:
                        ours.append(timed([*vre, f"video={clip}", "output_dir=o_vre", "pipeline=rgb_hsv",
                                           f"frames=0..{ns.frames}", f"binary_format={binary}", f"image_format={image}",
                                           f"batch_size={ns.batch_size}"], work, env))
                        shutil.rmtree(work / "o_vre")
                    if ns.seed_vre and k < ns.seed_repeat:
                        theirs.append(timed([ns.seed_vre, str(clip), "--config_path", str(cfg), "-o", "o_seed",
                                             "--frames", f"0..{ns.frames}", "--no_vre_repository", "-J",
                                             "repository.py:get_repository"], work,
                                            env={"VRE_PBAR": "0", "PATH": "/usr/bin:/bin"}))
                        shutil.rmtree(work / "o_seed")
                a = statistics.median(ours)
                b = statistics.median(theirs) if theirs else float("nan")
                print(f"| {height}p | {name} | {a:.2f} ({min(ours):.2f}–{max(ours):.2f}) | "
                      f"{b:.1f} | {b / a:.1f}× |" if theirs else f"| {height}p | {name} | {a:.2f} | — | — |",
                      flush=True)
            clip.unlink()
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
