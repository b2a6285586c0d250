"""Randomly initialised weights for this plugin's experts, full size or tiny, and seed-style checkpoints of them
(tests, benchmarks, offline runs). Nothing here is used by the representations at run time."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vre_semantic.variants import MASK2FORMER_ALIASES, MASK2FORMER_VARIANTS, PHG_MAE_SIZES

__all__ = ["build_phg_mae_distil", "infer_phg_mae_config", "mask2former_config", "phg_mae_layout_from_seed_hparams",
           "populate_mask2former_hub_cache", "write_mask2former_weights", "write_phg_mae_weights",
           "write_seed_mask2former_checkpoint"]

_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def mask2former_config(variant: str, *, tiny: bool = True) -> Any:
    """A transformers ``Mask2FormerConfig`` of a variant's architecture, or a tiny one of the same kind.

    Full size: Swin-L (IN21k-384) or ResNet-50 backbone with the model zoo's query count; the class
    names are the variant's. Tiny: a 1-block-per-stage backbone and 2 decoder layers (~0.4M parameters).
    """
    from transformers import Mask2FormerConfig, ResNetConfig, SwinConfig

    v = MASK2FORMER_VARIANTS[MASK2FORMER_ALIASES.get(variant, variant)]
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


def _random_mask2former(variant: str, tiny: bool, seed: int) -> Any:
    import torch
    from transformers import Mask2FormerForUniversalSegmentation

    torch.manual_seed(seed)
    return Mask2FormerForUniversalSegmentation(mask2former_config(variant, tiny=tiny)).eval()


def write_mask2former_weights(folder: str | os.PathLike[str], variant: str, *, tiny: bool = True,
                              seed: int = 0) -> Path:
    """Write ``config.json`` + ``model.safetensors`` of a randomly initialised Mask2Former into ``folder``."""
    from transformers.utils import logging as hf_logging

    model = _random_mask2former(variant, tiny, seed)
    folder = Path(folder)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return folder


def write_seed_mask2former_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> tuple[Path, Any]:
    """A tiny random R50 Mapillary Mask2Former saved the way the seed ships ``49189528_1.ckpt``: a torch pickle
    ``{"cfg": JSON, "state_dict": detectron2 names}``. Returns the file and the transformers model it holds."""
    import torch

    from vre_semantic._mask2former_seed import Layout, seed_names, seed_qkv

    model = _random_mask2former("r50-mapillary-vistas-panoptic", True, seed)
    ours = model.state_dict()
    config = model.config
    stages = range(len(config.backbone_config.depths))
    layout = Layout(blocks=tuple(config.backbone_config.depths),
                    shortcuts=tuple(f"model.pixel_level_module.encoder.encoder.stages.{s}.layers.0.shortcut.convolution.weight"
                                    in ours for s in stages),
                    encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers - 1)
    state = {a: ours[b] for a, b in seed_names(layout)}
    for packed, pattern in seed_qkv(layout):
        state[packed] = torch.cat([ours[pattern.format(name)] for name in "qkv"])
    state["criterion.empty_weight"] = ours["criterion.empty_weight"]  # the seed keeps it; the conversion drops it
    cfg = {"MODEL": {"MASK_FORMER": {"NHEADS": config.num_attention_heads}}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cfg": json.dumps(cfg), "state_dict": state}, path)
    return path, model


def populate_mask2former_hub_cache(cache_dir: str | os.PathLike[str], work_dir: str | os.PathLike[str], *,
                                   seed: int = 0) -> None:
    """Put tiny random weights of the Hub variants of Mask2Former into a Hub cache at their repo and revision.

    With `vrecore.testing.use_hub_cache(..., offline=True)`, the experts then load them through the real
    huggingface_hub cache lookup, exactly as they would load the published weights once downloaded.
    """
    from vrecore.testing import populate_hub_cache

    for name, v in MASK2FORMER_VARIANTS.items():
        if v.repo_id is None or v.revision is None:
            continue
        folder = write_mask2former_weights(Path(work_dir) / v.name, name, seed=seed)
        populate_hub_cache(cache_dir, v.repo_id, v.revision, {f: folder / f for f in v.filenames})


# -- PHG-MAE-Distil ------------------------------------------------------------------------------------------------
def build_phg_mae_distil(size: str, **layout: int) -> Any:
    """A randomly initialised PHG-MAE-Distil of ``size`` ("150k", "430k", "1.1M", "4.4M"), in eval mode.

    ``layout`` (``in_channels``, ``out_channels``, ``rgb_offset``, ``semantic_offset``) defaults to the distilled
    checkpoints' [rgb, semantic] (11 in, 11 out); `phg_mae_layout_from_seed_hparams` gives other ones.
    """
    from vre_semantic._phg_mae import PHGMAEDistil

    if size not in PHG_MAE_SIZES:
        raise ValueError(f"unknown PHG-MAE-Distil size {size!r}; choose one of {list(PHG_MAE_SIZES)}")
    return PHGMAEDistil(PHG_MAE_SIZES[size], **layout).eval()


def infer_phg_mae_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Read ``num_filters``, ``in_channels``, ``out_channels`` (and the size name, or None) from tensor shapes."""
    try:
        w_in = state_dict["encoder.conv1.0.weight"]
        w_out = state_dict["decoder.weight"]
    except KeyError as err:
        raise ValueError(f"not a PHG-MAE-Distil state dict: no {err.args[0]!r}") from None
    num_filters, in_channels = int(w_in.shape[0]), int(w_in.shape[1])
    size = next((k for k, v in PHG_MAE_SIZES.items() if v == num_filters), None)
    return {"size": size, "num_filters": num_filters, "in_channels": in_channels, "out_channels": int(w_out.shape[0])}


def phg_mae_layout_from_seed_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Channel layout and normalisation from a seed checkpoint's ``hyper_parameters`` dict.

    Mirrors the seed: offsets are the cumulative sum of ``cfg.model.hparams.data_shape`` channel
    counts (dict order) indexed by ``cfg.data.parameters.task_names.index("rgb" / "semantic_output")``;
    mean/std are ``statistics["rgb"][2]`` / ``[3]``; the training size is ``data_shape["rgb"][1:3]``.
    """
    cfg = hparams["cfg"]
    data_shape: Mapping[str, Sequence[int]] = cfg["model"]["hparams"]["data_shape"]
    task_names: Sequence[str] = cfg["data"]["parameters"]["task_names"]
    params = cfg["model"]["parameters"]
    offsets = [0]
    for shape in data_shape.values():
        offsets.append(offsets[-1] + int(shape[0]))
    stats = hparams["statistics"]["rgb"]
    return {
        "num_filters": int(params["num_filters"]),
        "in_channels": int(params["in_channels"]),
        "out_channels": int(params["out_channels"]),
        "rgb_offset": offsets[task_names.index("rgb")],
        "semantic_offset": offsets[task_names.index("semantic_output")],
        "train_size": tuple(int(v) for v in data_shape["rgb"][1:3]),
        "rgb_mean": tuple(float(v) for v in stats[2]),
        "rgb_std": tuple(float(v) for v in stats[3]),
    }


def write_phg_mae_weights(path: str | os.PathLike[str], size: str = "150k", *, seed: int = 0) -> Path:
    """Write a random PHG-MAE-Distil of ``size`` (with non-trivial BatchNorm statistics) as safetensors."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = build_phg_mae_distil(size)
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
