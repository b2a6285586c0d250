"""vre-motion, installed from its folder, works through each of vre's extension points."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vrecore
from vrecore.testing import RepresentationTestSuite

pytest.importorskip("vre_motion", reason="vre-motion is not installed: pip install ./examples/vre-motion")


def vre(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


class TestFrameDifference(RepresentationTestSuite):
    type_name = "motion/difference"
    parameters = {"delta": 2}


def test_the_plugin_is_loaded_through_its_entry_point():
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    assert registry.types["motion/difference"].provider == "vre-motion"
    assert registry.extension("source", "images").provider == "vre-motion"
    assert registry.extension("store", "flat").provider == "vre-motion"
    assert registry.extension("command", "motion").provider == "vre-motion"


def test_export_through_its_representation_and_store(sample_video, tmp_path):
    out = tmp_path / "flat"
    r = vre("export", "pipeline=motion", f"video={sample_video}", f"output_dir={out}", "store=flat", "frames=0..6")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("motion-*.npz")) == [f"motion-{i}.npz" for i in range(6)]
    with np.load(out / "motion-0.npz", allow_pickle=False) as npz:
        change = npz["arr_0"]
    assert change.dtype == np.float16 and change.shape == (180, 320) and 0 < change.mean() < 1
    records = (out / ".motion.records.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["frame"] for r in records) == list(range(6))
    again = vre("export", "pipeline=motion", f"video={sample_video}", f"output_dir=flat://{out}", "frames=0..6")
    assert again.returncode == 0, again.stderr
    assert (out / ".motion.records.jsonl").read_text().splitlines() == records  # verified, nothing computed again


def test_two_worker_processes_open_its_store_themselves(sample_video, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, 1), (two, 2)):
        r = vre("export", "pipeline=motion", f"video={sample_video}", f"output_dir=flat://{out}", "frames=0..8",
                "batch_size=2", f"workers={workers}")
        assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in one.glob("*.npz"))
    assert len(names) == 16 and names == sorted(p.name for p in two.glob("*.npz"))
    assert all((one / n).read_bytes() == (two / n).read_bytes() for n in names)


def test_stream_through_its_source(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    graph = vrecore.build_graph({"representations": {"motion": {"type": "motion/difference"}}})
    results = list(vrecore.stream(f"images://{folder}", graph, drop_frames=False))
    assert [r.seq for r in results] == [0, 1, 2, 3, 4]
    first = np.asarray(Image.open(folder / "000.png"))
    assert np.array_equal(results[0].frame, first)
    # a live stream has no future frame: each result is the change from the frame before to the newest one
    grey = [np.asarray(Image.open(folder / f"{i:03d}.png")).mean(axis=-1, dtype=np.float32) / 255 for i in range(5)]
    assert float(results[0].outputs["motion"].max()) == 0.0
    np.testing.assert_allclose(results[3].outputs["motion"][..., 0], np.abs(grey[3] - grey[2]), atol=1e-6)
    bad = vre("stream", f"source=images://{tmp_path / 'missing'}", "output=jsonl:-", "max_frames=1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a folder" in bad.stderr


def test_its_command(sample_video, tmp_path):
    out = tmp_path / "out"
    assert vre("export", "pipeline=motion", f"video={sample_video}", f"output_dir={out}", "frames=0..3").returncode == 0
    r = vre("motion", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["frame"] for row in rows] == [0, 1, 2] and all(0 <= row["mean"] <= 1 for row in rows)
    assert "motion" in vre("--help").stdout
    missing = vre("motion", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "export a motion/difference representation" in missing.stderr
