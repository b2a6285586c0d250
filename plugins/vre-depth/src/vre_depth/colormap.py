"""A perceptual colour map for depth previews, built in numpy from the OKLab colour space."""
from __future__ import annotations

import numpy as np

__all__ = ["DEPTH_COLORS", "colorize"]


def _oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """OKLab (N, 3) → gamma-encoded sRGB in [0, 1] (N, 3), clipped to the gamut."""
    to_lms = np.array([[1.0, 0.3963377774, 0.2158037573],
                       [1.0, -0.1055613458, -0.0638541728],
                       [1.0, -0.0894841775, -1.2914855480]])
    to_rgb = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                       [-1.2684380046, 2.6097574011, -0.3413193965],
                       [-0.0041960863, -0.7034186147, 1.7076147010]])
    linear = np.clip((lab @ to_lms.T) ** 3 @ to_rgb.T, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def _depth_colors(n: int = 256) -> np.ndarray:
    # Lightness falls linearly from near (0) to far (1), so the map reads correctly in grey too and equal
    # depth steps look equally large; the hue turns from yellow through green and teal to violet. Chroma
    # stays inside the sRGB gamut all along (clipping there would put visible kinks in the ramp).
    t = np.linspace(0.0, 1.0, n)
    lightness = 0.94 - 0.72 * t
    chroma = 0.085 + 0.04 * (1.0 - t) ** 3
    hue = np.deg2rad(100.0 + 200.0 * t)
    lab = np.stack([lightness, chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1)
    return (_oklab_to_srgb(lab) * 255 + 0.5).astype(np.uint8)


DEPTH_COLORS = _depth_colors()
"""(256, 3) uint8 RGB: row 0 is the colour of depth 0 (near), row 255 that of depth 1 (far)."""


def colorize(depth: np.ndarray) -> np.ndarray:
    """Depth in [0, 1] of any shape → uint8 RGB of that shape + (3,); NaN shows as far."""
    index = np.nan_to_num(depth.astype(np.float32, copy=False), nan=1.0)
    index = (np.clip(index, 0.0, 1.0) * (len(DEPTH_COLORS) - 1) + 0.5).astype(np.intp)
    return DEPTH_COLORS[index]
