"""What the depth types share: the depth convention, parameter converters and validators, metadata."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from vrecore.weights import WeightVariant, fetch

__all__ = ["DEPTH_CONVENTION", "check_percentiles", "check_variant", "fetch_weights", "to_opt_str", "to_percentiles",
           "weights_metadata"]

DEPTH_CONVENTION = "relative depth per frame in [0, 1]: 0 = nearest, 1 = farthest (not metric)"


def to_percentiles(value: Any) -> tuple[float, float]:
    """attrs converter: any pair (a Hydra list too) → a tuple of floats."""
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def check_percentiles(instance: Any, attribute: Any, value: tuple[float, ...]) -> None:
    """attrs validator: two percentiles with 0 <= low < high <= 100."""
    if len(value) != 2 or not 0.0 <= value[0] < value[1] <= 100.0:
        raise ValueError(f"{attribute.name} must be [low, high] with 0 <= low < high <= 100, got {list(value)}")


def check_variant(instance: Any, attribute: Any, value: str) -> None:
    """attrs validator: ``value`` names one of the class's ``variants``."""
    if value not in instance.variants:
        raise ValueError(f"unknown variant {value!r}; one of {', '.join(instance.variants)}")


def to_opt_str(value: str | os.PathLike[str] | None) -> str | None:
    """attrs converter: a path or None → str or None."""
    return None if value is None else os.fspath(value)


def weights_metadata(variant: WeightVariant, weights_path: str | None) -> dict[str, Any]:
    """The depth convention and the weights' origin, stored with the output."""
    return {"depth": DEPTH_CONVENTION,
            "weights": {"variant": variant.name, "source": weights_path or variant.source, "license": variant.license}}


def fetch_weights(variant: WeightVariant, weights_path: str | None) -> tuple[Path, str]:
    """The folder holding the variant's files and a description of where it came from, for messages.

    A ``weights_path`` is the user's own choice of files (a fine-tune, a conversion): the digests
    published for the Hub files do not apply to it, its tensors are still checked against the model.
    """
    if weights_path is None:
        return fetch(variant), variant.source
    return fetch(attrs.evolve(variant, sha256=None), local_path=weights_path), f"local path {weights_path}"
