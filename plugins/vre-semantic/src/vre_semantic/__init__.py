"""vre-semantic: registers its representation types with vre (no torch or model code is imported here)."""
from __future__ import annotations

from collections.abc import Callable

from vrecore.plugin import hookimpl


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Semantic experts, the label maps derived from them, and class masks."""
    register("semantic/phg-mae-distil", "vre_semantic.phg_mae:PHGMAEDistilSemantic",
             description="PHG-MAE-Distil (the seed's safeuav): 8 Dronescapes classes, 150k-4.4M parameters",
             aliases=("semantic-segmentation/safeuav",))
    register("semantic/mask2former", "vre_semantic.mask2former:Mask2FormerSemantic",
             description="Mask2Former (transformers): COCO panoptic (133) or Mapillary Vistas (65) classes",
             aliases=("semantic-segmentation/mask2former",))
    register("semantic/map", "vre_semantic.derived:SemanticMap",
             description="a semantic map relabelled into another label set by a class-name table")
    register("semantic/vote", "vre_semantic.derived:SemanticVote",
             description="per-pixel majority class of several semantic maps of one label set")
    register("mask/classes", "vre_semantic.derived:ClassMask",
             description="binary mask of a class set voted over semantic maps (majority, all, any)")
    register("semantic/mediapipe-selfie", "vre_semantic.mediapipe_selfie:MediaPipeSelfie",
             description="MediaPipe selfie segmentation (person vs background), LiteRT on CPU; optional packages")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The pipeline presets of this plugin (pipeline=dronescapes2, pipeline=dronescapes2_fast)."""
    register("pkg://vre_semantic.conf")
