"""vre collage: labelled tiles made from the stored data, blank labelled tiles for missing frames, missing plugins."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrecore.cli.app import main as vre_main
from vrecore.export.run import run_export
from vrecore.frames.video import open_video
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz
from vrecore.visual.collage import CollageMaker, write_collages
from vrecore.visual.stored import ExportView, generic_picture
from vrecore.visual.tiles import BACKGROUND, BLANK_BG, LABEL_BG

FOUR = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "grey": {"type": "test/grey"},
    "scaled": {"type": "test/scaled", "dependencies": ["grey"], "parameters": {"factor": 0.5}},
}
MISSING = (2, 5)


@pytest.fixture
def export(registry, sample_video: Path, tmp_path: Path) -> Path:
    """Frames 0..7 of four representations; 'scaled' lost frames 2 and 5."""
    out = tmp_path / "out"
    run_export(build_graph({"representations": FOUR}), sample_video, out, frames="0..8", config={"representations": FOUR})
    for i in MISSING:
        (out / "scaled" / "npz" / f"{i}.npz").unlink()
    return out


def _body(img: np.ndarray, x: int, y: int, label_h: int, w: int = 320, h: int = 180) -> np.ndarray:
    return img[y + label_h:y + label_h + h, x:x + w]


def _has_text(region: np.ndarray, background: tuple[int, int, int]) -> bool:
    """Some pixels far brighter than the background: drawn text."""
    return int((region.astype(int).sum(axis=2) > sum(background) + 300).sum()) > 20


def test_tiles_sit_where_the_grid_puts_them_and_show_each_preview(export: Path, sample_video: Path) -> None:
    view = ExportView(export)
    maker = CollageMaker(view)
    lay = maker.layout
    assert view.names == ["rgb", "hsv", "grey", "scaled"]  # the config's order (the graph's is rgb, grey, hsv...)
    assert (lay.rows, lay.cols, lay.tile_width, lay.tile_height, lay.gap) == (2, 2, 320, 180, 4)  # 16:9 frames
    label = lay.label_height
    assert (lay.width, lay.height) == (644, 2 * (label + 180) + 4)
    origin = {"rgb": (0, 0), "hsv": (324, 0), "grey": (0, label + 184), "scaled": (324, label + 184)}
    graph = build_graph({"representations": FOUR})
    frames = open_video(sample_video).get_batch(range(8))
    for i in range(8):
        img = maker.render(i)
        assert img.shape == (lay.height, lay.width, 3) and img.dtype == np.uint8
        assert np.array_equal(_body(img, *origin["rgb"], label), frames[i])
        hsv = graph["hsv"].representation.make_images(load_npz(export / "hsv" / "npz" / f"{i}.npz")[None])[0]
        assert np.array_equal(_body(img, *origin["hsv"], label), hsv)
        grey = load_npz(export / "grey" / "npz" / f"{i}.npz")
        assert np.array_equal(_body(img, *origin["grey"], label)[..., 0], (np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8))
        scaled = _body(img, *origin["scaled"], label)
        if i in MISSING:  # a grey "no frame" tile, still under its name
            assert (scaled == BLANK_BG).all(axis=2).mean() > 0.9
            assert _has_text(scaled[60:120, 100:220], BLANK_BG)
        else:
            stored = load_npz(export / "scaled" / "npz" / f"{i}.npz")
            assert np.array_equal(scaled[..., 0], (np.clip(stored, 0, 1) * 255 + 0.5).astype(np.uint8))
        for name, (x, y) in origin.items():  # every tile has its name strip, text at the left
            strip = img[y:y + label, x:x + 320]
            assert (strip == LABEL_BG).all(axis=2).mean() > 0.7, name
            assert _has_text(strip[:, :90], LABEL_BG), name
            assert not _has_text(strip[:, 200:], LABEL_BG), name  # short names: the right of the strip is empty
        assert (img[:, 320:324] == BACKGROUND).all() and (img[label + 180:label + 184] == BACKGROUND).all()


def test_collage_files_and_selection(export: Path) -> None:
    result = write_collages(export)
    assert result.folder == export / ".collage"
    assert sorted(p.name for p in result.folder.iterdir()) == [f"{i}.jpg" for i in range(8)]
    maker = CollageMaker(ExportView(export))
    for i in (0, 5):
        jpeg = np.asarray(Image.open(export / ".collage" / f"{i}.jpg").convert("RGB")).astype(int)
        assert jpeg.shape == (maker.layout.height, maker.layout.width, 3)
        assert np.abs(jpeg - maker.render(i)).mean() < 4  # the same picture, through JPEG
    other = export.parent / "elsewhere"
    picked = write_collages(export, other, frames="2..6:2", representations=["scaled", "rgb"], rows=2)
    assert picked.frames == (2, 4) and sorted(p.name for p in other.iterdir()) == ["2.jpg", "4.jpg"]
    assert (picked.layout.rows, picked.layout.cols, picked.layout.names) == (2, 1, ("scaled", "rgb"))


def test_a_type_whose_plugin_is_missing_gets_a_generic_tile_and_one_warning(export: Path) -> None:
    from vrecore.testing import unregister_test_types

    unregister_test_types()
    warnings: list[str] = []
    view = ExportView(export, warn=warnings.append)
    assert view.representations["grey"].representation is None
    assert len(warnings) == 2 and all("unknown type 'test/" in w and "generic picture" in w for w in warnings)
    assert "'grey'" in warnings[0] and "'scaled'" in warnings[1]
    maker = CollageMaker(view)
    img = maker.render(3)
    label = maker.layout.label_height
    grey = load_npz(export / "grey" / "npz" / "3.npz")
    assert np.array_equal(_body(img, 0, label + 184, label), generic_picture(grey))
    assert generic_picture(grey).std() > 10  # scaled to its range, so a picture and not a black tile
    maker.render(4)
    assert len(warnings) == 2  # once per representation, not per frame


def test_previews_only_exports_are_shown_from_their_images(registry, sample_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "png_only"
    graph = build_graph({"representations": {"rgb": {"type": "color/rgb"}}, "binary_format": "none",
                         "image_format": "png"})
    run_export(graph, sample_video, out, frames="0..2")
    img = CollageMaker(ExportView(out)).render(1)
    label = img.shape[0] - 180
    assert np.array_equal(img[label:], open_video(sample_video).get_batch([1])[0])


def test_command_line(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vre_main(["collage", str(export), "frames=0..2", "--output", str(export.parent / "c")]) == 0
    err = capsys.readouterr().err
    assert "2 collage(s) of 4 representations (2x2 tiles" in err and str(export.parent / "c" / "0.jpg") in err
    assert sorted(p.name for p in (export.parent / "c").iterdir()) == ["0.jpg", "1.jpg"]
    for args, message in [
        (["representations=rgb,nope"], "'nope' is not in"),
        (["colour=red"], "unknown setting 'colour'; valid keys: frames, representations, rows, cols, max_width"),
        (["frames=20..30"], "frames=20..30 names no stored frame; stored frames: 0..8"),
        (["frames=40..60"], "frames=40..60 is out of range: the video has 48 frames"),
        (["rows=0"], "rows=0: give a whole number of 1 or more"),
        (["rows=1", "cols=2"], "rows=1 cols=2 hold 2 tiles, but there are 4 images"),
    ]:
        assert vre_main(["collage", str(export), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vre collage: error: ") and message in lines[0], lines
    assert vre_main(["collage", str(export.parent / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_generic_pictures_of_any_stored_array() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert generic_picture(rgb) is rgb
    mask = np.zeros((6, 8), bool)
    mask[2:4] = True
    assert (generic_picture(mask)[mask] == 255).all() and (generic_picture(mask)[~mask] == 0).all()
    classes = np.repeat(np.arange(4, dtype=np.uint8), 12).reshape(6, 8)
    colours = generic_picture(classes)
    assert len({tuple(colours[classes == k][0]) for k in range(4)}) == 4  # one colour per class
    assert all(len({tuple(c) for c in colours[classes == k]}) == 1 for k in range(4))
    depth = np.linspace(0, 50, 48, dtype=np.float32).reshape(6, 8)
    depth[0, 0] = np.nan
    grey = generic_picture(depth)
    assert grey.shape == (6, 8, 3) and (grey[0, 0] == 0).all() and grey[5, 7, 0] == 255
    assert (np.diff(grey[1:, :, 0].reshape(-1).astype(int)) >= 0).all()  # scaled, order kept
