"""Tile grids (vrecore.visual.tiles): grid shapes, tile positions, labels drawn once, blank tiles for missing images."""
from __future__ import annotations

import numpy as np
import pytest

from vrecore.errors import ConfigError
from vrecore.visual.tiles import BACKGROUND, TileRenderer, as_rgb8, grid_shape, plan_tiles, text_strip


@pytest.mark.parametrize(
    ("n", "aspect", "expected"),
    [
        (1, 16 / 9, (1, 1)),
        (2, 16 / 9, (1, 2)),
        (3, 16 / 9, (2, 2)),
        (4, 16 / 9, (2, 2)),
        (6, 16 / 9, (2, 3)),
        (7, 16 / 9, (3, 3)),
        (3, 9 / 16, (1, 3)),  # tall frames spread over columns
        (6, 9 / 16, (1, 6)),
        (8, 9 / 16, (2, 4)),
        (4, 4.0, (4, 1)),  # very wide frames stack in rows
    ],
)
def test_grid_shape_follows_the_frame_aspect(n: int, aspect: float, expected: tuple[int, int]) -> None:
    assert grid_shape(n, aspect) == expected


def test_grid_shape_rows_and_cols_given() -> None:
    assert grid_shape(5, 16 / 9, rows=1) == (1, 5)
    assert grid_shape(5, 16 / 9, cols=2) == (3, 2)
    assert grid_shape(5, 16 / 9, rows=2, cols=4) == (2, 4)
    with pytest.raises(ConfigError, match=r"rows=2 cols=2 hold 4 tiles, but there are 5 images"):
        grid_shape(5, 16 / 9, rows=2, cols=2)
    with pytest.raises(ConfigError, match=r"cols=0: give 1 or more"):
        grid_shape(5, 16 / 9, cols=0)
    with pytest.raises(ConfigError, match="at least one image"):
        grid_shape(0, 16 / 9)


def test_plan_tiles_scales_down_to_max_width_never_up() -> None:
    lay = plan_tiles(["a", "b", "c", "d", "e", "f"], (960, 540), max_width=1280)
    assert (lay.rows, lay.cols, lay.tile_width, lay.tile_height) == (2, 3, 424, 238)
    assert lay.width == 3 * 424 + 2 * 4 <= 1280
    assert lay.height == 2 * (lay.label_height + 238) + 4
    small = plan_tiles(["a", "b"], (160, 90), max_width=1280)
    assert (small.tile_width, small.tile_height) == (160, 90)
    tiles = lay.tiles()
    assert [(t.name, t.x, t.y) for t in tiles[:4]] == [
        ("a", 0, 0), ("b", 428, 0), ("c", 856, 0), ("d", 0, lay.label_height + 238 + 4)]
    assert lay.as_dict()["tiles"][4] == {"name": "e", "x": 428, "y": lay.label_height + 242, "w": 424, "h": 238,
                                         "label_h": lay.label_height}
    with pytest.raises(ConfigError, match="unique"):
        plan_tiles(["a", "a"], (10, 10))


def test_render_places_each_image_under_its_label_and_blanks_missing_ones() -> None:
    names = ["red", "green", "half", "missing"]
    lay = plan_tiles(names, (64, 48))
    assert (lay.rows, lay.cols) == (2, 2)
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    green = np.zeros((48, 64, 3), np.uint8)
    green[..., 1] = 255
    half = np.full((24, 64), 200, np.uint8)  # grey, half as tall: letterboxed in its tile
    img = TileRenderer(lay).render({"red": red, "green": green, "half": half})
    assert img.shape == (lay.height, lay.width, 3) and img.dtype == np.uint8
    t = {tile.name: tile for tile in lay.tiles()}

    def body(name: str) -> np.ndarray:
        tile = t[name]
        return img[tile.image_y:tile.image_y + tile.height, tile.x:tile.x + tile.width]

    assert (body("red") == (255, 0, 0)).all() and (body("green") == (0, 255, 0)).all()
    h = body("half")
    assert (h[12:36] == 200).all() and (h[:12] == 0).all() and (h[36:] == 0).all()
    blank = body("missing")
    assert (blank[0, 0] == 72).all() and (blank > 200).any()  # grey, with the "no frame" text
    label = img[t["red"].y:t["red"].image_y, t["red"].x:t["red"].x + t["red"].width]
    assert (label[:, -10:] == 32).all() and (label > 150).any()  # a grey strip with light text on it
    gap = img[:, t["red"].width:t["green"].x]
    assert (gap == BACKGROUND).all()


def test_labels_are_drawn_once_and_shared() -> None:
    lay = plan_tiles(["depth", "normals"], (320, 180))
    TileRenderer(lay)
    before = text_strip.cache_info()
    renderer = TileRenderer(lay)
    for _ in range(3):
        renderer.render({"depth": np.zeros((180, 320, 3), np.uint8)})
    after = text_strip.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 3  # two labels + the blank tile
    strip = text_strip("depth", 320, lay.label_height, 11)
    assert not strip.flags.writeable


def test_long_labels_are_cut_with_an_ellipsis() -> None:
    short = text_strip("a", 60, 18, 11)
    long = text_strip("a_very_long_representation_name", 60, 18, 11)
    assert (long[:, 57:] == 32).all()  # nothing drawn past the room left for the text (4 px margins)
    assert (long > 150).sum() > (short > 150).sum()


def test_as_rgb8() -> None:
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert as_rgb8("g", grey).shape == (2, 3, 3) and (as_rgb8("g", grey[..., None])[..., 2] == grey).all()
    rgb = np.zeros((2, 3, 3), np.uint8)
    assert as_rgb8("x", rgb) is rgb
    with pytest.raises(ConfigError, match="representation 'd' preview is float32, not uint8"):
        as_rgb8("d", np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ConfigError, match=r"preview has shape \(2, 3, 4\): expected \(H, W, 3\) RGB"):
        as_rgb8("d", np.zeros((2, 3, 4), np.uint8))
