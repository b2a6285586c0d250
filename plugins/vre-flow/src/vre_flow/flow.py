"""What every optical flow type shares: frame pairs from the engine's neighbour frames, units, resizing, colours.

Convention: the flow of frame t is the forward flow from frame t to frame t + ``delta``, on frame t's pixel grid,
in pixels, x to the right and y down: the pixel (x, y) of frame t is seen at (x + fx, y + fy) in frame t + delta.

The last ``delta`` frames of a video have no frame t + delta. With ``at_end: backward`` (the default) they get
the backward flow from t to t - delta, negated (the motion of the previous ``delta`` frames continued: exact for
constant velocity); with ``at_end: undefined`` they are NaN. A video with no frame delta away on either side
(fewer than delta + 1 frames) gets NaN everywhere. The stored files say the same as memory (NaN stays NaN in
float16 and float32), so a reader can tell computed flow from undefined flow with ``np.isnan``.

In a live stream (`vrecore.stream`) there is no future frame: the result given with frame s is the flow from
frame s - delta to frame s (the export's flow of frame s - delta), and the first ``delta`` frames are NaN.
"""
from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from vre_flow.colorwheel import flow_to_color
from vrecore.plugin import Batch, OutputSpec, Representation

__all__ = ["AT_END", "UNITS", "OpticalFlow"]

UNITS = ("pixels", "relative", "seed")
"""``pixels``: flow in pixels of the output; ``relative``: x / width and y / height (a fraction of the image);
``seed``: what the seed tool (VRE 1.18) stores: x / height and y / width of the network's output."""
AT_END = ("backward", "undefined")


def _positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:  # type: ignore[type-arg]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class OpticalFlow(Representation):
    """Base of the flow types: a subclass implements `_flows` (pairs of frames -> flow in pixels)."""

    uses_frames: ClassVar[bool] = True

    delta: int = attrs.field(default=1, validator=_positive_int)
    at_end: str = attrs.field(default="backward", validator=attrs.validators.in_(AT_END))
    units: str = attrs.field(default="pixels", validator=attrs.validators.in_(UNITS))

    def frame_offsets(self) -> tuple[int, ...]:
        return (self.delta, -self.delta) if self.at_end == "backward" else (self.delta,)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=2, disk_dtype="float32")

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        return disk.astype(np.float32, copy=False)

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        sources, targets, sign = pair_frames(batch, self.delta, backward=self.at_end == "backward")
        defined = sign != 0
        flow = self._flows(sources[defined], targets[defined])
        h, w = flow.shape[1:3]
        out = np.full((len(batch), h, w, 2), np.nan, np.float32)
        out[defined] = flow * sign[defined, None, None, None]
        return self._from_pixels(out)

    def _flows(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Flow in pixels (K, h, w, 2) float32 from each uint8 RGB frame of ``sources`` to the same row of
        ``targets``, at the size the method works at (the engine resizes it); (0, h, w, 2) for no pairs."""
        raise NotImplementedError

    # -- units ----------------------------------------------------------------------------------------
    def _from_pixels(self, flow: np.ndarray) -> np.ndarray:
        h, w = flow.shape[1:3]
        if self.units == "relative":
            flow = flow / np.array([w, h], np.float32)
        elif self.units == "seed":  # the seed divides the (x, y) channels by (height, width), in that order
            flow = flow / np.array([h, w], np.float32)
        return flow

    def _to_pixels(self, flow: np.ndarray) -> np.ndarray:
        h, w = flow.shape[1:3]
        if self.units == "relative":
            return flow * np.array([w, h], np.float32)
        if self.units == "seed":
            return flow * np.array([h, w], np.float32)
        return flow

    def resize(self, memory: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Bilinear resize; flow in pixels is also scaled (x by the width ratio, y by the height ratio)."""
        if memory.shape[1:3] == tuple(size):
            return memory
        out = super().resize(memory, size)
        if self.units == "pixels":
            out *= np.array([size[1] / memory.shape[2], size[0] / memory.shape[1]], np.float32)
        return out

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        """The Middlebury colour wheel, each frame scaled by its largest speed; NaN (undefined) is black."""
        return flow_to_color(self._to_pixels(memory.astype(np.float32, copy=False)))


def pair_frames(batch: Batch, delta: int, *, backward: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, sign) of a batch: each frame t paired with frame t + delta (sign 1) or, where the
    engine could not give that frame, with frame t - delta (sign -1, when ``backward``), else undefined (sign 0).

    The engine hands clamped neighbours (export) or the newest frames (stream): a neighbour is used only when
    its index is exactly delta away, so both engines follow the same rule.
    """
    assert batch.frames is not None
    indices = np.asarray(batch.indices)
    sign = np.where(np.asarray(batch.neighbour_indices[delta]) == indices + delta, 1, 0)
    targets = batch.neighbours[delta]
    if backward:
        before = (sign == 0) & (np.asarray(batch.neighbour_indices[-delta]) == indices - delta)
        if before.any():
            targets = np.where(before[:, None, None, None], batch.neighbours[-delta], targets)
            sign = np.where(before, -1, sign)
    return batch.frames, targets, sign.astype(np.int8)
