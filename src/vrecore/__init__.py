"""vre: turn videos into multi-modal ML datasets, and run the same experts on live streams.

Importing vrecore is light (no torch, no model code); the public names load on first use.
"""
from __future__ import annotations

from vrecore import _moved
from vrecore._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "Representation": "vrecore.graph.representation", "Role": "vrecore.graph.representation",
    "OutputSpec": "vrecore.graph.representation", "Batch": "vrecore.graph.representation",
    "build_graph": "vrecore.graph.build", "Graph": "vrecore.graph.build",
    "open_video": "vrecore.frames.video", "FrameSource": "vrecore.frames.video",
    "run_export": "vrecore.export.run", "ExportResult": "vrecore.export.run",
    "export_videos": "vrecore.export.many", "VideosResult": "vrecore.export.many",
    "get_registry": "vrecore.graph.registry", "hookimpl": "vrecore.graph.hookspecs",
    "VreError": "vrecore.errors", "load_npz": "vrecore.store.npz",
    "regenerate_metadata": "vrecore.export.metadata", "cache_dir": "vrecore.frames.sample",
    "stream": "vrecore.streaming.graph", "StreamResult": "vrecore.streaming.graph",
    "run_graph_stream": "vrecore.streaming.graph",
}

__all__ = ["__version__", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
_moved.install()
