"""The seed tool's Mask2Former checkpoints (detectron2 tensor names) as transformers' Mask2Former (config.json + tensors).

The seed (VRE 1.18.6, ``vre_repository/semantic_segmentation/mask2former``) ships each model-zoo checkpoint as
``{"cfg": <detectron2 config as JSON>, "state_dict": {...}}``, the state dict filled key by key from the
official pickle (its ``convert.py``), so the names are those of the original Mask2Former code: a detectron2
ResNet (``backbone.stem``, ``backbone.res2``..``res5``, FrozenBN), the MSDeformAttn pixel decoder
(``sem_seg_head.pixel_decoder``) and the masked-attention decoder (``sem_seg_head.predictor``). The renaming
follows those modules' attribute names and the correspondence transformers' own conversion script uses
(``convert_mask2former_original_pytorch_checkpoint_to_pytorch.py``, written for Swin backbones); the ResNet part
maps detectron2's bottleneck (stride in the 3x3, ``STRIDE_IN_1X1: false`` in the seed's config) onto
transformers' ``ResNetBackbone``. The sizes are read from the tensors, the head count from the config.

`seed_checkpoint_to_transformers` is the ``transform`` of the ``r50-mapillary-vistas-panoptic`` variant, run by
``vre convert-weights 49189528_1.ckpt OUT --variant mask2former-r50-mapillary-vistas-panoptic``. Before
returning, the result is checked against a transformers model of the inferred configuration: every tensor
present, with its shape.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import torch

from vre_semantic.labels import MAPILLARY_VISTAS_CLASSES
from vrecore.plugin import WeightsError

__all__ = ["Layout", "seed_checkpoint_to_transformers", "seed_names"]

_HEAD = "sem_seg_head"
_BACKBONE = "model.pixel_level_module.encoder"
_PIXEL = "model.pixel_level_module.decoder"
_DECODER = "model.transformer_module.decoder"
_BN = ("weight", "bias", "running_mean", "running_var")
_WB = ("weight", "bias")
_DEFORMABLE_LEVELS, _DEFORMABLE_POINTS = 3, 4


@attrs.frozen
class Layout:
    """How many of each repeated block a Mask2Former has (what the names depend on)."""

    blocks: tuple[int, ...]
    """Bottleneck blocks per ResNet stage (res2..res5)."""
    shortcuts: tuple[bool, ...]
    """Whether a stage's first block has a projection shortcut (when it changes the width or the stride)."""
    encoder_layers: int
    decoder_layers: int
    """Masked-attention decoder layers (transformers' ``decoder_layers`` is one more)."""
    levels: int = _DEFORMABLE_LEVELS
    mask_mlp_layers: int = 3


def _count(keys: list[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.fullmatch(pattern, k))}
    return max(found) + 1 if found else 0


def _layout(keys: list[str]) -> Layout:
    blocks = tuple(_count(keys, rf"backbone\.res{s}\.(\d+)\.conv1\.weight") for s in range(2, 6))
    shortcuts = tuple(f"backbone.res{s}.0.shortcut.weight" in keys for s in range(2, 6))
    return Layout(blocks=blocks, shortcuts=shortcuts,
                  encoder_layers=_count(keys, rf"{_HEAD}\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear1\.weight"),
                  decoder_layers=_count(keys, rf"{_HEAD}\.predictor\.transformer_ffn_layers\.(\d+)\.linear1\.weight"))


