"""The `vre` command: `dispatch` runs the sub-command registered under a name; each command is a module here."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "main": "vrecore.cli.dispatch",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
