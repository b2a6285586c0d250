"""attrs converters and validators shared by this plugin's types (their messages reach the user verbatim)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

__all__ = ["boolean", "check_colors", "finite", "one_of", "optional_number", "positive", "to_colors"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _is_number(value: Any) -> bool:
    # bool is an int subclass: `window_size: true` in a config is a mistake, not 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def optional_number(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A real number or None (an int is fine where a float is expected)."""
    if value is not None and not _is_number(value):
        raise ValueError(f"{attribute.name} must be a number, got {value!r}")


def finite(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A finite number, or None."""
    optional_number(instance, attribute, value)
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A finite number > 0, or None."""
    finite(instance, attribute, value)
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def boolean(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """true or false (not a string or a number)."""
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false, got {value!r}")


def one_of(choices: Sequence[str]) -> Validator:
    """The value is one of ``choices``."""
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return check


def to_colors(value: Any) -> Any:
    """Lists of lists (as configs give them) to a tuple of tuples; anything else is left to `check_colors`."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(tuple(c) if isinstance(c, Sequence) and not isinstance(c, str) else c for c in value)
    return value


def check_colors(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Two RGB colours (off, on), each three ints in 0..255."""
    ok = isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(c, tuple) and len(c) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c) for c in value)
    if not ok:
        raise ValueError(f"{attribute.name} must be two RGB colours [[r, g, b], [r, g, b]] (off, on) with values "
                         f"0..255, got {value!r}")
