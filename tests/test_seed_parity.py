"""vre against the seed tool's own outputs (tests/data/seed_parity.npz, made by bench/bench_seed_parity.py with
VRE 1.18.6: its repository's test config, offline types, frames 0..2 of the shipped clip at output_size 48x80)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).parent / "data" / "seed_parity.npz"
TOLERANCE = {"rgb": 0.0, "hsv": 5e-5, "edges_canny": 1e-6, "softseg_gb": 5e-5, "halftone1": 1e-6}
"""Max |vre - seed| per type (docs/reading.md: hsv is OpenCV's conversion, generalized boundaries differ in float32
order of operations; halftone draws the seed's PIL ellipses)."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_seed_parity import seed_config
    finally:
        sys.path.pop(0)
    ref = np.load(REFERENCE, allow_pickle=False)
    work = tmp_path_factory.mktemp("seed-parity")
    (work / "cfg.yaml").write_text(yaml.safe_dump(seed_config([int(v) for v in ref["output_size"]])))
    run = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "--seed-config", "cfg.yaml",
                          f"video={ROOT / 'src/vrecore/frames/footage/big_buck_bunny_640x360.mp4'}", "output_dir=out",
                          f"frames=0..{int(ref['frames'])}"], cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    ours = {name: np.stack([np.load(work / "out" / name / "npz" / f"{t}.npz", allow_pickle=False)["arr_0"]
                            for t in range(int(ref["frames"]))]) for name in TOLERANCE}
    return ref, ours


@pytest.mark.parametrize("name", list(TOLERANCE))
def test_the_seeds_values_within_tolerance(exported, name):
    ref, ours = exported
    assert (ours[name].shape, ours[name].dtype) == (ref[name].shape, ref[name].dtype)
    assert np.abs(ours[name].astype(np.float64) - ref[name]).max() <= TOLERANCE[name]


def test_at_the_types_own_sizes_halftone_and_canny_are_the_seeds(tmp_path, registry):
    """Without output_size (tests/data/seed_parity_own_size.npz: frames 0..2, each type at its own size): the seed's
    halftone at its resolution, drawn with its PIL ellipses, and its Canny, value for value."""
    from vrecore.cli.seed_config import translate_seed_config
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_seed_parity import seed_config
    finally:
        sys.path.pop(0)
    ref = np.load(Path(__file__).parent / "data" / "seed_parity_own_size.npz", allow_pickle=False)
    cfg = seed_config(None)
    cfg["representations"] = {k: v for k, v in cfg["representations"].items() if k in ("halftone1", "edges_canny")}
    graph = build_graph(translate_seed_config(cfg).config)
    run_export(graph, ROOT / "src/vrecore/frames/footage/big_buck_bunny_640x360.mp4", tmp_path / "out",
               frames=list(range(int(ref["frames"]))), progress=False)
    for name in ("halftone1", "edges_canny"):
        ours = np.stack([np.load(tmp_path / "out" / name / "npz" / f"{t}.npz", allow_pickle=False)["arr_0"]
                         for t in range(int(ref["frames"]))])
        assert (ours.shape, ours.dtype) == (ref[name].shape, ref[name].dtype), name
        assert np.array_equal(ours, ref[name]), name
