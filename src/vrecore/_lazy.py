"""Lazy re-exports: a package names its public objects, and each one's module is imported on first use."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``table`` (public name -> module that defines it)."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's name
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
