"""vre video: an MP4 of the collages that PyAV decodes to the expected frame count, size, rate and pictures."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vrecore.cli.app import main as vre_main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.visual.collage import CollageMaker
from vrecore.visual.preview_video import write_preview_video
from vrecore.visual.stored import ExportView

REPS = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "grey": {"type": "test/grey"},
}


@pytest.fixture
def export(registry, sample_video: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    run_export(build_graph({"representations": REPS}), sample_video, out, frames="0..12", config={"representations": REPS})
    (out / "grey" / "npz" / "4.npz").unlink()
    return out


def _decode(path: Path) -> tuple[list[np.ndarray], Fraction, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, Fraction(stream.average_rate), stream.codec_context.name


def test_preview_decodes_to_the_collages(export: Path) -> None:
    result = write_preview_video(export)
    assert result.path == export / "preview.mp4" and result.codec == "libx264"
    frames, rate, codec = _decode(result.path)
    maker = CollageMaker(ExportView(export))
    lay = maker.layout
    assert (lay.rows, lay.cols) == (2, 2)
    assert len(frames) == 12 and rate == 25 and codec == "h264"
    # 4:2:0 video has even sizes: an odd collage is padded by one row or column.
    assert frames[0].shape == (lay.height + lay.height % 2, lay.width + lay.width % 2, 3)
    for i in (0, 4, 11):
        collage = maker.render(i).astype(int)
        assert np.abs(frames[i][:lay.height, :lay.width].astype(int) - collage).mean() < 6, i


def test_one_representation_alone_and_a_chosen_rate(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = export.parent / "hsv.mp4"
    assert vre_main(["video", str(export), "representations=hsv", "frames=2..8", "--fps", "10",
                     "--output", str(target)]) == 0
    assert f"vre video: {target} (6 frames" in capsys.readouterr().err
    frames, rate, _ = _decode(target)
    one = CollageMaker(ExportView(export), ["hsv"]).layout
    assert (one.rows, one.cols) == (1, 1)
    assert len(frames) == 6 and rate == 10 and frames[0].shape == (one.height + one.height % 2, 320, 3)


def test_bad_requests_say_what_to_fix(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [
        (["--output", str(export / "p.avi")], "give a name ending in .mp4"),
        (["--output", str(export / "no" / "p.mp4")], "does not exist"),
        (["--fps", "0"], "--fps 0.0: give a positive frame rate"),
    ]:
        assert vre_main(["video", str(export), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vre video: error: ") and message in lines[0], lines
    assert not (export / "preview.mp4").exists() and not list(export.glob(".preview*"))
