"""Colour representations: the decoded RGB frames and their HSV conversion."""
from __future__ import annotations

import attrs
import numpy as np

from vrecore.graph.representation import Batch, OutputSpec, Representation, Role, unit_to_uint8


@attrs.define(kw_only=True, eq=False)
class RGB(Representation):
    """The video's decoded frames, uint8 RGB."""

    type_name = "color/rgb"
    uses_frames = True

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=3, disk_dtype="uint8")

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        return batch.frames

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return memory


@attrs.define(kw_only=True, eq=False)
class HSV(Representation):
    """Hue, saturation and value of an RGB dependency, each in [0, 1] (float32)."""

    type_name = "color/hsv"
    roles = (Role("rgb", channels=3),)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=3, disk_dtype="float32")

    def compute(self, batch: Batch) -> np.ndarray:
        import cv2

        rgb = batch.deps["rgb"]
        scale = np.float32(1.0 / 255.0 if rgb.dtype == np.uint8 else 1.0)
        out = np.multiply(rgb, scale, dtype=np.float32)
        # OpenCV's float path gives H in degrees [0, 360) and S, V in [0, 1] (the usual formula), in
        # place, ~80x faster than the same formula in numpy; the batch as one tall image is one call
        # (per frame, each call gave the GIL up and waited to take it back behind the writer threads).
        rows = out.reshape(-1, out.shape[-2], 3)
        cv2.cvtColor(rows, cv2.COLOR_RGB2HSV, dst=rows)
        out[..., 0] *= np.float32(1.0 / 360.0)
        return out

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return unit_to_uint8(memory)