def seed_names(layout: Layout) -> Iterator[tuple[str, str]]:
    """(seed name, transformers name) of every tensor copied as it is. The decoder self-attention's packed
    ``in_proj`` (seed) is split into q, k, v (transformers) separately, see `_split_qkv`."""
    yield "backbone.stem.conv1.weight", f"{_BACKBONE}.embedder.embedder.convolution.weight"
    for p in _BN:
        yield f"backbone.stem.conv1.norm.{p}", f"{_BACKBONE}.embedder.embedder.normalization.{p}"
    for s, n in enumerate(layout.blocks):
        for b in range(n):
            seed, ours = f"backbone.res{s + 2}.{b}", f"{_BACKBONE}.encoder.stages.{s}.layers.{b}"
            shortcut = b == 0 and layout.shortcuts[s]
            convs = [(f"conv{i + 1}", f"layer.{i}") for i in range(3)] + ([("shortcut", "shortcut")] if shortcut else [])
            for a, c in convs:
                yield f"{seed}.{a}.weight", f"{ours}.{c}.convolution.weight"
                for p in _BN:
                    yield f"{seed}.{a}.norm.{p}", f"{ours}.{c}.normalization.{p}"
    pixel = f"{_HEAD}.pixel_decoder"
    for name, ours in (("adapter_1", "adapter_1"), ("layer_1", "layer_1")):
        yield f"{pixel}.{name}.weight", f"{_PIXEL}.{ours}.0.weight"
        for p in _WB:
            yield f"{pixel}.{name}.norm.{p}", f"{_PIXEL}.{ours}.1.{p}"
    for i in range(layout.levels):
        for j in range(2):
            for p in _WB:
                yield f"{pixel}.input_proj.{i}.{j}.{p}", f"{_PIXEL}.input_projections.{i}.{j}.{p}"
    yield f"{pixel}.transformer.level_embed", f"{_PIXEL}.level_embed"
    encoder_parts = [("linear1", "fc1"), ("linear2", "fc2"), ("norm1", "self_attn_layer_norm"), ("norm2", "final_layer_norm"),
                     *((f"self_attn.{a}", f"self_attn.{a}")
                       for a in ("sampling_offsets", "attention_weights", "value_proj", "output_proj"))]
    for i in range(layout.encoder_layers):
        for a, c in encoder_parts:
            for p in _WB:
                yield f"{pixel}.transformer.encoder.layers.{i}.{a}.{p}", f"{_PIXEL}.encoder.layers.{i}.{c}.{p}"
    for p in _WB:
        yield f"{pixel}.mask_features.{p}", f"{_PIXEL}.mask_projection.{p}"
    pred = f"{_HEAD}.predictor"
    for i in range(layout.decoder_layers):
        layer = f"{_DECODER}.layers.{i}"
        parts = [(f"transformer_self_attention_layers.{i}.self_attn.out_proj", "self_attn.out_proj"),
                 (f"transformer_self_attention_layers.{i}.norm", "self_attn_layer_norm"),
                 (f"transformer_cross_attention_layers.{i}.multihead_attn.out_proj", "cross_attn.out_proj"),
                 (f"transformer_cross_attention_layers.{i}.norm", "cross_attn_layer_norm"),
                 (f"transformer_ffn_layers.{i}.linear1", "fc1"), (f"transformer_ffn_layers.{i}.linear2", "fc2"),
                 (f"transformer_ffn_layers.{i}.norm", "final_layer_norm")]
        for a, c in parts:
            for p in _WB:
                yield f"{pred}.{a}.{p}", f"{layer}.{c}.{p}"
        cross = f"{pred}.transformer_cross_attention_layers.{i}.multihead_attn"
        yield f"{cross}.in_proj_weight", f"{layer}.cross_attn.in_proj_weight"
        yield f"{cross}.in_proj_bias", f"{layer}.cross_attn.in_proj_bias"
    for p in _WB:
        yield f"{pred}.decoder_norm.{p}", f"{_DECODER}.layernorm.{p}"
        yield f"{pred}.class_embed.{p}", f"class_predictor.{p}"
        for i in range(layout.mask_mlp_layers):
            yield f"{pred}.mask_embed.layers.{i}.{p}", f"{_DECODER}.mask_predictor.mask_embedder.{i}.0.{p}"
    yield f"{pred}.query_embed.weight", "model.transformer_module.queries_embedder.weight"
    yield f"{pred}.query_feat.weight", "model.transformer_module.queries_features.weight"
    yield f"{pred}.level_embed.weight", "model.transformer_module.level_embed.weight"


def seed_qkv(layout: Layout) -> Iterator[tuple[str, str]]:
    """(seed packed in_proj tensor, transformers prefix of its q/k/v projections), weight and bias."""
    for i in range(layout.decoder_layers):
        for p in _WB:
            yield (f"{_HEAD}.predictor.transformer_self_attention_layers.{i}.self_attn.in_proj_{p}",
                   f"{_DECODER}.layers.{i}.self_attn.{{}}_proj.{p}")


