"""The zarr store: representations as sharded zarr v3 arrays on a local folder or any fsspec URL (``s3://...``).
zarr, fsspec and s3fs are imported only when one is opened (``pip install 'vrecore[cloud]'``)."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {"ZarrStore": "vrecore.store.zarr_store.store"}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
