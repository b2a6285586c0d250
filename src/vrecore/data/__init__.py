"""Reading exports for training: `MultiTaskDataset`, `collate`, statistics, splits by video, packs.

Importing this package imports neither torch nor any plugin; the names load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MultiTaskDataset": "vrecore.data.dataset", "collate": "vrecore.data.batching",
    "split_videos": "vrecore.data.splits", "MISSING_LABEL": "vrecore.data.batching",
    "HANDLE_MISSING": "vrecore.data._checks", "NORMALIZATIONS": "vrecore.data.normalize",
    "TaskStatistics": "vrecore.data.statistics",
    "pack": "vrecore.data.packing", "PACK_FORMATS": "vrecore.data.packing",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vrecore.data' has no attribute {name!r}")