def _config(seed: Mapping[str, torch.Tensor], layout: Layout, cfg: Mapping[str, Any]) -> Any:
    from transformers import Mask2FormerConfig, ResNetConfig

    pixel, pred = f"{_HEAD}.pixel_decoder", f"{_HEAD}.predictor"
    hidden = int(seed[f"{pred}.query_feat.weight"].shape[1])
    heads = int(seed[f"{pixel}.transformer.encoder.layers.0.self_attn.sampling_offsets.weight"].shape[0]
                // (layout.levels * _DEFORMABLE_POINTS * 2))
    declared = cfg.get("MODEL", {}).get("MASK_FORMER", {}).get("NHEADS", heads)
    if declared != heads:
        raise WeightsError(f"the checkpoint's decoder has {declared} attention heads and its pixel decoder {heads}; "
                           "transformers' Mask2Former uses one count for both: this checkpoint cannot be converted")
    classes = list(MAPILLARY_VISTAS_CLASSES)
    num_labels = int(seed[f"{pred}.class_embed.weight"].shape[0]) - 1
    if num_labels != len(classes):
        raise WeightsError(f"the checkpoint predicts {num_labels} classes, not the {len(classes)} of Mapillary Vistas: "
                           "it is not 49189528_1.ckpt")
    backbone: Any = ResNetConfig(
        embedding_size=int(seed["backbone.stem.conv1.weight"].shape[0]),
        hidden_sizes=[int(seed[f"backbone.res{s + 2}.0.conv3.weight"].shape[0]) for s in range(len(layout.blocks))],
        depths=list(layout.blocks), layer_type="bottleneck", downsample_in_bottleneck=False,
        out_features=[f"stage{s + 1}" for s in range(len(layout.blocks))])
    config: Any = Mask2FormerConfig
    return config(
        backbone_config=backbone, use_pretrained_backbone=False, num_labels=num_labels,
        id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)},
        num_queries=int(seed[f"{pred}.query_feat.weight"].shape[0]), hidden_dim=hidden,
        feature_size=int(seed[f"{pixel}.mask_features.weight"].shape[1]),
        mask_feature_size=int(seed[f"{pixel}.mask_features.weight"].shape[0]),
        encoder_layers=layout.encoder_layers, decoder_layers=layout.decoder_layers + 1,
        encoder_feedforward_dim=int(seed[f"{pixel}.transformer.encoder.layers.0.linear1.weight"].shape[0]),
        dim_feedforward=int(seed[f"{pred}.transformer_ffn_layers.0.linear1.weight"].shape[0]),
        num_attention_heads=heads, common_stride=4)


def _check_against_model(config: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    from transformers import Mask2FormerForUniversalSegmentation

    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {k: tuple(v.shape) for k, v in Mask2FormerForUniversalSegmentation(config).state_dict().items()
                    if not k.startswith("criterion.")}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k])
    if missing or extra or wrong:
        parts = [f"{len(missing)} tensor(s) missing: {', '.join(missing[:3])}"] if missing else []
        parts += [f"{len(extra)} unexpected: {', '.join(extra[:3])}"] if extra else []
        parts += [f"{len(wrong)} of another shape: {', '.join(wrong[:3])}"] if wrong else []
        raise WeightsError("the converted tensors do not fit transformers' Mask2Former: " + "; ".join(parts))


def seed_checkpoint_to_transformers(checkpoint: Any) -> dict[str, Any]:
    """``{"cfg": json, "state_dict": {...}}`` of the seed → ``{"config.json": text, "model.safetensors": tensors}``."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise WeightsError("not a seed Mask2Former checkpoint: it has no 'state_dict' (expected the seed's "
                           "49189528_1.ckpt, {'cfg': ..., 'state_dict': ...})")
    seed = {k: v for k, v in checkpoint["state_dict"].items() if isinstance(v, torch.Tensor)}
    try:
        cfg = json.loads(checkpoint.get("cfg") or "{}")
    except (TypeError, ValueError):
        cfg = {}
    layout = _layout(list(seed))
    out: dict[str, torch.Tensor] = {}
    absent = []
    for a, b in seed_names(layout):
        if a in seed:
            out[b] = seed[a]
        else:
            absent.append(a)
    for packed, pattern in seed_qkv(layout):
        if packed not in seed:
            absent.append(packed)
            continue
        for name, part in zip("qkv", seed[packed].chunk(3, dim=0), strict=True):
            out[pattern.format(name)] = part.contiguous()
    if absent:
        raise WeightsError(f"the checkpoint lacks {len(absent)} tensor(s) of a Mask2Former with a ResNet backbone "
                           f"(first: {', '.join(absent[:3])}): it is not the seed's 49189528_1.ckpt")
    for k in [k for k in out if k.endswith(".running_var")]:  # detectron2's FrozenBN keeps no batch counter
        out[k.removesuffix("running_var") + "num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    config = _config(seed, layout, cfg)
    _check_against_model(config, out)
    return {"config.json": config.to_json_string(), "model.safetensors": out}
