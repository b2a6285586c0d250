"""Where exported frames are kept: the `Store` protocol, the directory store (npz folders), and verification."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "DirectoryStore": "vrecore.store.directory",
    "FileFacts": "vrecore.store.directory",
    "Store": "vrecore.store.directory",
    "required_folders": "vrecore.store.directory",
    "RECORDS_FILE": "vrecore.store.directory",
    "METADATA_FILE": "vrecore.store.directory",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
