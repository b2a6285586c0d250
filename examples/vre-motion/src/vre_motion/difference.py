"""`motion/difference`: the absolute grey-level change from each frame to the frame `delta` steps later."""
from __future__ import annotations

import attrs
import numpy as np

from vrecore.plugin import Batch, OutputSpec, Representation


@attrs.define(kw_only=True, eq=False)
class FrameDifference(Representation):
    """|grey(t + delta) - grey(t)| in [0, 1], one channel; the last frames compare with the clip's last frame."""

    type_name = "motion/difference"
    uses_frames = True
    delta: int = attrs.field(default=1, validator=attrs.validators.ge(1))

    def frame_offsets(self) -> tuple[int, ...]:
        return (self.delta,)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float16")

    def compute(self, batch: Batch) -> np.ndarray:
        def grey(frames: np.ndarray) -> np.ndarray:
            return frames.mean(axis=-1, keepdims=True, dtype=np.float32) / 255

        return np.abs(grey(batch.neighbours[self.delta]) - grey(batch.frames))
