"""The published weights of vre-depth's experts, as data: one `WeightVariant` per checkpoint."""
from __future__ import annotations

from collections.abc import Mapping

from vrecore.weights import WeightVariant

__all__ = ["DA2_DEFAULT", "DA2_VARIANTS", "DPT_DEFAULT", "DPT_VARIANTS", "MARIGOLD_DEFAULT", "MARIGOLD_VARIANTS"]

_TRANSFORMERS_FILES = ("config.json", "model.safetensors")

# The image processors these checkpoints were published with (DPTImageProcessor settings), applied by
# vre-depth in torch on the whole batch: resize, then (x / 255 - mean) / std.
_DPT_PREPROCESS = {"resample": "bicubic", "keep_aspect_ratio": False, "multiple_of": 1,
                   "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
_DA2_PREPROCESS = {"resample": "bicubic", "keep_aspect_ratio": True, "multiple_of": 14,
                   "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

DPT_VARIANTS: Mapping[str, WeightVariant] = {
    "hybrid-midas": WeightVariant(
        name="hybrid-midas",
        repo_id="Intel/dpt-hybrid-midas",
        # The repo's main branch (11eaf7a1cf4bd70740697dbc216f98980c0aeb03) holds only a pickled
        # pytorch_model.bin; this Hub pull-request ref holds its safetensors conversion.
        revision="refs/pr/7",
        filenames=_TRANSFORMERS_FILES,
        license="apache-2.0",
        num_params=122_377_985,
        meta={"model_type": "dpt", "preprocess": _DPT_PREPROCESS,
              "about": "MiDaS v3 DPT-Hybrid (ViT-B/16 on a ResNet-50), the seed's depth expert"},
    ),
    "large": WeightVariant(
        name="large",
        repo_id="Intel/dpt-large",
        revision="bc15f29aa3a80d532f2ed650b5e16ac48d8958f9",
        filenames=_TRANSFORMERS_FILES,
        license="apache-2.0",
        num_params=343_030_465,
        meta={"model_type": "dpt", "preprocess": _DPT_PREPROCESS, "about": "MiDaS v3 DPT-Large (ViT-L/16)"},
    ),
}
DPT_DEFAULT = "hybrid-midas"

DA2_VARIANTS: Mapping[str, WeightVariant] = {
    "small": WeightVariant(
        name="small",
        repo_id="depth-anything/Depth-Anything-V2-Small-hf",
        revision="5426e4f0f36572d16453bbda7a8389317b1bef99",
        filenames=_TRANSFORMERS_FILES,
        sha256={"model.safetensors": "3152477ce0d8d6978d76b995120de97cb5b928701fd0f817769f59e249a16b70"},
        license="apache-2.0",
        num_params=24_785_089,
        meta={"model_type": "depth_anything", "preprocess": _DA2_PREPROCESS,
              "about": "Depth Anything V2 ViT-S (relative depth)"},
    ),
    "base": WeightVariant(
        name="base",
        repo_id="depth-anything/Depth-Anything-V2-Base-hf",
        revision="b1958afc87fb45a9e3746cb387596094de553ed8",
        filenames=_TRANSFORMERS_FILES,
        license="cc-by-nc-4.0",
        num_params=97_470_785,
        meta={"model_type": "depth_anything", "preprocess": _DA2_PREPROCESS,
              "about": "Depth Anything V2 ViT-B (relative depth); non-commercial licence"},
    ),
}
DA2_DEFAULT = "small"

_MARIGOLD_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)

MARIGOLD_VARIANTS: Mapping[str, WeightVariant] = {
    # No commit hash of these repos could be confirmed without network access: they follow "main".
    "v1-1": WeightVariant(
        name="v1-1",
        repo_id="prs-eth/marigold-depth-v1-1",
        revision="main",
        filenames=_MARIGOLD_FILES,
        license="openrail++",
        meta={"about": "Marigold depth v1.1 (Stable Diffusion 2 fine-tuned for affine-invariant depth)"},
    ),
    "lcm-v1-0": WeightVariant(
        name="lcm-v1-0",
        repo_id="prs-eth/marigold-depth-lcm-v1-0",
        revision="main",
        filenames=_MARIGOLD_FILES,
        license="apache-2.0",
        meta={"about": "Marigold depth v1.0 distilled as a latent consistency model (1-4 steps)"},
    ),
}
MARIGOLD_DEFAULT = "v1-1"
