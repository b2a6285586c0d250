"""The ``semantic/mask2former`` representation: transformers' Mask2Former turned into per-pixel class probabilities."""
from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vre_semantic.base import SemanticMapRepresentation
from vre_semantic.variants import MASK2FORMER_ALIASES, MASK2FORMER_DEFAULT, MASK2FORMER_VARIANTS
from vrecore.plugin import Batch, LearnedRepresentation, WeightsError, WeightVariant, damaged_fix, variant_field

__all__ = ["Mask2FormerSemantic", "inference_size"]

log = logging.getLogger(__name__)
SIZE_DIVISIBILITY = 32
"""Mask2Former's backbones downsample by 32: inputs are zero-padded (after normalisation) to a multiple."""


def _positive_or_none(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be a positive number of pixels or null, got {value!r}")


def inference_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge at test time: shortest side to ``min_size``, longest at most ``max_size``."""
    scale = min_size / min(height, width)
    h, w = height * scale, width * scale
    if max(h, w) > max_size:
        shrink = max_size / max(h, w)
        h, w = h * shrink, w * shrink
    return int(h + 0.5), int(w + 0.5)


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _one_line(err: BaseException, n: int = 200) -> str:
    return " ".join(str(err).split())[:n]


@attrs.define(kw_only=True, eq=False)
class Mask2FormerSemantic(LearnedRepresentation, SemanticMapRepresentation):
    """Mask2Former (transformers ``Mask2FormerForUniversalSegmentation``) as a semantic map.

    ``variant``: ``swin-large-mapillary-vistas-semantic`` (default, 65 classes),
    ``r50-mapillary-vistas-panoptic`` (65) or ``swin-large-coco-panoptic`` (133), or the seed's ids
    ``49189528_0``, ``49189528_1``, ``47429163_0``. ``weights_path``: a local folder holding
    ``config.json`` and ``model.safetensors``, used instead of the variant's source. Frames are resized
    as detectron2 does at test time (shortest side ``min_size``, longest at most ``max_size``; default:
    the variant's, as the seed), and the semantic map is Mask2Former's semantic inference (class
    probabilities times mask sigmoids, summed over queries), resampled to the frame size and normalised
    per pixel.
    """

    type_name = "semantic/mask2former"
    uses_frames = True
    variants = MASK2FORMER_VARIANTS
    variant_aliases = MASK2FORMER_ALIASES

    variant: str = variant_field(MASK2FORMER_DEFAULT)
    min_size: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_size: int | None = attrs.field(default=None, validator=_positive_or_none)

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        meta = self.weight_variant.meta
        return tuple(meta["classes"]), tuple(meta["colors"])

    # -- weights -----------------------------------------------------------------------------------
    def load_model(self, device: Any) -> Any:
        weights = self.weights()
        config = self._read_config(weights.path, weights.variant)
        return self._load_model(weights.path, config, weights.variant)

    def _read_config(self, folder: Path, variant: WeightVariant) -> Any:
        from transformers import Mask2FormerConfig

        path = folder / "config.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise WeightsError(f"weights {variant.name!r}: cannot read {path} ({_one_line(err)}); "
                               f"{damaged_fix(variant, path)}") from err
        if not isinstance(raw, dict) or raw.get("model_type") != "mask2former":
            kind = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
            raise WeightsError(f"weights {variant.name!r}: {path} describes a {kind!r} model, not mask2former; "
                               f"point weights_path= to a Mask2Former folder")
        config: Any = Mask2FormerConfig.from_dict(raw)
        # Never download ImageNet backbone weights: every tensor comes from model.safetensors.
        config.use_pretrained_backbone = False
        declared = tuple(variant.meta["classes"])
        id2label = config.id2label or {}
        found = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
        if len(found) != len(declared):
            raise WeightsError(f"weights {variant.name!r}: {path} has {len(found)} classes but the variant declares "
                               f"{len(declared)} ({variant.meta['source_checkpoint']}); these weights are another "
                               f"model: fix weights_path= or choose the matching variant")
        differ = [(i, a, b) for i, (a, b) in enumerate(zip(found, declared, strict=True))
                  if _normalised(a) != _normalised(b) and not re.fullmatch(r"LABEL_\d+", a)]
        if differ:
            log.warning("%s: config.json names %d class(es) differently from the variant (first: %s); keeping the "
                        "variant's names, which the mapping tables use", variant.name, len(differ),
                        ", ".join(f"{i}: {a!r} vs {b!r}" for i, a, b in differ[:3]))
        return config

    def _load_model(self, folder: Path, config: Any, variant: WeightVariant) -> Any:
        import torch
        from transformers import Mask2FormerForUniversalSegmentation
        from transformers.utils import logging as hf_logging

        file = folder / "model.safetensors"
        bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()  # vre shows its own progress; a loading bar per expert is noise
        # transformers' load report lists optional tensors as missing; the loading info is checked below instead
        hf_logging.set_verbosity_error()
        try:
            loaded: Any = Mask2FormerForUniversalSegmentation.from_pretrained(
                str(folder), config=config, use_safetensors=True, local_files_only=True, output_loading_info=True,
                dtype=torch.float32)
        except Exception as err:  # transformers raises many types (OSError, SafetensorError, RuntimeError...)
            raise WeightsError(f"weights {variant.name!r}: cannot load {file} ({type(err).__name__}: "
                               f"{_one_line(err)}); the file is corrupt or not this model: "
                               f"{damaged_fix(variant, file)}") from err
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        model, info = loaded
        # transformers reports tensors its modules declare optional (e.g. SwinBackbone's unused swin.layernorm,
        # absent from the published checkpoints) among the missing ones: only the others are an error.
        optional = [re.compile(p) for m in model.modules()
                    for p in getattr(type(m), "_keys_to_ignore_on_load_missing", None) or ()]
        missing = sorted(k for k in info.get("missing_keys", ())
                         if not k.startswith("criterion.") and not any(p.search(k) for p in optional))
        mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
        if missing or mismatched:
            parts = [f"{len(missing)} missing tensor(s): {', '.join(missing[:4])}"] if missing else []
            parts += [f"{len(mismatched)} shape mismatch(es): {', '.join(mismatched[:4])}"] if mismatched else []
            raise WeightsError(f"weights {variant.name!r} do not fit {config.backbone_config.model_type} Mask2Former "
                               f"from {folder}: {'; '.join(parts)}; check that the files match the variant")
        return model

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, batch: Batch) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        meta = self.weight_variant.meta
        frames = torch.as_tensor(batch.frames, device=self.device)
        n, height, width = frames.shape[:3]
        h, w = inference_size(height, width, self.min_size or meta["min_size"], self.max_size or meta["max_size"])
        ph, pw = (math.ceil(v / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY for v in (h, w))
        out = np.empty((n, height, width, len(meta["classes"])), dtype=np.float32)
        x = frames.permute(0, 3, 1, 2).float()
        if (h, w) != (height, width):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=h < height)
        mean = torch.tensor(meta["pixel_mean"], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(meta["pixel_std"], device=x.device).view(1, 3, 1, 1)
        x = F.pad((x - mean) / std, (0, pw - w, 0, ph - h))
        pred = self.model(pixel_values=x)
        class_probs = pred.class_queries_logits.softmax(dim=-1)[..., :-1]  # drop "no object"
        # One bilinear resampling from the mask grid (which spans the padded input) straight to the frame
        # pixels: frame pixel centre (i + 0.5) sits at (i + 0.5) * h / height in the resized input.
        ys = (torch.arange(height, device=x.device) + 0.5) * (h / height) * (2.0 / ph) - 1.0
        xs = (torch.arange(width, device=x.device) + 0.5) * (w / width) * (2.0 / pw) - 1.0
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
        for b in range(n):  # one frame at a time keeps the (queries, H, W) mask stack to one frame
            masks = F.grid_sample(pred.masks_queries_logits[b:b + 1], grid, mode="bilinear",
                                  padding_mode="border", align_corners=False)[0].sigmoid()
            scores = masks.flatten(1).T @ class_probs[b]  # (H*W, C): sum over queries of p(class) * mask
            scores = scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)
            out[b] = scores.view(height, width, -1).cpu().numpy()
        return out

    def metadata(self) -> dict[str, Any]:
        meta = self.weight_variant.meta
        return {**super().metadata(), "min_size": self.min_size or meta["min_size"],
                "max_size": self.max_size or meta["max_size"]}
