"""vre-depth: registers its depth types and pipeline presets with vre (imports no torch or model code)."""
from __future__ import annotations

from collections.abc import Callable

from vrecore.plugin import hookimpl


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Depth types, as lazy targets: their modules import torch only when a graph sets them up."""
    register("depth/dpt", "vre_depth.relative:DPT",
             description="MiDaS DPT (hybrid, large) relative depth in [0, 1], 0 = near")
    register("depth/depth-anything-v2", "vre_depth.relative:DepthAnythingV2",
             description="Depth Anything V2 (small, base) relative depth in [0, 1], 0 = near")
    register("depth/marigold", "vre_depth.marigold:Marigold",
             description="Marigold diffusion depth in [0, 1], 0 = near (needs vre-depth[marigold])")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The ``pipeline=depth`` preset."""
    register("pkg://vre_depth.conf")
