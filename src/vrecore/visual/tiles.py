"""Labelled tile grids: named RGB images in rows and columns, the one layout of the web viewer and collages.

`plan_tiles(names, frame_size)` chooses the grid (rows x columns) and the tile size;
`TileRenderer(layout).render({name: image})` draws it. Each tile is a label strip with the
name above the image, which is scaled to fit the tile (aspect kept, centred on black). A name
without an image gets a grey tile that says "no frame", so a missing frame never shifts the
others. Label images are drawn once with Pillow and cached; drawing a grid is array copies and
one OpenCV resize per tile that needs one (no matplotlib).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import attrs
import numpy as np

from vrecore.errors import ConfigError

__all__ = ["Tile", "TileLayout", "TileRenderer", "as_rgb8", "grid_shape", "plan_tiles"]

SCREEN_ASPECT = 16 / 9
"""Automatic grids aim at this overall shape (a screen or a video player)."""
BACKGROUND = 17
"""Grey level between tiles (one value: filling with a scalar is a memset, a colour tuple is ~40x slower)."""
LABEL_BG = (32, 32, 32)
LABEL_FG = (235, 235, 235)
BLANK_BG = (72, 72, 72)
MISSING_TEXT = "no frame"


@attrs.frozen
class Tile:
    """One tile of a layout: its name, the top-left of its label strip, the image area below it."""

    name: str
    x: int
    y: int
    width: int
    height: int
    """Size of the image area (the label strip above it is `label_height` tall)."""
    label_height: int

    @property
    def image_y(self) -> int:
        """Top row of the image area."""
        return self.y + self.label_height


@attrs.frozen
class TileLayout:
    """A grid of equal tiles, filled row by row in the order of `names`."""

    names: tuple[str, ...]
    rows: int
    cols: int
    tile_width: int
    tile_height: int
    label_height: int
    gap: int

    @property
    def width(self) -> int:
        return self.cols * self.tile_width + (self.cols - 1) * self.gap

    @property
    def height(self) -> int:
        return self.rows * (self.label_height + self.tile_height) + (self.rows - 1) * self.gap

    def tiles(self) -> list[Tile]:
        """Every tile, in the order of `names`."""
        step_x, step_y = self.tile_width + self.gap, self.label_height + self.tile_height + self.gap
        return [Tile(name, (i % self.cols) * step_x, (i // self.cols) * step_y, self.tile_width, self.tile_height,
                     self.label_height) for i, name in enumerate(self.names)]

    def as_dict(self) -> dict[str, object]:
        """JSON-able description (the web viewer's page places per-tile overlays with it)."""
        return {
            "rows": self.rows, "cols": self.cols, "width": self.width, "height": self.height,
            "tiles": [{"name": t.name, "x": t.x, "y": t.y, "w": t.width, "h": t.height,
                       "label_h": t.label_height} for t in self.tiles()],
        }


def grid_shape(n: int, frame_aspect: float, *, rows: int | None = None, cols: int | None = None,
               label_fraction: float = 0.08, screen_aspect: float = SCREEN_ASPECT) -> tuple[int, int]:
    """(rows, cols) for `n` tiles of frames `frame_aspect` (width / height) wide.

    Given `rows` and/or `cols` are kept (the other follows from `n`). Otherwise the grid whose
    overall shape is nearest `screen_aspect` wins, so wide frames stack in more rows and tall ones
    spread over more columns; ties go to fewer empty cells, then fewer rows. A grid never has a
    whole empty row or column.
    """
    if n < 1:
        raise ConfigError("a tile grid needs at least one image")
    for option, value in (("rows", rows), ("cols", cols)):
        if value is not None and value < 1:
            raise ConfigError(f"{option}={value}: give 1 or more")
    if rows is not None and cols is not None:
        if rows * cols < n:
            raise ConfigError(f"rows={rows} cols={cols} hold {rows * cols} tiles, but there are {n} images: "
                              "give more rows or columns, or only one of them")
        return rows, cols
    if rows is not None:
        return rows, math.ceil(n / rows)
    if cols is not None:
        return math.ceil(n / cols), cols
    tile_aspect = frame_aspect / (1 + label_fraction)
    best: tuple[float, int, int, int] | None = None
    for r in range(1, n + 1):
        c = math.ceil(n / r)
        if (r - 1) * c >= n:
            continue  # the last row would be empty
        cost = abs(math.log(c * tile_aspect / r / screen_aspect))
        key = (round(cost, 6), r * c - n, r, c)
        if best is None or key < best:
            best = key
    assert best is not None  # r = 1 always qualifies
    return best[2], best[3]


def _label_height(tile_width: int) -> int:
    return _font_size(tile_width) + 8


def _font_size(tile_width: int) -> int:
    return int(min(32, max(10, tile_width // 28)))


def plan_tiles(names: Sequence[str], frame_size: tuple[int, int], *, rows: int | None = None,
               cols: int | None = None, max_width: int | None = None, gap: int = 4) -> TileLayout:
    """The layout for `names` of frames `frame_size` (width, height).

    Tiles have the frame's size, scaled down (never up) so that the grid is at most `max_width`
    pixels wide; `rows`/`cols` fix the grid shape (see `grid_shape`).
    """
    if len(set(names)) != len(names):
        raise ConfigError(f"tile names must be unique, got {list(names)}")
    w, h = (int(v) for v in frame_size)
    if w < 1 or h < 1:
        raise ConfigError(f"frame size {w}x{h}: tiles need a frame of at least 1x1 pixels")
    label_fraction = _label_height(w) / h
    r, c = grid_shape(len(names), w / h, rows=rows, cols=cols, label_fraction=label_fraction)
    scale = 1.0
    if max_width is not None:
        scale = min(1.0, max(1, max_width - (c - 1) * gap) / (c * w))
    tile_w, tile_h = max(1, int(w * scale)), max(1, round(h * scale))
    return TileLayout(tuple(names), r, c, tile_w, tile_h, _label_height(tile_w), gap)


def as_rgb8(name: str, img: np.ndarray) -> np.ndarray:
    """`img` as uint8 (H, W, 3): grey (H, W) or (H, W, 1) is repeated; anything else is an error naming `name`."""
    if img.dtype != np.uint8:
        raise ConfigError(f"representation {name!r} preview is {img.dtype}, not uint8: convert it to a uint8 RGB image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"representation {name!r} preview has shape {img.shape}: expected (H, W, 3) RGB")
    return img


@functools.lru_cache(maxsize=64)
def _font(size: int) -> object:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=1024)
def text_strip(text: str, width: int, height: int, font_size: int, fg: tuple[int, int, int] = LABEL_FG,
               bg: tuple[int, int, int] = LABEL_BG, centre: bool = False) -> np.ndarray:
    """`text` drawn once on a (height, width, 3) strip, cut with an ellipsis when too long (read-only)."""
    from PIL import Image, ImageDraw

    font = _font(font_size)
    canvas = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(canvas)
    room = width - 8
    shown = text
    if draw.textlength(shown, font=font) > room:  # type: ignore[arg-type]
        while shown and draw.textlength(shown + "…", font=font) > room:  # type: ignore[arg-type]
            shown = shown[:-1]
        shown += "…"
    x = (width - draw.textlength(shown, font=font)) / 2 if centre else 4  # type: ignore[arg-type]
    draw.text((x, height / 2), shown, fill=fg, font=font, anchor="lm")  # type: ignore[arg-type]
    strip = np.asarray(canvas)
    strip.setflags(write=False)
    return strip


def _fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """`img` scaled to fit inside width x height with its aspect kept."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    scale = min(width / w, height / h)
    size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    if size == (w, h):
        return img
    import cv2

    if scale >= 1:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    step = int(1 / scale)
    if step >= 2 and (w // step, h // step) != size:
        # Area averaging is fast for a whole-number factor (~0.3 ms at 540p) and ~10x slower for
        # any other; shrink by the whole factor first, then interpolate the small rest.
        img = cv2.resize(img, (w // step, h // step), interpolation=cv2.INTER_AREA)
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


class TileRenderer:
    """Draws grids of one layout; the label strips and the blank tile are made once."""

    def __init__(self, layout: TileLayout) -> None:
        self.layout = layout
        self._tiles = layout.tiles()
        font = _font_size(layout.tile_width)
        self._labels = [text_strip(t.name, t.width, t.label_height, font) for t in self._tiles]
        self._blank = text_strip(MISSING_TEXT, layout.tile_width, layout.tile_height, font, LABEL_FG, BLANK_BG,
                                 centre=True)

    def render(self, images: Mapping[str, np.ndarray | None]) -> np.ndarray:
        """The grid image (layout.height, layout.width, 3) uint8; names without an image get the blank tile."""
        lay = self.layout
        out = np.empty((lay.height, lay.width, 3), np.uint8)
        if lay.gap or len(self._tiles) < lay.rows * lay.cols:
            out.fill(BACKGROUND)
        for tile, label in zip(self._tiles, self._labels, strict=True):
            out[tile.y:tile.image_y, tile.x:tile.x + tile.width] = label
            img = images.get(tile.name)
            body = out[tile.image_y:tile.image_y + tile.height, tile.x:tile.x + tile.width]
            if img is None:
                body[:] = self._blank
                continue
            fitted = _fit(as_rgb8(tile.name, img), tile.width, tile.height)
            fh, fw = fitted.shape[:2]
            oy, ox = (tile.height - fh) // 2, (tile.width - fw) // 2
            if (fh, fw) != (tile.height, tile.width):
                body.fill(0)
            body[oy:oy + fh, ox:ox + fw] = fitted
        return out
