"""Halftone soft segmentation: CMYK dot screens (rotated grids of ink-sized dots), vectorised."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np


def halftone(
    frames: np.ndarray,
    sample: int = 3,
    scale: int = 1,
    percentage: float = 91,
    angles: Sequence[float] = (0, 15, 30, 45),
    antialias: bool = False,
    resolution: tuple[int, int] | None = None,
    include_k: bool = False,
) -> np.ndarray:
    """Halftone dot planes of each frame.

    frames: uint8 (B, H, W, 3) RGB. Each frame goes to CMYK with `percentage`% of the grey component moved
    from C, M, Y into K (grey component replacement). Every channel is screened on its own grid of
    `sample`x`sample` cells rotated by its angle (C, M, Y, K order): each cell holds one dot centred in the
    cell whose diameter is sqrt(mean ink of the cell) * sample * scale, so dot area follows the ink.
    Returns float32 (B, H * scale, W * scale, C) with C = 3 (C, M, Y planes; the K plane is dropped as in
    the original tool) or 4 with include_k. Values are 1 on a dot and 0 off it; with antialias the
    dot edges carry the fraction of the pixel they cover. resolution=(h, w) resizes the frames first.
    """
    frames = _check_args(frames, sample, scale, percentage, angles)
    if resolution is not None:
        frames = _resize(frames, resolution)
    n, h, w, _ = frames.shape
    n_out = 4 if include_k else 3
    screens = [_screen(h, w, float(angles[c]) % 360.0, sample, scale) for c in range(n_out)]
    out = np.empty((n, h * scale, w * scale, n_out), dtype=np.float32)
    for i in range(n):  # frame by frame keeps the working set in cache; all the work is per pixel/cell
        planes = _gray_component_replacement(frames[i], percentage)
        for c, screen in enumerate(screens):  # one screen per ink, each at its own angle
            out[i, ..., c] = _render(planes[c], screen, antialias).reshape(h * scale, w * scale)
    return out


def halftone_preview(out: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) preview: the dot planes printed as inks on white paper."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 4 or out.shape[-1] not in (3, 4):
        raise ValueError(f"expected (B, H, W, 3 or 4) halftone planes, got shape {out.shape}")
    paper = 1.0 - np.clip(out[..., :3], 0.0, 1.0)
    if out.shape[-1] == 4:
        paper *= 1.0 - np.clip(out[..., 3:4], 0.0, 1.0)
    return (paper * 255.0 + 0.5).astype(np.uint8)


def with_note(images: np.ndarray, text: str) -> np.ndarray:
    """``images`` (B, H, W, 3) uint8 with ``text`` on a dark strip along their bottom, sized to stay legible in a tile."""
    h, w = images.shape[1:3]
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(w / 400))
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min(0.94 * w / tw, 0.08 * h / th)
    strip = max(2, round((th + base) * scale * 1.6))
    out = images.copy()
    out[:, h - strip:] = 24
    for image in out:
        cv2.putText(image, text, (round(0.03 * w), h - round((strip - th * scale) / 2)), font, scale, (235, 235, 235),
                    thickness, cv2.LINE_AA)
    return out


def _check_args(
    frames: np.ndarray, sample: int, scale: int, percentage: float, angles: Sequence[float]
) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if int(sample) != sample or sample < 1:
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if not 0 <= percentage <= 100:
        raise ValueError(f"percentage must be in [0, 100], got {percentage!r}")
    if len(angles) != 4:
        raise ValueError(f"angles must hold 4 angles (C, M, Y, K), got {list(angles)}")
    return frames


def _resize(frames: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    h, w = int(resolution[0]), int(resolution[1])
    if h < 1 or w < 1:
        raise ValueError(f"resolution must be (height, width) > 0, got {resolution}")
    if frames.shape[1:3] == (h, w):
        return frames
    shrink = h <= frames.shape[1] and w <= frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


def _gray_component_replacement(frame: np.ndarray, percentage: float) -> np.ndarray:
    """(4, H, W) uint8 C, M, Y, K ink levels: naive RGB->CMY, then percentage% of min(C, M, Y) moved to K."""
    r, g, b = cv2.split(frame)
    darkest = 255 - cv2.max(cv2.max(r, g), b)  # min(C, M, Y) with C = 255 - R etc.
    # int(level * percentage / 100) in float64, as a 256-entry table
    table = np.floor(np.arange(256, dtype=np.float64) * percentage / 100).astype(np.uint8)
    k = cv2.LUT(darkest, table)
    white = 255 - k
    # (255 - rgb) - k, never negative
    return np.stack([cv2.subtract(white, r), cv2.subtract(white, g), cv2.subtract(white, b), k])


class _Screen(NamedTuple):
    """Geometry of one rotated dot grid: which cell each output pixel falls in, and how far from its centre."""

    warp: np.ndarray  # 2x3 inverse map, rotated-canvas pixel -> source pixel (OpenCV convention)
    cells: tuple[int, int]  # (rows, cols) of the grid; the canvas is padded to whole cells
    sample: int  # cell side on the source image
    box: int  # cell side in output pixels (sample * scale)
    cell_of_pixel: np.ndarray  # int32 flat cell index per output pixel
    ink_threshold: np.ndarray  # float32: the pixel is on the dot when the cell's mean ink (0-255) exceeds it


@functools.lru_cache(maxsize=8)
def _screen(h: int, w: int, angle: float, sample: int, scale: int) -> _Screen:
    # The rotation is PIL's Image.rotate(angle, expand=True), which the tool screens with: the inverse matrix
    # maps an offset on the rotated canvas to one on the image; the canvas is the rotated image's bounding box.
    rad = -math.radians(angle)
    cos, sin = round(math.cos(rad), 15), round(math.sin(rad), 15)
    corners = ((0, 0), (w, 0), (w, h), (0, h))
    xs = [cos * (x - w / 2) + sin * (y - h / 2) for x, y in corners]
    ys = [-sin * (x - w / 2) + cos * (y - h / 2) for x, y in corners]
    cw = math.ceil(max(xs)) - math.floor(min(xs))
    ch = math.ceil(max(ys)) - math.floor(min(ys))
    rows, cols = -(-ch // sample), -(-cw // sample)
    # canvas pixel (j, i) has its centre at (j + .5, i + .5); OpenCV's nearest rounds pixel-centred
    # coordinates, which floors these ones exactly as PIL does
    tx = cos * (0.5 - cw / 2) + sin * (0.5 - ch / 2) + w / 2 - 0.5
    ty = -sin * (0.5 - cw / 2) + cos * (0.5 - ch / 2) + h / 2 - 0.5
    warp = np.array([[cos, sin, tx], [-sin, cos, ty]], dtype=np.float64)

    # every output pixel centre of the scaled output, mapped onto the scaled canvas (transposed matrix)
    box = sample * scale
    py = np.arange(h * scale, dtype=np.float64)[:, None] + 0.5 - h * scale / 2
    px = np.arange(w * scale, dtype=np.float64)[None, :] + 0.5 - w * scale / 2
    u = cos * px - sin * py + cw * scale / 2
    v = sin * px + cos * py + ch * scale / 2
    cu = np.clip(np.floor(u / box), 0, cols - 1)
    cv_ = np.clip(np.floor(v / box), 0, rows - 1)
    dist2 = (u - (cu + 0.5) * box) ** 2 + (v - (cv_ + 0.5) * box) ** 2
    cell_of_pixel = (cv_ * cols + cu).astype(np.int32).ravel()
    # on the dot  <=>  dist < sqrt(ink / 255) * box / 2  <=>  ink > 255 * (2 * dist / box) ** 2
    ink_threshold = (255.0 * 4.0 / (box * box) * dist2).astype(np.float32).ravel()
    cell_of_pixel.flags.writeable = False
    ink_threshold.flags.writeable = False
    return _Screen(warp, (rows, cols), sample, box, cell_of_pixel, ink_threshold)


def _cell_means(plane: np.ndarray, screen: _Screen) -> np.ndarray:
    """Mean ink of every cell of the rotated grid (cells off the image count as no ink): (rows * cols,)."""
    rows, cols = screen.cells
    canvas = cv2.warpAffine(
        plane, screen.warp, (cols * screen.sample, rows * screen.sample),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    if screen.sample == 1:
        return canvas.astype(np.float32).ravel()
    # exact box average: the canvas is a whole number of cells
    return cv2.resize(canvas.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA).ravel()


def _render(plane: np.ndarray, screen: _Screen, antialias: bool) -> np.ndarray:
    """Flat (H*scale * W*scale,) dot coverage of one ink plane: 0/1, or the covered fraction with antialias."""
    ink = np.take(_cell_means(plane, screen), screen.cell_of_pixel)
    if not antialias:
        return ink > screen.ink_threshold
    # Analytic coverage instead of drawing 4x larger and shrinking: a disc edge crossing a pixel
    # covers about clip(r - d + 1/2, 0, 1) of it, and a disc smaller than a pixel at most pi r^2.
    half_box = np.float32(screen.box / 2)
    dist = np.sqrt(screen.ink_threshold * np.float32(1 / 255)) * half_box
    radius = np.sqrt(ink * np.float32(1 / 255)) * half_box
    cov = np.clip(radius - dist + np.float32(0.5), 0.0, 1.0)
    return np.minimum(cov, np.float32(math.pi) * radius * radius)
