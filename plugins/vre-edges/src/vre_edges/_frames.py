"""Helpers shared by the representation classes: sizes as parameters, rgb dependencies as uint8, frame resizing."""
from __future__ import annotations

import numpy as np

from vrecore.plugin import optional_size

__all__ = ["optional_size", "resize_frames", "rgb_uint8"]


def rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 of an ``rgb`` dependency: uint8 as is, floats read as [0, 1] (as color/hsv reads them)."""
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype.kind == "f":
        return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 frames (B, H, W, 3) at ``size`` (h, w), or unchanged when None or already that size."""
    if size is None or frames.shape[1:3] == size:
        return frames
    import cv2

    h, w = size
    # Area averaging when shrinking: a network run below the frame size must not see aliasing.
    shrink = h <= frames.shape[1] and w <= frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((len(frames), h, w, frames.shape[-1]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (w, h), interpolation=interp).reshape(h, w, -1)
    return out
