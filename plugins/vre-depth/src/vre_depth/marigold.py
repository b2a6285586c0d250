"""Marigold diffusion depth (optional extra ``vre-depth[marigold]``): 0 = near, 1 = far.

diffusers and torch are imported only by `setup()` (through `vre_depth._marigold`); a missing
diffusers is reported by `preflight()`, before any frame is decoded (building the graph does not need it). `LearnedRepresentation`
places and frees the pipeline.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import attrs
import numpy as np

from vre_depth._common import DEPTH_CONVENTION, check_percentiles, missing_diffusers_error, to_percentiles
from vre_depth.colormap import colorize
from vre_depth.variants import MARIGOLD_DEFAULT, MARIGOLD_VARIANTS
from vrecore.plugin import Batch, LearnedRepresentation, OutputSpec, SeedDiskLayout, disk_layout_field, variant_field

__all__ = ["Marigold"]


def _require_diffusers() -> None:
    if importlib.util.find_spec("diffusers") is None:
        raise missing_diffusers_error()


def _int_at_least(low: int, *, optional: bool = False, multiple_of: int = 1) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value % multiple_of:
            also = f" and a multiple of {multiple_of}" if multiple_of > 1 else ""
            none = " (or null for the checkpoint's default)" if optional else ""
            raise ValueError(f"{attribute.name} must be an integer >= {low}{also}{none}, got {value!r}")
    return check


@attrs.define(kw_only=True, eq=False)
class Marigold(SeedDiskLayout, LearnedRepresentation):
    """Marigold (Stable Diffusion fine-tuned for depth): affine-invariant depth, stretched per frame.

    Marigold predicts depth itself (not disparity) in [0, 1] with 0 = near; each frame is stretched
    linearly between two of its percentiles so that every frame spans [0, 1], like the other depth types.
    """

    type_name = "depth/marigold"
    uses_frames = True
    variants = MARIGOLD_VARIANTS

    variant: str = variant_field(MARIGOLD_DEFAULT)
    """v1-1 (best), lcm-v1-0 (fast, 1-4 steps) or v1-0 (the original, the seed's `marigold-v1-0`).
    ``weights_path``: a local folder laid out like the Hub repo
    (model_index.json, unet/, vae/...), used instead of the Hub."""
    denoising_steps: int | None = attrs.field(default=None, validator=_int_at_least(1, optional=True))
    """Denoising steps per prediction; null: the checkpoint's recommended number."""
    ensemble_size: int = attrs.field(default=1, validator=_int_at_least(1))
    """Predictions per frame, from different noise, merged; more is smoother and proportionally slower."""
    processing_resolution: int | None = attrs.field(default=None, validator=_int_at_least(0, optional=True,
                                                                                          multiple_of=8))
    """Long side of the model's input in pixels (multiple of 8); 0: the frame's own; null: the checkpoint's (768)."""
    seed: int = attrs.field(default=0, validator=_int_at_least(0))
    """Seed of the noise; each frame's noise depends only on (seed, frame index), so re-runs and batch
    sizes give the same output."""
    percentiles: tuple[float, float] = attrs.field(default=(2.0, 98.0), converter=to_percentiles,
                                                   validator=check_percentiles)
    """Depth percentiles stretched to 0 and 1; pixels beyond them clip."""
    disk_layout: str = disk_layout_field()

    def preflight(self) -> None:
        # Here, not on creation: translating a config or listing weights builds the graph without diffusers.
        _require_diffusers()
        super().preflight()

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float16")

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The processing resolution's size (the long side at ``processing_resolution``, as diffusers resizes); with
        ``processing_resolution`` 0 or null (the checkpoint's, unknown before loading) the frame's size."""
        side = self.processing_resolution
        if not side:
            return input_size
        h, w = input_size
        return max(1, h * side // max(h, w)), max(1, w * side // max(h, w))

    def load_model(self, device: Any) -> Any:
        _require_diffusers()  # it may have gone since the representation was made
        from vre_depth._marigold import load_pipeline

        return load_pipeline(self.weights(), device)

    def predict(self, batch: Batch) -> np.ndarray:
        # Returned at the processing resolution: the engine resizes to the frame size.
        assert batch.frames is not None
        return self.model.predict(batch.frames, batch.indices, steps=self.denoising_steps,
                                  ensemble_size=self.ensemble_size, resolution=self.processing_resolution,
                                  seed=self.seed, percentiles=self.percentiles)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return colorize(memory[..., 0])

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "depth": DEPTH_CONVENTION}
