"""vre-geometry: registers its representation types with vre (no torch or model code is imported here)."""
from __future__ import annotations

from typing import Callable

from vrecore import hookimpl


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Representation types of this plugin (filled in by its issue)."""
