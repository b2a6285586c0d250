"""What `vre collage` and `vre video` share on the command line: KEY=VALUE settings and warnings."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vrecore.errors import ConfigError

__all__ = ["SETTINGS_HELP", "names_list", "parse_settings", "positive_int", "printer"]

SETTINGS_HELP = {
    "frames": "frames=A..B (end exclusive), A..B:N or [0,5,9]: which frames (default: every stored frame)",
    "representations": "representations=a,b,c: which representations, in this order (default: all, in the order of "
                       "the export's config)",
    "rows": "rows=N: rows of the tile grid (default: chosen for the frame's aspect ratio)",
    "cols": "cols=N: columns of the tile grid",
    "max_width": "max_width=PX: scale tiles down so that the picture is at most PX wide",
}


def parse_settings(parser: argparse.ArgumentParser, argv: Sequence[str], keys: Sequence[str]) -> tuple[Any, dict[str, str]]:
    """Parse ``argv`` with ``parser`` (which has a ``settings`` list of KEY=VALUE); returns its namespace and the
    settings, each key one of ``keys``."""
    ns = parser.parse_args(list(argv))
    settings: dict[str, str] = {}
    for item in ns.settings:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("+")
        if not sep or not key:
            raise ConfigError(f"'{item}' is not a KEY=VALUE setting; valid keys: {', '.join(keys)}")
        if key not in keys:
            raise ConfigError(f"unknown setting '{key}'; valid keys: {', '.join(keys)}")
        if key in settings:
            raise ConfigError(f"'{key}' is given twice; give it once")
        settings[key] = value.strip()
    return ns, settings


def positive_int(key: str, value: str | None) -> int | None:
    """``value`` as a positive integer (None stays None); otherwise a one-line error naming ``key``."""
    if value is None or value.lower() in ("", "none", "null", "auto"):
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{key}={value}: give a whole number of 1 or more")
    return number


def names_list(value: str | None) -> list[str] | None:
    """'a,b' or '[a, b]' as a list of names (None or empty: None)."""
    if value is None:
        return None
    names = [n.strip().strip("'\"") for n in value.strip().strip("[]").split(",")]
    return [n for n in names if n] or None


def printer(command: str) -> Callable[[str], None]:
    """A warning callback that prints ``vre COMMAND: warning: ...`` on stderr."""

    def warn(message: str) -> None:
        print(f"vre {command}: warning: {message}", file=sys.stderr, flush=True)

    return warn
