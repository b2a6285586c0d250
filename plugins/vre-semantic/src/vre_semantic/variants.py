"""The published (and to-be-published) weights of this plugin's experts, declared as data."""
from __future__ import annotations

from vre_semantic.labels import (
    COCO_PANOPTIC_CLASSES,
    COCO_PANOPTIC_COLORS,
    DRONESCAPES_CLASSES,
    DRONESCAPES_COLORS,
    MAPILLARY_VISTAS_CLASSES,
    MAPILLARY_VISTAS_COLORS,
)
from vrecore.errors import WeightsError
from vrecore.weights import WeightVariant

__all__ = [
    "MASK2FORMER_ALIASES",
    "MASK2FORMER_DEFAULT",
    "MASK2FORMER_VARIANTS",
    "PHG_MAE_ALIASES",
    "PHG_MAE_DEFAULT",
    "PHG_MAE_VARIANTS",
    "SEED_RGB_MEAN",
    "SEED_RGB_STD",
    "UNPUBLISHED_REVISION",
    "resolve_variant",
    "unpublished_hint",
]

UNPUBLISHED_REVISION = "to-be-published"
"""Revision of the placeholder Hub repos below: no such repo exists yet. Until one is published, use
``weights_path=`` with a locally converted file (see each variant's ``meta["convert"]``)."""

SEED_RGB_MEAN: tuple[float, float, float] = (95.4980582891499, 103.0128696717979, 85.04794782640131)
SEED_RGB_STD: tuple[float, float, float] = (55.569107621001216, 58.133399225741776, 61.12564370234619)
"""PHG-MAE-Distil input statistics on the 0-255 scale (the seed checkpoints' ``statistics["rgb"]``)."""

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)

# ---------------------------------------------------------------------------------------------------------
# PHG-MAE-Distil (the seed's "safeuav"): four sizes, checkpoints only published as Lightning .ckpt files.
# ---------------------------------------------------------------------------------------------------------
_PHG_MAE = (  # size, num_filters, parameters, the seed's checkpoint stem
    ("150k", 6, 158_639, "model_150k"),
    ("430k", 10, 438_271, "model_430k"),
    ("1.1M", 16, 1_118_539, "model_1M"),
    ("4.4M", 32, 4_462_731, "model_4M"),
)
PHG_MAE_VARIANTS: dict[str, WeightVariant] = {
    size: WeightVariant(
        name=f"phg-mae-distil-{size}",
        repo_id="vre-models/phg-mae-distil",  # placeholder: to be published (see UNPUBLISHED_REVISION)
        revision=UNPUBLISHED_REVISION,
        filenames=(f"{stem}.safetensors",),
        num_params=n_params,
        meta={
            "published": False,
            "convert": f"vre convert-weights {stem}.ckpt {stem}.safetensors --key state_dict",
            "seed_checkpoint": f"{stem}.ckpt",
            "size": size,
            "num_filters": num_filters,
            "in_channels": 11,
            "out_channels": 11,
            "rgb_offset": 0,
            "semantic_offset": 3,
            # The Dronescapes frames the models were distilled on are 960x540; the seed resizes to the
            # training size (nearest) before normalising.
            "input_size": (540, 960),
            "rgb_mean": SEED_RGB_MEAN,
            "rgb_std": SEED_RGB_STD,
            "classes": DRONESCAPES_CLASSES,
            "colors": DRONESCAPES_COLORS,
        },
    )
    for size, num_filters, n_params, stem in _PHG_MAE
}
PHG_MAE_ALIASES = {stem: size for size, _, _, stem in _PHG_MAE}
"""The seed's variant names (``model_4M``...) -> size names."""
PHG_MAE_DEFAULT = "430k"
"""Recommended: within 0.1 mIoU of the 4.4M model on Dronescapes-Test (54.94 vs 55.05) at a tenth of the size."""

