"""The published weights of vre-depth's experts, as data: one `WeightVariant` per checkpoint.

Sources, read from the Hub's own pages (huggingface.co/<repo>/tree/<revision> and /commits/<revision>):
every repo below exists and holds the listed files at the given revision. Where a page gave a full commit
hash it is pinned here; a branch is pinned to its commit by the lock file on the first `vre weights fetch`.
Sizes are the files' sizes as the Hub lists them, or 4 bytes per parameter (float32) where it was not read.
"""
from __future__ import annotations

from collections.abc import Mapping

from vrecore.plugin import WeightVariant

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
        name="dpt-hybrid-midas",
        repo_id="Intel/dpt-hybrid-midas",
        # main (11eaf7a1cf4bd70740697dbc216f98980c0aeb03, huggingface.co/Intel/dpt-hybrid-midas/tree/11eaf7a...)
        # holds only a pickled pytorch_model.bin. The pull-request ref refs/pr/5 holds its safetensors conversion
        # (SFconvertbot commit c20e47f, model.safetensors 490 MB: huggingface.co/Intel/dpt-hybrid-midas/tree/
        # refs%2Fpr%2F5); its full commit hash was not on the page: the lock file pins it.
        revision="refs/pr/5",
        filenames=_TRANSFORMERS_FILES,
        size=490_000_000,
        license="apache-2.0",
        num_params=122_377_985,
        meta={"model_type": "dpt", "preprocess": _DPT_PREPROCESS, "hybrid": True,
              "about": "MiDaS v3 DPT-Hybrid (ViT-B/16 on a ResNet-50)"},
    ),
    "large": WeightVariant(
        name="dpt-large",
        repo_id="Intel/dpt-large",
        # Pinned by the previous author of this table; not re-read here (no network): the lock file records
        # the sha256 of what this commit serves on the first fetch.
        revision="bc15f29aa3a80d532f2ed650b5e16ac48d8958f9",
        filenames=_TRANSFORMERS_FILES,
        size=1_372_121_860,
        license="apache-2.0",
        num_params=343_030_465,
        meta={"model_type": "dpt", "preprocess": _DPT_PREPROCESS,
              "about": "MiDaS v3 DPT-Large (ViT-L/16), the seed's depth/dpt (its DPTDepthModel 'vitl16_384')"},
    ),
}
DPT_DEFAULT = "hybrid-midas"

DA2_VARIANTS: Mapping[str, WeightVariant] = {
    "small": WeightVariant(
        name="depth-anything-v2-small",
        repo_id="depth-anything/Depth-Anything-V2-Small-hf",
        # huggingface.co/depth-anything/Depth-Anything-V2-Small-hf/tree/main: commit 5426e4f ("Change organization
        # to depth-anything (#1)"), model.safetensors 99.2 MB; the full hash and the digest were pinned by the
        # previous author of this table.
        revision="5426e4f0f36572d16453bbda7a8389317b1bef99",
        filenames=_TRANSFORMERS_FILES,
        sha256={"model.safetensors": "3152477ce0d8d6978d76b995120de97cb5b928701fd0f817769f59e249a16b70"},
        size=99_200_000,
        license="apache-2.0",
        num_params=24_785_089,
        meta={"model_type": "depth_anything", "preprocess": _DA2_PREPROCESS,
              "about": "Depth Anything V2 ViT-S (relative depth)"},
    ),
    "base": WeightVariant(
        name="depth-anything-v2-base",
        repo_id="depth-anything/Depth-Anything-V2-Base-hf",
        # Pinned by the previous author of this table; not re-read here.
        revision="b1958afc87fb45a9e3746cb387596094de553ed8",
        filenames=_TRANSFORMERS_FILES,
        size=389_883_140,
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
# Stable Diffusion 2's components in float32: UNet 3.46 GB (the LCM UNet's LFS pointer, commit 2ebd518, lists
# 3,463,980,773 bytes), VAE 335 MB, OpenCLIP text encoder 1.36 GB.
_MARIGOLD_SIZE = 5_160_000_000

MARIGOLD_VARIANTS: Mapping[str, WeightVariant] = {
    "v1-1": WeightVariant(
        name="marigold-depth-v1-1",
        repo_id="prs-eth/marigold-depth-v1-1",
        # The repo, a diffusers MarigoldDepthPipeline with safetensors components: huggingface.co/prs-eth/
        # marigold-depth-v1-1 (its file pages, e.g. blob/refs%2Fpr%2F2/vae/...). No commit hash of main was read:
        # the lock file pins main on the first fetch.
        revision="main",
        filenames=_MARIGOLD_FILES,
        size=_MARIGOLD_SIZE,
        license="openrail++",
        meta={"about": "Marigold depth v1.1 (Stable Diffusion 2 fine-tuned for affine-invariant depth)"},
    ),
    "v1-0": WeightVariant(
        name="marigold-depth-v1-0",
        repo_id="prs-eth/marigold-depth-v1-0",
        # The seed's `marigold-v1-0`: the original Marigold (huggingface.co/prs-eth/marigold-depth-v1-0, formerly
        # prs-eth/marigold-v1-0), the same diffusers layout. No commit hash was read: the lock file pins main.
        revision="main",
        filenames=_MARIGOLD_FILES,
        size=_MARIGOLD_SIZE,
        license="apache-2.0",
        meta={"about": "Marigold depth v1.0 (the paper's model, 10-50 steps)"},
    ),
    "lcm-v1-0": WeightVariant(
        name="marigold-depth-lcm-v1-0",
        repo_id="prs-eth/marigold-depth-lcm-v1-0",
        # huggingface.co/prs-eth/marigold-depth-lcm-v1-0/commits/main: 7a16a37 adds the LCM scheduler config,
        # 3752fef ("copy other components") text_encoder/model.safetensors, vae/diffusion_pytorch_model.safetensors
        # and the tokenizer, 0a1092f the UNet's safetensors, and 25caee5 writes prediction_type "depth" into
        # model_index.json (huggingface.co/prs-eth/marigold-depth-lcm-v1-0/blob/25caee574c15e2b3989a0c9c4d43198743ad8322/
        # model_index.json), which MarigoldDepthPipeline needs. Pinned to that commit.
        revision="25caee574c15e2b3989a0c9c4d43198743ad8322",
        filenames=_MARIGOLD_FILES,
        size=_MARIGOLD_SIZE,
        license="apache-2.0",
        meta={"about": "Marigold depth v1.0 distilled as a latent consistency model (1-4 steps)"},
    ),
}
MARIGOLD_DEFAULT = "v1-1"
