"""Batch export: plan, decode, compute, write and verify every frame of every representation of a video."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "ExportResult": "vrecore.export.run",
    "RepresentationStats": "vrecore.export.run",
    "run_export": "vrecore.export.run",
    "WorkerFailed": "vrecore.export.run",
    "regenerate_metadata": "vrecore.export.metadata",
    "export_videos": "vrecore.export.many",
    "VideosResult": "vrecore.export.many",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
