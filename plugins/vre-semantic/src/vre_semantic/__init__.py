"""vre-semantic: registers its representation types with vre (no torch or model code is imported here)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vrecore.plugin import SeedType, hookimpl, seed_parameter


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    """Semantic experts, the label maps derived from them, and class masks."""
    register("semantic/phg-mae-distil", "vre_semantic.phg_mae:PHGMAEDistilSemantic",
             description="PHG-MAE-Distil (the seed's safeuav): 8 Dronescapes classes, 150k-4.4M parameters")
    register("semantic/mask2former", "vre_semantic.mask2former:Mask2FormerSemantic",
             description="Mask2Former (transformers): COCO panoptic (133) or Mapillary Vistas (65) classes")
    register("semantic/map", "vre_semantic.derived:SemanticMap",
             description="a semantic map relabelled into another label set by a class-name table")
    register("semantic/vote", "vre_semantic.derived:SemanticVote",
             description="per-pixel majority class of several semantic maps of one label set")
    register("mask/classes", "vre_semantic.derived:ClassMask",
             description="binary mask of a class set voted over semantic maps (majority, all, any)")
    register("semantic/mediapipe-selfie", "vre_semantic.mediapipe_selfie:MediaPipeSelfie",
             description="MediaPipe selfie segmentation (person vs background), LiteRT on CPU; optional packages")


@hookimpl
def register_commands(cli: Any) -> None:
    """`vre distill`: train a PHG-MAE-Distil student on an export against one of its representations."""
    cli.command("distill", "vre_semantic.distill:main",
                help="train a small real-time student (PHG-MAE-Distil) on an export's expert (the teacher)")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    """The pipeline presets of this plugin (pipeline=dronescapes2, pipeline=dronescapes2_fast)."""
    register("pkg://vre_semantic.conf")


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's semantic segmentations: class indices or probabilities, as it stores them (`vre convert-config`)."""
    register("semantic-segmentation/safeuav", SeedType("semantic/phg-mae-distil", {
        "variant": seed_parameter("variant"), "disk_data_argmax": _safeuav_disk_form}, settings=_probabilities_dtype))
    register("semantic-segmentation/mask2former", SeedType("semantic/mask2former", {
        "model_id": _mask2former_variant, "disk_data_argmax": _disk_form}, settings=_probabilities_dtype))


def _disk_form(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"disk_form": "argmax" if value else "probabilities"}


def _safeuav_disk_form(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's SafeUAV stores its raw logits (no softmax) when it does not argmax them."""
    return {"disk_form": "argmax"} if value else {"disk_form": "probabilities", "scores": "logits"}


def _mask2former_variant(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"variant": str(value)}  # the seed's model ids (47429163_0...) are variant names of ours too


def _probabilities_dtype(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The seed stores probabilities as float16."""
    return {"output_dtype": "float16"} if parameters.get("disk_form") == "probabilities" else {}
