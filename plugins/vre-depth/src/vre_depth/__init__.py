"""vre-depth: registers its depth types and pipeline presets with vre (imports no torch or model code)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vrecore.plugin import SeedType, hookimpl, seed_parameter


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


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's depth types, stored in its layout (`vre convert-config`)."""
    # The seed's DPT is MiDaS DPT-Large (backbone vitl16_384); it keeps the frame's aspect at 384 (sides multiples
    # of 32) and stores at that size.
    register("depth/dpt", SeedType("depth/dpt", fixed={"disk_layout": "seed", "variant": "large",
                                                       "keep_aspect_ratio": True}))
    register("depth/marigold", SeedType("depth/marigold", {
        "variant": _marigold_variant, **{k: seed_parameter(k) for k in (
            "denoising_steps", "ensemble_size", "processing_resolution", "seed")}}, fixed={"disk_layout": "seed"}))


def _marigold_variant(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    text = str(value)
    return {"variant": text[len("marigold-"):] if text.startswith("marigold-") else text}
