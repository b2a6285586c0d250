"""vre: turn videos into multi-modal ML datasets, and run the same experts on live streams.

Importing vrecore is light (no torch, no model code); the public names load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Representation": "vrecore.representation", "Role": "vrecore.representation",
    "OutputSpec": "vrecore.representation", "Batch": "vrecore.representation",
    "build_graph": "vrecore.graph", "Graph": "vrecore.graph",
    "open_video": "vrecore.frames", "FrameSource": "vrecore.frames",
    "run_export": "vrecore.export", "ExportResult": "vrecore.export",
    "get_registry": "vrecore.registry", "hookimpl": "vrecore.hookspecs",
    "VreError": "vrecore.errors", "load_npz": "vrecore.npz",
    "regenerate_metadata": "vrecore.metadata", "cache_dir": "vrecore.sample",
    "stream": "vrecore.streaming.graph", "StreamResult": "vrecore.streaming.graph",
    "run_graph_stream": "vrecore.streaming.graph",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vrecore' has no attribute {name!r}")
