"""vre-flow: registers its representation types with vre (no torch, OpenCV or model code is imported here)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vrecore.plugin import SeedType, hookimpl, seed_only, seed_pair, seed_parameter


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Optical flows (DIS, Farneback, RAFT, RIFE) and SIFT keypoints; the names are the seed tool's where it has them."""
    register("optical-flow/dis", "vre_flow.classical:DISFlow",
             description="OpenCV DIS optical flow from frame t to t+delta, in pixels (x right, y down)")
    register("optical-flow/farneback", "vre_flow.classical:FarnebackFlow",
             description="OpenCV Farneback optical flow from frame t to t+delta, in pixels (x right, y down)")
    register("optical-flow/raft", "vre_flow.learned:RAFTFlow",
             description="RAFT optical flow (small or large, converted official weights), in pixels")
    register("optical-flow/rife", "vre_flow.learned:RIFEFlow",
             description="RIFE HDv2's flow head (converted weights, as the seed tool uses it), in pixels")
    register("descriptor/sift", "vre_flow.sift:SIFT", description="OpenCV SIFT keypoints as a map of dots (bool)")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The ``flow`` and ``flow_demo`` pipeline presets."""
    register("pkg://vre_flow.conf")


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's RIFE, RAFT (flow in its units) and SIFT (`vre convert-config`)."""
    flow = {"delta": seed_parameter("delta"), "flow_delta_frames": seed_parameter("delta")}
    height, width = seed_pair("inference_height", "inference_width", lambda h, w: {"input_size": [int(h), int(w)]})
    register("optical-flow/rife", SeedType("optical-flow/rife", {
        "uhd": seed_parameter("uhd"),
        "compute_backward_flow": seed_only(False, "the seed itself supports only forward flow"), **flow},
        fixed={"units": "seed"}))
    register("optical-flow/raft", SeedType("optical-flow/raft", {
        "inference_height": height, "inference_width": width, "iters": seed_parameter("iters"), "small": _raft_small,
        "seed": seed_only(None, "vre's RAFT is deterministic; leave seed out"), **flow}, fixed={"units": "seed"}))
    register("descriptor/sift", SeedType("descriptor/sift", {
        **{k: seed_parameter(k) for k in ("sigma", "num_intervals", "max_keypoints", "process_scale")},
        "assumed_blur": seed_only(0.5, "OpenCV's SIFT assumes the seed's default blur"),
        "image_border_width": seed_only(5, "OpenCV's SIFT uses the seed's default border")},
        note="OpenCV's SIFT where the seed has its own numpy SIFT: keypoints differ slightly"))


def _raft_small(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"variant": "small" if value else "things"}
