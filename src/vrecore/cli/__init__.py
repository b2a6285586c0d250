"""The `vre` command: parses arguments and dispatches to the library; each sub-command is a module here."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "main": "vrecore.cli.app",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
