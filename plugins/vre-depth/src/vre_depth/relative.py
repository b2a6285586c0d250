"""Relative depth from DPT (MiDaS) and Depth Anything V2 through transformers: 0 = near, 1 = far.

torch and transformers are imported only by `setup()` (through `vre_depth._models`); `LearnedRepresentation`
places and frees the model.
"""
from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from vre_depth._common import DEPTH_CONVENTION, check_percentiles, model_input_size, to_percentiles
from vre_depth.colormap import colorize
from vre_depth.variants import DA2_DEFAULT, DA2_VARIANTS, DPT_DEFAULT, DPT_VARIANTS
from vrecore.plugin import Batch, LearnedRepresentation, OutputSpec, SeedDiskLayout, disk_layout_field, variant_field

__all__ = ["DPT", "DepthAnythingV2"]


def _check_input_size(instance: Any, attribute: Any, value: int) -> None:
    step = instance.input_multiple
    if isinstance(value, bool) or not isinstance(value, int) or value < step or value % step:
        raise ValueError(f"input_size must be a positive multiple of {step}, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class _RelativeDepth(SeedDiskLayout, LearnedRepresentation):
    """Shared by the transformers experts, which predict relative inverse depth (disparity).

    ``weights_path``: a local folder with config.json and model.safetensors, used instead of the Hub.
    """

    uses_frames = True
    input_multiple: ClassVar[int]

    input_size: int = attrs.field(validator=_check_input_size)
    """Side of the model's input in pixels; each subclass has the default its checkpoints were trained at."""
    percentiles: tuple[float, float] = attrs.field(default=(2.0, 98.0), converter=to_percentiles,
                                                   validator=check_percentiles)
    """Disparity percentiles taken as farthest and nearest; pixels beyond them clip to 1 and 0."""
    epsilon: float = attrs.field(default=0.05, converter=float, validator=attrs.validators.gt(0.0))
    """Offset of the normalised disparity before inversion: the farthest pixels are (1 + epsilon) / epsilon
    times as far as the nearest."""
    keep_aspect_ratio: bool | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(bool)))
    """How a frame becomes the model's input. null: the checkpoint's rule (DPT squashes it to ``input_size`` square,
    Depth Anything keeps its aspect); true: keep the aspect, the side whose scale to ``input_size`` is nearest 1
    gets it, both sides rounded to multiples of the model's step (32 for DPT, as the seed tool's DPT does)."""

    def model_input(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the model's input, and of its output, for frames of ``frame_size``."""
        rule = self.weight_variant.meta["preprocess"]
        keep = bool(rule["keep_aspect_ratio"]) if self.keep_aspect_ratio is None else self.keep_aspect_ratio
        step = int(rule["multiple_of"]) if keep == bool(rule["keep_aspect_ratio"]) else self.input_multiple
        return model_input_size(frame_size[0], frame_size[1], self.input_size, keep_aspect_ratio=keep, multiple_of=step)

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.model_input(input_size)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float16")

    @property
    def _net(self) -> Any:
        """The loaded `vre_depth._models.DepthNet` (its name before `LearnedRepresentation`; tests patch its model)."""
        return self._model

    def load_model(self, device: Any) -> Any:
        from vre_depth._models import load_depth_net

        return load_depth_net(self.weights(), device)

    def predict(self, batch: Batch) -> np.ndarray:
        # Returned at the model's resolution: the engine resizes to the frame size (bilinear), which also
        # undoes DPT's square squash; ``output_size: native`` keeps it.
        assert batch.frames is not None
        size = self.model_input(batch.frames.shape[1:3])
        return self.model.predict(batch.frames, size, self.percentiles, self.epsilon)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return colorize(memory[..., 0])

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "depth": DEPTH_CONVENTION}


@attrs.define(kw_only=True, eq=False)
class DPT(_RelativeDepth):
    """MiDaS v3 DPT (hybrid or large) relative depth; input squashed to a square ``input_size``."""

    type_name = "depth/dpt"
    variants = DPT_VARIANTS
    input_multiple = 32

    variant: str = variant_field(DPT_DEFAULT)
    input_size: int = attrs.field(default=384, validator=_check_input_size)
    disk_layout: str = disk_layout_field()

    def __attrs_post_init__(self) -> None:
        if self.keep_aspect_ratio and self.weight_variant.meta.get("hybrid"):
            raise ValueError(f"keep_aspect_ratio: true needs a ViT variant such as 'large' (the seed tool's DPT); "
                             f"{self.variant!r} takes only square inputs of its training size")


@attrs.define(kw_only=True, eq=False)
class DepthAnythingV2(_RelativeDepth):
    """Depth Anything V2 (small or base) relative depth.

    The frame keeps its aspect ratio: it is scaled as little as possible for one side to become
    ``input_size`` (the short side, for frames larger than that), both sides rounded to multiples of 14.
    """

    type_name = "depth/depth-anything-v2"
    variants = DA2_VARIANTS
    input_multiple = 14

    variant: str = variant_field(DA2_DEFAULT)
    input_size: int = attrs.field(default=518, validator=_check_input_size)
    disk_layout: str = disk_layout_field()
