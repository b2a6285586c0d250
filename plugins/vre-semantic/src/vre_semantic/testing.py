"""Randomly initialised weights for this plugin's experts, full size or tiny (tests, benchmarks, offline runs)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vre_semantic.variants import (
    MASK2FORMER_ALIASES,
    MASK2FORMER_VARIANTS,
    PHG_MAE_ALIASES,
    PHG_MAE_VARIANTS,
    resolve_variant,
)

__all__ = ["mask2former_config", "populate_semantic_hub_cache", "write_mask2former_weights", "write_phg_mae_weights"]

_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def mask2former_config(variant: str, *, tiny: bool = True) -> Any:
    """A transformers ``Mask2FormerConfig`` of a variant's architecture, or a tiny one of the same kind.

    Full size: Swin-L (IN21k-384) or ResNet-50 backbone with the model zoo's query count; the class
    names are the variant's. Tiny: a 1-block-per-stage backbone and 2 decoder layers (~0.4M parameters).
    """
    from transformers import Mask2FormerConfig, ResNetConfig, SwinConfig

    v = resolve_variant(MASK2FORMER_VARIANTS, MASK2FORMER_ALIASES, variant)
    classes = list(v.meta["classes"])
    resnet = v.name.startswith("mask2former-r50")
    # Keyword dicts: transformers' config classes take their fields as **kwargs, which type checkers cannot see.
    backbone_kind: Any = ResNetConfig if resnet else SwinConfig
    if tiny:
        backbone = backbone_kind(**(
            {"embedding_size": 8, "hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 1, 1], "layer_type": "bottleneck"}
            if resnet else {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 4}),
            out_features=_STAGES)
        sizes: dict[str, Any] = {"num_queries": 8, "hidden_dim": 32, "mask_feature_size": 32, "feature_size": 32,
                                 "encoder_layers": 1, "decoder_layers": 2, "encoder_feedforward_dim": 32,
                                 "dim_feedforward": 32, "num_attention_heads": 2}
    else:
        backbone = backbone_kind(**(
            {"embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048], "depths": [3, 4, 6, 3],
             "layer_type": "bottleneck"} if resnet else
            {"embed_dim": 192, "depths": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48], "window_size": 12,
             "image_size": 384}), out_features=_STAGES)
        sizes = {"num_queries": 200 if "coco" in v.name else 100}
    config: Any = Mask2FormerConfig
    return config(backbone_config=backbone, num_labels=len(classes), id2label=dict(enumerate(classes)),
                  label2id={c: i for i, c in enumerate(classes)}, use_pretrained_backbone=False, **sizes)


def write_mask2former_weights(folder: str | os.PathLike[str], variant: str, *, tiny: bool = True,
                              seed: int = 0) -> Path:
    """Write ``config.json`` + ``model.safetensors`` of a randomly initialised Mask2Former into ``folder``."""
    import torch
    from transformers import Mask2FormerForUniversalSegmentation
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(mask2former_config(variant, tiny=tiny)).eval()
    folder = Path(folder)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return folder


def write_phg_mae_weights(path: str | os.PathLike[str], size: str = "150k", *, seed: int = 0) -> Path:
    """Write a random PHG-MAE-Distil of ``size`` (with non-trivial BatchNorm statistics) as safetensors."""
    import torch
    from safetensors.torch import save_file

    from vre_semantic._phg_mae import build_phg_mae_distil

    meta = resolve_variant(PHG_MAE_VARIANTS, PHG_MAE_ALIASES, size).meta
    torch.manual_seed(seed)
    model = build_phg_mae_distil(meta["size"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def populate_semantic_hub_cache(cache_dir: str | os.PathLike[str], work_dir: str | os.PathLike[str], *,
                                mask2former: tuple[str, ...] = tuple(MASK2FORMER_VARIANTS),
                                phg_mae: tuple[str, ...] = tuple(PHG_MAE_VARIANTS), seed: int = 0) -> None:
    """Put tiny random weights of the given variants into a Hub cache at their declared repo and revision.

    With `vrecore.testing.use_hub_cache(..., offline=True)`, the experts then load them through the real
    huggingface_hub code, exactly as they would load the published weights.
    """
    from vrecore.testing import populate_hub_cache

    work = Path(work_dir)
    # One populate call per (repo, revision): each call makes a snapshot of exactly the files it is given.
    files: dict[tuple[str, str], dict[str, Path]] = {}
    for name in mask2former:
        v = MASK2FORMER_VARIANTS[name]
        folder = write_mask2former_weights(work / v.name, name, seed=seed)
        files.setdefault((str(v.repo_id), str(v.revision)), {}).update({f: folder / f for f in v.filenames})
    for size in phg_mae:
        v = PHG_MAE_VARIANTS[size]
        file = write_phg_mae_weights(work / f"{v.name}.safetensors", size, seed=seed)
        files.setdefault((str(v.repo_id), str(v.revision)), {})[v.filenames[0]] = file
    for (repo_id, revision), content in files.items():
        populate_hub_cache(cache_dir, repo_id, revision, content)
