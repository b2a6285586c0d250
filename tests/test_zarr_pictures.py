"""`vre collage`, `vre video` and `vre report` on a zarr export, local (`out.zarr`) or at a URL, made from the stored
arrays through the Store interface; `vre metadata` refuses a zarr export in one line; `vre pack --to zarr` is a copy
into the zarr store that verifies (issue 23 §1)."""
from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrecore.cli.app import main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph

# zarr found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(importlib.util.find_spec("zarr") is None, reason="needs zarr")

FRAMES = "0..3"


def graph():
    return build_graph({"representations": {
        "rgb": {"type": "color/rgb", "output_size": [32, 48]},
        "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "output_size": [32, 48], "image_format": "jpg"}}})


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


def test_picture_commands_create_nothing_in_the_export_but_their_outputs(registry, exports, tmp_path, capsys):
    import shutil

    for export in exports:  # a local zarr export, and a folder export, copied without their .logs
        out = tmp_path / export.name
        shutil.copytree(export, out, ignore=shutil.ignore_patterns(".logs", ".collage", "preview.mp4", "report.html"))
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        for command in ("collage", "video", "report"):
            assert main([command, str(out)]) == 0, capsys.readouterr().err
        made = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        declared = [p for p in made if p.partition("/")[0] in (".collage", "preview.mp4", "report.html")]
        assert sorted(set(made) - set(declared)) == before, f"{out.name}: only the declared outputs are new"


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


def stored(folder: Path, name: str, frame: int) -> np.ndarray:
    with np.load(folder / name / "npz" / f"{frame}.npz", allow_pickle=False) as z:
        return z["arr_0"]


def test_pack_to_zarr_copies_an_export_into_the_zarr_store(registry, exports, tmp_path, capsys):
    from vrecore.data import MultiTaskDataset
    from vrecore.store import ZarrStore, open_store
    from vrecore.store.directory import DirectoryStore

    folder, store = exports
    dest = tmp_path / "packed.zarr"
    assert main(["pack", str(folder), "--to", "zarr", "-o", str(dest)]) == 0, capsys.readouterr().err
    packed = open_store(dest)
    assert type(packed) is ZarrStore and json.loads((dest / "zarr.json").read_text())["attributes"]["vre_store"]
    assert json.loads((dest / "vre_pack_manifest.json").read_text())["format"] == "zarr"
    assert main(["verify", str(dest), "--deep"]) == 0, "its records and fingerprints verify"
    source = DirectoryStore(folder)
    for name in ("rgb", "hsv"):
        assert packed.read_metadata(name)["fingerprint_digest"] == source.read_metadata(name)["fingerprint_digest"]
        assert {r["frame"]: r["fp"] for r in packed.read_records(name)} == \
            {r["frame"]: r["fp"] for r in source.read_records(name)}
        for i in range(3):
            assert np.array_equal(packed.read_frame(name, i), stored(folder, name, i))
    assert packed.read_bytes("hsv", "jpg", 1) == (folder / "hsv" / "jpg" / "1.jpg").read_bytes(), "previews as made"
    a, b = MultiTaskDataset(folder, to_tensor=False), MultiTaskDataset(dest, to_tensor=False)
    assert a.names == b.names and all(np.array_equal(a[1][0][t], b[1][0][t]) for t in ("rgb", "hsv"))

    again = tmp_path / "again.zarr"  # from the zarr store: a copy between stores
    assert main(["pack", str(store), "--to", "zarr", "-o", str(again)]) == 0, capsys.readouterr().err
    assert main(["verify", str(again), "--deep"]) == 0
    assert np.array_equal(open_store(again).read_frame("hsv", 2), stored(folder, "hsv", 2))
    capsys.readouterr()
    assert main(["pack", str(store), "--to", "zarr", "-o", str(again)]) == 2
    assert "exists; choose another destination or pass --overwrite" in one_error(capsys, "pack")
    assert main(["pack", str(folder), "--to", "zarr", "-o", str(again), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zarr", "packed.zarr"], "no temporary left"


def test_pack_to_zarr_refusals_are_one_line(registry, exports, tmp_path, capsys):
    folder, _ = exports
    assert main(["pack", str(folder), "--to", "zarr", "-o", str(tmp_path / "packed")]) == 2
    assert "ends in .zarr" in one_error(capsys, "pack")
    assert main(["pack", str(folder.parent), "--to", "zarr", "-o", str(tmp_path / "all.zarr")]) == 2
    assert "holds one export" in one_error(capsys, "pack")
    assert sorted(tmp_path.iterdir()) == []
