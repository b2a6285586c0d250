"""What the depth types share: the depth convention, parameter converters and validators, the diffusers hint."""
from __future__ import annotations

from typing import Any

from vrecore.plugin import PluginError

__all__ = ["DEPTH_CONVENTION", "MARIGOLD_INSTALL_HINT", "check_percentiles", "missing_diffusers_error",
           "to_percentiles"]

DEPTH_CONVENTION = "relative depth per frame in [0, 1]: 0 = nearest, 1 = farthest (not metric)"
MARIGOLD_INSTALL_HINT = "pip install 'vre-depth[marigold]'"


def to_percentiles(value: Any) -> tuple[float, float]:
    """attrs converter: any pair (a Hydra list too) → a tuple of floats."""
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def check_percentiles(instance: Any, attribute: Any, value: tuple[float, ...]) -> None:
    """attrs validator: two percentiles with 0 <= low < high <= 100."""
    if len(value) != 2 or not 0.0 <= value[0] < value[1] <= 100.0:
        raise ValueError(f"{attribute.name} must be [low, high] with 0 <= low < high <= 100, got {list(value)}")


def missing_diffusers_error() -> PluginError:
    """The error raised when depth/marigold is used without diffusers."""
    return PluginError(f"depth/marigold needs the diffusers package, which is not installed: {MARIGOLD_INSTALL_HINT}")
