"""vre-flow: registers its representation types with vre (no torch, OpenCV or model code is imported here)."""
from __future__ import annotations

from collections.abc import Callable

from vrecore.plugin import hookimpl


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
