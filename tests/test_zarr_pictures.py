"""`vre collage`, `vre video` and `vre report` on a zarr export, local (`out.zarr`) or at a URL, made from the stored
arrays through the Store interface (issue 23 §1); `vre metadata` refuses a zarr export in one line."""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrecore.cli.app import main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph

pytest.importorskip("zarr")

FRAMES = "0..3"


def graph():
    return build_graph({"representations": {
        "rgb": {"type": "color/rgb", "output_size": [32, 48]},
        "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "output_size": [32, 48]}}})


@pytest.fixture(scope="module")
def exports(tmp_path_factory, sample_video) -> tuple[Path, Path]:
    """The same frames exported to a folder and to a local zarr store."""
    base = tmp_path_factory.mktemp("pictures")
    folder, store = base / "folder", base / "clip.zarr"
    run_export(graph(), sample_video, folder, frames=FRAMES)
    run_export(graph(), sample_video, store, frames=FRAMES, store_options={"frames_per_shard": 2})
    return folder, store


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def one_error(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vre {command}: error: "), lines
    return lines[0]


def test_collage_video_and_report_of_a_local_zarr_export_go_next_to_it(registry, exports, capsys):
    folder, store = exports
    assert main(["collage", str(folder)]) == 0
    assert main(["collage", str(store)]) == 0, capsys.readouterr().err
    made = sorted(p.name for p in (store / ".collage").iterdir())
    assert made == ["0.jpg", "1.jpg", "2.jpg"]
    for name in made:  # made from the stored arrays: the same pictures as the folder export's
        assert np.array_equal(pixels(store / ".collage" / name), pixels(folder / ".collage" / name)), name
    assert main(["video", str(store)]) == 0, capsys.readouterr().err
    assert (store / "preview.mp4").stat().st_size > 0
    assert main(["report", str(store)]) == 0, capsys.readouterr().err
    html = (store / "report.html").read_text()
    assert "rgb" in html and "hsv" in html and "color/hsv" in html
    assert main(["verify", str(store), "--deep"]) == 0, "the pictures beside the arrays are not part of the export"


def test_a_url_export_needs_a_local_output(registry, sample_video, tmp_path, capsys):
    url = f"memory://vre-pictures-{uuid.uuid4().hex[:8]}/clip"
    run_export(graph(), sample_video, url, frames="0..2")
    for command in ("collage", "video", "report"):
        assert main([command, url]) == 2
        line = one_error(capsys, command)
        assert f"'{url}' is an export in object storage" in line and "--output" in line, line
    assert main(["collage", url, "--output", str(tmp_path / "c")]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["0.jpg", "1.jpg"]
    assert main(["video", url, "--output", str(tmp_path / "p.mp4")]) == 0, capsys.readouterr().err
    assert (tmp_path / "p.mp4").stat().st_size > 0
    assert main(["report", url, "--output", str(tmp_path / "r.html")]) == 0, capsys.readouterr().err
    assert url in (tmp_path / "r.html").read_text()


def test_metadata_refuses_a_zarr_export_in_one_line(registry, exports, capsys):
    _, store = exports
    before = sorted(str(p) for p in store.rglob("*"))
    assert main(["metadata", str(store)]) == 2
    assert "keeps its metadata in each array's zarr.json" in one_error(capsys, "metadata")
    assert sorted(str(p) for p in store.rglob("*")) == before
