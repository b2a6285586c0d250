"""Optical flow as colour: the Middlebury colour wheel of Baker et al. (ICCV 2007), vectorised over a batch."""
from __future__ import annotations

import numpy as np

__all__ = ["COLOR_WHEEL", "flow_to_color"]

# Hue segments of the wheel (red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red) and how
# many wheel entries each spans: the counts of the Middlebury evaluation code, chosen for perceptual evenness.
_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)), (4, (0, 255, 0), (0, 255, 255)),
             (11, (0, 255, 255), (0, 0, 255)), (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))


def _wheel() -> np.ndarray:
    rows = []
    for n, start, end in _SEGMENTS:
        t = np.floor(255 * np.arange(n) / n)[:, None] / 255  # the evaluation code floors each step to an integer
        rows.append(np.asarray(start, np.float64) + t * (np.asarray(end, np.float64) - np.asarray(start, np.float64)))
    return np.concatenate(rows) / 255.0


COLOR_WHEEL: np.ndarray = _wheel()
"""(55, 3) RGB colours in [0, 1] around the wheel; it starts and ends at red, the colour of flow pointing right (+x)."""


def flow_to_color(flow: np.ndarray, max_radius: np.ndarray | float | None = None) -> np.ndarray:
    """uint8 (B, H, W, 3) RGB of a (B, H, W, 2) flow (x right, y down): hue is the direction, saturation the speed.

    Each frame is scaled by its own largest finite speed unless ``max_radius`` (a number or one per frame) is
    given; speeds beyond it are darkened (x 0.75), as in the Middlebury code. Zero flow is white and undefined
    (NaN) flow is black.
    """
    flow = np.asarray(flow, np.float32)
    u, v = flow[..., 0], flow[..., 1]
    finite = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(finite, u, 0.0), np.where(finite, v, 0.0)
    radius = np.hypot(u, v)
    if max_radius is None:
        scale = radius.reshape(len(flow), -1).max(axis=1)
    else:
        scale = np.broadcast_to(np.asarray(max_radius, np.float32), (len(flow),))
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)[:, None, None]
    radius = radius / scale
    n = len(COLOR_WHEEL)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)  # 0 .. n-1 around the wheel
    k0 = np.floor(position).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    color = (1 - frac) * COLOR_WHEEL[k0 % n] + frac * COLOR_WHEEL[k1]
    r = radius[..., None]
    color = np.where(r <= 1, 1 - r * (1 - color), color * 0.75)
    color = np.where(finite[..., None], color, 0.0)
    return (np.clip(color, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