# ---------------------------------------------------------------------------------------------------------
# Mask2Former: the seed's three detectron2 checkpoints and their Hugging Face conversions.
# ---------------------------------------------------------------------------------------------------------
_M2F_FILES = ("config.json", "model.safetensors")
MASK2FORMER_VARIANTS: dict[str, WeightVariant] = {
    "swin-large-coco-panoptic": WeightVariant(
        name="mask2former-swin-large-coco-panoptic",
        repo_id="facebook/mask2former-swin-large-coco-panoptic",
        # The commit that added model.safetensors (SFconvertbot, refs/pr/3); main has only pytorch_model.bin.
        revision="a4edee47b1b2662241ceed627430aa22d0647bd0",
        filenames=_M2F_FILES,
        license="other (Mask2Former code and model zoo: MIT)",
        num_params=215_538_682,  # counted on the transformers architecture (200 queries)
        meta={
            "published": True,
            "seed_id": "47429163_0",
            "source_checkpoint": "Mask2Former model zoo, COCO panoptic, maskformer2_swin_L_IN21k_384_bs16_100ep",
            "min_size": 800,
            "max_size": 1333,
            "pixel_mean": IMAGENET_MEAN_255,
            "pixel_std": IMAGENET_STD_255,
            "classes": COCO_PANOPTIC_CLASSES,
            "colors": COCO_PANOPTIC_COLORS,
        },
    ),
    "swin-large-mapillary-vistas-semantic": WeightVariant(
        name="mask2former-swin-large-mapillary-vistas-semantic",
        repo_id="facebook/mask2former-swin-large-mapillary-vistas-semantic",
        # The pull-request ref holding model.safetensors (SFconvertbot commit 7ecc3c5, merged into main as
        # 4772b6b); replace by the full 40-hex commit once it can be looked up.
        revision="refs/pr/2",
        filenames=_M2F_FILES,
        license="other (Mask2Former code and model zoo: MIT)",
        num_params=215_470_006,  # counted on the transformers architecture (100 queries)
        meta={
            "published": True,
            "seed_id": "49189528_0",
            "source_checkpoint": ("Mask2Former model zoo, Mapillary Vistas semantic, "
                                  "maskformer2_swin_L_IN21k_384_bs16_300k"),
            "min_size": 2048,
            "max_size": 2048,
            "pixel_mean": IMAGENET_MEAN_255,
            "pixel_std": IMAGENET_STD_255,
            "classes": MAPILLARY_VISTAS_CLASSES,
            "colors": MAPILLARY_VISTAS_COLORS,
        },
    ),
    "r50-mapillary-vistas-panoptic": WeightVariant(
        name="mask2former-r50-mapillary-vistas-panoptic",
        repo_id="vre-models/mask2former-r50-mapillary-vistas-panoptic",  # placeholder: to be published
        revision=UNPUBLISHED_REVISION,
        filenames=_M2F_FILES,
        license="MIT (Mask2Former model zoo)",
        num_params=44_019_522,  # counted on the transformers architecture (ResNet-50 backbone)
        meta={
            "published": False,
            "convert": ("convert the model zoo's model_final_6c66d0.pkl into a folder holding a transformers "
                        "Mask2Former with a ResNet-50 backbone (config.json + model.safetensors)"),
            "seed_id": "49189528_1",
            "source_checkpoint": "Mask2Former model zoo, Mapillary Vistas panoptic, maskformer2_R50_bs16_300k "
                                 "(model_final_6c66d0.pkl)",
            "min_size": 2048,
            "max_size": 2048,
            "pixel_mean": IMAGENET_MEAN_255,
            "pixel_std": IMAGENET_STD_255,
            "classes": MAPILLARY_VISTAS_CLASSES,
            "colors": MAPILLARY_VISTAS_COLORS,
        },
    ),
}
MASK2FORMER_ALIASES = {v.meta["seed_id"]: k for k, v in MASK2FORMER_VARIANTS.items()}
"""The seed's model ids (``47429163_0``, ``49189528_0``, ``49189528_1``) -> variant names."""
MASK2FORMER_DEFAULT = "swin-large-mapillary-vistas-semantic"


def resolve_variant(variants: dict[str, WeightVariant], aliases: dict[str, str], name: str) -> WeightVariant:
    """The variant called ``name`` (or one of its aliases); ValueError listing the choices otherwise."""
    key = aliases.get(name, name)
    if key not in variants:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(variants)} "
                         f"(or the seed's names {', '.join(aliases)})")
    return variants[key]


def unpublished_hint(variant: WeightVariant, error: WeightsError) -> WeightsError:
    """``error`` with, for a to-be-published variant, how to get its weights another way."""
    if variant.meta.get("published", True):
        return error
    return WeightsError(f"{error} (variant {variant.name!r} is not published yet, {variant.source} is a placeholder: "
                        f"get its weights locally, {variant.meta['convert']}, and set weights_path= to them)")
