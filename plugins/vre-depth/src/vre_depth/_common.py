"""What the depth types share: the depth convention, parameter converters and validators, the diffusers hint."""
from __future__ import annotations

from typing import Any

from vrecore.plugin import PluginError

__all__ = ["DEPTH_CONVENTION", "MARIGOLD_INSTALL_HINT", "check_percentiles", "missing_diffusers_error",
           "model_input_size", "to_percentiles"]

DEPTH_CONVENTION = "relative depth per frame in [0, 1]: 0 = nearest, 1 = farthest (not metric)"
MARIGOLD_INSTALL_HINT = "pip install 'vre-depth[marigold]'"


def to_percentiles(value: Any) -> tuple[float, float]:
    """attrs converter: any pair (a Hydra list too) → a tuple of floats."""
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def check_percentiles(instance: Any, attribute: Any, value: tuple[float, ...]) -> None:
    """attrs validator: two percentiles with 0 <= low < high <= 100."""
    if len(value) != 2 or not 0.0 <= value[0] < value[1] <= 100.0:
        raise ValueError(f"{attribute.name} must be [low, high] with 0 <= low < high <= 100, got {list(value)}")


def model_input_size(height: int, width: int, size: int, *, keep_aspect_ratio: bool, multiple_of: int) -> tuple[int, int]:
    """The (h, w) a frame is resized to, with the rule of transformers' DPTImageProcessor.

    Without ``keep_aspect_ratio`` the frame is squashed to ``size`` x ``size``. With it, the side whose
    scale to ``size`` is closest to 1 gets that scale and the other side follows; both sides are then
    rounded to a multiple of ``multiple_of`` (never below it).
    """
    scale_h, scale_w = size / height, size / width
    if keep_aspect_ratio:
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return (max(multiple_of, round(scale_h * height / multiple_of) * multiple_of),
            max(multiple_of, round(scale_w * width / multiple_of) * multiple_of))


def missing_diffusers_error() -> PluginError:
    """The error raised when depth/marigold is used without diffusers."""
    return PluginError(f"depth/marigold needs the diffusers package, which is not installed: {MARIGOLD_INSTALL_HINT}")
