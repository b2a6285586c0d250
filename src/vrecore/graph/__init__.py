"""What to compute and how: the representation protocol, the registry that plugins fill, the graph built
from a config, and the executor that runs it on a batch of frames."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "BINARY_FORMATS": "vrecore.graph.build",
    "IMAGE_FORMATS": "vrecore.graph.build",
    "ExportSettings": "vrecore.graph.build",
    "Graph": "vrecore.graph.build",
    "Node": "vrecore.graph.build",
    "build_graph": "vrecore.graph.build",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
