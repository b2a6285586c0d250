"""How a type of the seed tool (VRE 1.18) becomes a vre type: a plugin registers one `SeedType` per seed name it owns.

A plugin maps the seed's names in its ``register_seed_types(register)`` hook:
``register("depth/dpt", SeedType("depth/dpt", fixed={"disk_layout": "seed"}))``. Each of the seed's parameters
has a translator, a function ``(value, all_seed_parameters) -> {vre_parameter: value}`` that raises ValueError for
a value vre cannot reproduce; `seed_parameter`, `seed_only` and `seed_pair` make the common ones.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["SeedTranslator", "SeedType", "seed_only", "seed_pair", "seed_parameter"]

SeedTranslator = Callable[[Any, Mapping[str, Any]], dict[str, Any]]
"""``(value, every parameter the seed config gives) -> vre parameters``; ValueError for a value vre refuses."""


@attrs.frozen
class SeedType:
    """How one of the seed's types becomes vre's."""

    ours: str
    """The vre type it becomes."""
    parameters: Mapping[str, SeedTranslator] = attrs.field(factory=dict)
    """The seed's parameter names this type accepts, each with its translator."""
    reads_frames: bool = False
    """The seed reads the video itself where vre's type takes an ``rgb`` dependency."""
    fixed: Mapping[str, Any] = attrs.field(factory=dict)
    """vre parameters that make it compute and store what the seed does."""
    note: str | None = None
    """What still differs from the seed's output."""
    settings: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    """The engine settings (``output_dtype``...) the seed uses for these translated parameters, unless the config
    gives its own."""


def seed_parameter(name: str) -> SeedTranslator:
    """The seed's parameter is vre's parameter ``name``, with the same value."""
    return lambda value, _: {name: value}


def seed_only(expected: Any, why: str) -> SeedTranslator:
    """The seed's parameter is accepted only at ``expected`` (vre has no equivalent for other values: ``why``)."""

    def check(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
        if value != expected and not (expected is None and value is None):
            raise ValueError(f"only {expected!r} is supported ({why})")
        return {}

    return check


def seed_pair(first: str, second: str, build: Callable[[Any, Any], dict[str, Any]]) -> tuple[SeedTranslator,
                                                                                            SeedTranslator]:
    """Translators of two seed parameters that make vre's ``build(first_value, second_value)`` (both must be given)."""

    def from_first(value: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        if second not in params:
            raise ValueError(f"needs '{second}' too")
        return build(value, params[second])

    def from_second(value: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        if first not in params:
            raise ValueError(f"needs '{first}' too")
        return {}

    return from_first, from_second
