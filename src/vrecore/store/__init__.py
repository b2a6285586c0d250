"""Where exported frames are kept: the `Store` protocol, the registered stores (the directory store: npz folders),
and verification."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "Store": "vrecore.store.base",
    "FileFacts": "vrecore.store.base",
    "required_folders": "vrecore.store.base",
    "DirectoryStore": "vrecore.store.directory",
    "RECORDS_FILE": "vrecore.store.directory",
    "METADATA_FILE": "vrecore.store.directory",
    "ZarrStore": "vrecore.store.zarr_store.store",
    "open_store": "vrecore.store.location",
    "choose_store": "vrecore.store.location",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
