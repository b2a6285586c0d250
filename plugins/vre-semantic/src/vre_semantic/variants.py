"""The weights of this plugin's experts, declared as data: where each comes from, and what it means.

Mask2Former Swin-L (COCO panoptic, Mapillary Vistas semantic) are published as safetensors on the Hugging Face
Hub by the transformers team. The seed's R50 Mapillary Vistas panoptic model and the PHG-MAE-Distil models are
published only as the seed tool's pickled checkpoints (no safetensors copy exists anywhere we could find): they
are `convert-locally` variants, made from the seed's files with ``vre convert-weights ... --variant NAME``.
"""
from __future__ import annotations

from vre_semantic.labels import (
    COCO_PANOPTIC_CLASSES,
    COCO_PANOPTIC_COLORS,
    DRONESCAPES_CLASSES,
    DRONESCAPES_COLORS,
    MAPILLARY_VISTAS_CLASSES,
    MAPILLARY_VISTAS_COLORS,
)
from vrecore.plugin import ConvertRecipe, WeightVariant

__all__ = [
    "MASK2FORMER_ALIASES",
    "MASK2FORMER_DEFAULT",
    "MASK2FORMER_VARIANTS",
    "PHG_MAE_ALIASES",
    "PHG_MAE_DEFAULT",
    "PHG_MAE_SIZES",
    "PHG_MAE_VARIANTS",
    "SEED_RGB_MEAN",
    "SEED_RGB_STD",
]

SEED_WEIGHTS = ("https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/"
                "vre_repository")
"""Where the seed tool (VRE 1.18.6) downloads its checkpoints from (its ``fetch_weights``)."""

SEED_RGB_MEAN: tuple[float, float, float] = (95.4980582891499, 103.0128696717979, 85.04794782640131)
SEED_RGB_STD: tuple[float, float, float] = (55.569107621001216, 58.133399225741776, 61.12564370234619)
"""PHG-MAE-Distil input statistics on the 0-255 scale (the seed checkpoints' ``statistics["rgb"]``)."""

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)

# ---------------------------------------------------------------------------------------------------------
# PHG-MAE-Distil (the seed's "safeuav"): four sizes, published as PyTorch-Lightning .ckpt files whose
# "state_dict" uses this plugin's tensor names (the seed loads it with model.load_state_dict(ckpt["state_dict"])).
# ---------------------------------------------------------------------------------------------------------
PHG_MAE_SIZES: dict[str, int] = {"150k": 6, "430k": 10, "1.1M": 16, "4.4M": 32}
"""Size name -> num_filters."""

# size, parameters, values in the state dict (parameters + BatchNorm statistics), the seed's checkpoint stem, and
# the sha256 of that checkpoint where its git-LFS pointer was read (github.com/Meehai/video-representations-extractor,
# vre_repository/semantic_segmentation/safeuav/weights/, commits 4cf9484 and 84a0265); the 430k and 1M pointers
# were not found.
_PHG_MAE = (
    ("150k", 158_639, 159_644, "model_150k", "7d54fffcf5ace490ad2c8e42dc4751acd2394598b9efb50d8ef0562586ea4fcd"),
    ("430k", 438_271, 439_932, "model_430k", None),
    ("1.1M", 1_118_539, 1_121_184, "model_1M", None),
    ("4.4M", 4_462_731, 4_468_000, "model_4M", "f1ea0f5e1b0ad6d09cfae0a4a691264abd33d635769d5a32a5fac26007ec3f91"),
)
PHG_MAE_VARIANTS: dict[str, WeightVariant] = {
    size: WeightVariant(
        name=f"phg-mae-distil-{size}",
        convert=ConvertRecipe(url=f"{SEED_WEIGHTS}/semantic_segmentation/safeuav/weights/{stem}.ckpt",
                              checkpoint=f"{stem}.ckpt", sha256=digest, key="state_dict"),
        size=4 * n_values,
        # The seed's package is MIT (its PyPI metadata); no separate licence is stated for these weights.
        license="not stated (shipped in the MIT-licensed seed tool)",
        num_params=n_params,
        meta={
            "size": size,
            "num_filters": PHG_MAE_SIZES[size],
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
    for size, n_params, n_values, stem, digest in _PHG_MAE
}
PHG_MAE_ALIASES = {stem: size for size, _, _, stem, _ in _PHG_MAE}
"""The seed's variant names (``model_4M``...) -> size names."""
PHG_MAE_DEFAULT = "430k"
"""Recommended: within 0.1 mIoU of the 4.4M model on Dronescapes-Test (54.94 vs 55.05) at a tenth of the size."""

# ---------------------------------------------------------------------------------------------------------
# Mask2Former: the seed's three model-zoo checkpoints.
# ---------------------------------------------------------------------------------------------------------
_M2F_FILES = ("config.json", "model.safetensors")
_M2F_LICENSE = "other (Mask2Former code and model zoo: MIT)"
MASK2FORMER_VARIANTS: dict[str, WeightVariant] = {
    "swin-large-coco-panoptic": WeightVariant(
        name="mask2former-swin-large-coco-panoptic",
        repo_id="facebook/mask2former-swin-large-coco-panoptic",
        # huggingface.co/facebook/mask2former-swin-large-coco-panoptic/tree/a4edee47b1b2662241ceed627430aa22d0647bd0:
        # SFconvertbot's "Adding `safetensors` variant of this model" (refs/pr/3), config.json 82.2 kB and
        # model.safetensors 866 MB; main holds only pytorch_model.bin.
        revision="a4edee47b1b2662241ceed627430aa22d0647bd0",
        filenames=_M2F_FILES,
        size=866_000_000,  # as the Hub lists it
        license=_M2F_LICENSE,
        num_params=215_538_682,  # counted on the transformers architecture (200 queries)
        meta={
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
        # huggingface.co/facebook/mask2former-swin-large-mapillary-vistas-semantic/tree/main: "Adding `safetensors`
        # variant of this model (#2)" merged as 4772b6b, model.safetensors 866 MB, config.json 79.5 kB. The page
        # gave no full commit hash: the lock file pins main on the first fetch.
        revision="main",
        filenames=_M2F_FILES,
        size=866_000_000,  # as the Hub lists it
        license=_M2F_LICENSE,
        num_params=215_470_006,  # counted on the transformers architecture (100 queries)
        meta={
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
        # No transformers conversion of this model-zoo checkpoint is published (the Hub's facebook/mask2former-*
        # conversions are all Swin). The seed's 49189528_1.ckpt is the model zoo's model_final_6c66d0.pkl (its
        # cfg: MODEL.WEIGHTS) re-saved by the seed's convert.py; git-LFS pointer of
        # github.com/Meehai/video-representations-extractor at 4cf9484: sha256 5594484..., 176,510,597 bytes.
        convert=ConvertRecipe(
            url=f"{SEED_WEIGHTS}/semantic_segmentation/mask2former/weights/49189528_1.ckpt",
            checkpoint="49189528_1.ckpt",
            sha256="559448425969cb833953b04cfb7d93248af6dcb9e8149f8c9004fe868342ab6e",
            transform="vre_semantic._mask2former_seed:seed_checkpoint_to_transformers"),
        filenames=_M2F_FILES,
        size=176_000_000,  # 4 bytes per value of the converted tensors
        license="MIT (Mask2Former model zoo)",
        num_params=44_019_522,  # counted on the transformers architecture (ResNet-50 backbone, 100 queries)
        meta={
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
