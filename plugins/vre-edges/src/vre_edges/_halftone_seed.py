"""The seed tool's halftone drawing, byte for byte: PIL rotations and ellipses (``renderer: seed``).

VRE 1.18.6's ``soft-segmentation/python-halftone`` (vre_repository/soft_segmentation/halftone/halftone.py, from
philgyford/python-halftone, MIT) resizes the frame to ``resolution`` with OpenCV's bilinear, moves ``percentage``% of
the grey component to K, and per ink rotates the plane with PIL (``rotate(angle, expand=1)``, nearest), draws one PIL
ellipse per ``sample`` x ``sample`` cell whose diameter is ``sqrt(mean / 255) * sample * scale``, rotates back and
crops the centre. PIL's ellipse rasteriser inks more than the disc test of `vre_edges._halftone` at these dot sizes,
so the seed's values come only from drawing the same ellipses; the cell means are computed with numpy (the same
float64 sums as PIL's ``ImageStat``), the drawing and the rotations are PIL's own calls. About 1 s per 240x426 frame.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vre_edges._halftone import _gray_component_replacement

__all__ = ["seed_halftone"]

_ANTIALIAS_SCALE = 4


def seed_halftone(frames: np.ndarray, *, sample: int, scale: int, percentage: float, angles: Sequence[float],
                  antialias: bool, resolution: tuple[int, int] | None, channels: int) -> np.ndarray:
    """float32 (B, h * scale, w * scale, channels) dot planes, as the seed tool stores them ((h, w) = ``resolution``,
    else the frame's)."""
    out = []
    for frame in frames:
        if resolution is not None and frame.shape[:2] != tuple(resolution):
            frame = cv2.resize(frame, (int(resolution[1]), int(resolution[0])), interpolation=cv2.INTER_LINEAR)
        planes = _gray_component_replacement(np.ascontiguousarray(frame), percentage)
        h, w = frame.shape[:2]
        dots = [_screen(planes[c], float(angles[c]), sample, scale, antialias, (w, h)) for c in range(channels)]
        out.append(np.stack(dots, axis=-1).astype(np.float32) / 255)
    return np.stack(out)


def _screen(plane: np.ndarray, angle: float, sample: int, scale: int, antialias: bool,
            size: tuple[int, int]) -> np.ndarray:
    """One ink's dots, the seed's ``_halftone`` for one channel: uint8 (h * scale, w * scale)."""
    from PIL import Image, ImageDraw

    angle = int(angle) if float(angle).is_integer() else angle  # the seed's angles are ints
    draw_scale = scale * _ANTIALIAS_SCALE if antialias else scale
    channel = Image.fromarray(plane, "L").rotate(angle, expand=1)
    cw, ch = channel.size
    half_tone = Image.new("L", (cw * draw_scale, ch * draw_scale))
    draw = ImageDraw.Draw(half_tone)
    rows, cols = -(-ch // sample), -(-cw // sample)
    padded = np.zeros((rows * sample, cols * sample), np.float64)
    padded[:ch, :cw] = np.asarray(channel)  # a crop past the edge is black, and counts in the mean
    means = padded.reshape(rows, sample, cols, sample).sum(axis=(1, 3)) / (sample * sample)
    box_size = sample * draw_scale
    for col, x in enumerate(range(0, cw, sample)):  # the seed's loop order: x, then y
        for row, y in enumerate(range(0, ch, sample)):
            draw_diameter = (float(means[row, col]) / 255) ** 0.5 * box_size
            x1 = x * draw_scale + (box_size - draw_diameter) / 2
            y1 = y * draw_scale + (box_size - draw_diameter) / 2
            draw.ellipse([(x1, y1), (x1 + draw_diameter, y1 + draw_diameter)], fill=255)
    half_tone = half_tone.rotate(-angle, expand=1)
    width_half, height_half = half_tone.size
    xx1 = (width_half - size[0] * draw_scale) / 2
    yy1 = (height_half - size[1] * draw_scale) / 2
    half_tone = half_tone.crop((xx1, yy1, xx1 + size[0] * draw_scale, yy1 + size[1] * draw_scale))
    result = np.asarray(half_tone)
    if antialias:  # the seed shrinks the 4x drawing back with its bilinear resize
        result = cv2.resize(result, (size[0] * scale, size[1] * scale), interpolation=cv2.INTER_LINEAR)
    return result
