"""vre-geometry: registers its representation types with vre (imports neither torch nor OpenCV)."""
from __future__ import annotations

from collections.abc import Callable

from vrecore.plugin import SeedType, hookimpl, seed_only, seed_pair, seed_parameter


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Camera normals from depth and the geometric masks built on them, as lazy targets."""
    register("normals/depth-svd", "vre_geometry.normals:NormalsFromDepthSVD",
             description="camera normals by a plane fit over each pixel's depth window, (n + 1) / 2 in [0, 1]")
    register("normals/depth-gradient", "vre_geometry.normals:NormalsFromDepthGradient",
             description="camera normals from central differences of the depth (cheaper, noisier)")
    register("mask/safe-landing", "vre_geometry.masks:SafeLanding",
             description="near-horizontal, near enough (and safe-class) pixels from normals, depth [, semantic]")
    register("mask/depth-range", "vre_geometry.masks:DepthRange",
             description="pixels whose depth lies in [min_depth, max_depth], within an optional mask")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The ``pipeline=normals`` snippet (normals + safe-landing over a representation named ``depth``)."""
    register("pkg://vre_geometry.conf")


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's normals from depth, x-mirrored as it stores them (`vre convert-config`)."""
    width, height = seed_pair("sensor_width", "sensor_height", lambda w, h: {"sensor_size": [int(w), int(h)]})
    every_pixel = seed_only(None, "vre fits every pixel's window")
    register("normals/depth-svd", SeedType("normals/depth-svd", {
        **{k: seed_parameter(k) for k in ("sensor_fov", "sensor_size", "window_size")},
        "sensor_width": width, "sensor_height": height, "input_downsample_step": every_pixel, "stride": every_pixel},
        fixed={"convention": "seed"}))
