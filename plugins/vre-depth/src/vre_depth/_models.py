"""The torch side of the transformers depth experts: loading, batched preprocessing, disparity → depth.

Imported only from `setup()`, so that discovering vre-depth never imports torch or transformers.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vre_depth._common import model_input_size
from vrecore.plugin import ResolvedWeights, WeightsError, WeightVariant, damaged_fix

__all__ = ["DepthNet", "disparity_to_depth", "load_depth_net", "model_input_size", "predicted_disparity", "stretch"]

log = logging.getLogger(__name__)


def _kth_smallest(flat: torch.Tensor, percent: float) -> torch.Tensor:
    """Per-row value at ``percent`` (nearest rank) of a (B, N) tensor; kthvalue has no size limit."""
    k = round(percent / 100.0 * (flat.shape[1] - 1)) + 1
    return flat.kthvalue(k, dim=1).values


def stretch(values: torch.Tensor, percentiles: Sequence[float], flat_value: float) -> torch.Tensor:
    """Per frame, map (B, h, w) values linearly to [0, 1] between two percentiles, clipping outside.

    A featureless frame (the two percentiles equal up to float noise) has no contrast to stretch: it
    becomes ``flat_value`` everywhere.
    """
    flat = values.flatten(1).float()
    low, high = _kth_smallest(flat, percentiles[0]), _kth_smallest(flat, percentiles[1])
    span = high - low
    featureless = span <= 1e-6 * torch.maximum(high.abs(), low.abs())
    scaled = (values.float() - low[:, None, None]) / span.clamp_min(torch.finfo(torch.float32).tiny)[:, None, None]
    return torch.where(featureless[:, None, None], flat_value, scaled.clamp(0.0, 1.0))


def disparity_to_depth(disparity: torch.Tensor, percentiles: Sequence[float], epsilon: float) -> torch.Tensor:
    """Relative inverse depth (B, h, w) → relative depth in [0, 1], 0 = near, 1 = far, per frame.

    The models' disparity is known only up to scale and shift, so each frame is first stretched to
    n in [0, 1] between two of its percentiles (1 = nearest; outliers clip). Depth is the inverse,
    z = 1 / (n + epsilon), rescaled so that the nearest pixels get 0 and the farthest 1:
    (z - z(1)) / (z(0) - z(1)) = epsilon * (1 - n) / (n + epsilon). ``epsilon`` sets how far the
    farthest pixels are, relative to the nearest: (1 + epsilon) / epsilon times (21 at 0.05). A
    featureless frame (no disparity contrast) is all far (1): nothing in it is known to be near.
    """
    near = stretch(disparity, percentiles, flat_value=0.0)
    return epsilon * (1.0 - near) / (near + epsilon)


def predicted_disparity(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """The model's relative inverse depth (B, h, w) for ``pixel_values`` (B, 3, h, w).

    transformers' DPTForDepthEstimation reshapes a plain ViT's patch tokens to a square grid (the square root of
    their count), so a non-square input fails there; the seed tool's DPT keeps the frame's aspect. Such an input goes
    through the same modules (ViT, neck, head) here, with the patch grid given to the neck as transformers does for
    backbone-based DPTs.
    """
    cfg = model.config
    h, w = pixel_values.shape[-2:]
    if getattr(cfg, "model_type", None) != "dpt" or cfg.is_hybrid or cfg.backbone_config is not None or h == w:
        return model(pixel_values=pixel_values).predicted_depth
    outputs = model.dpt(pixel_values, output_hidden_states=True)
    hidden = [f for i, f in enumerate(outputs.hidden_states[1:]) if i in cfg.backbone_out_indices]
    return model.head(model.neck(hidden, h // cfg.patch_size, w // cfg.patch_size))


class DepthNet:
    """A loaded transformers depth model with its preprocessing, on one device."""

    def __init__(self, model: Any, preprocess: Mapping[str, Any], device: torch.device) -> None:
        self.model, self.device = model, device
        self.resample = str(preprocess["resample"])
        self.keep_aspect_ratio = bool(preprocess["keep_aspect_ratio"])
        self.multiple_of = int(preprocess["multiple_of"])
        std = torch.tensor(preprocess["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(preprocess["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add.
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std

    def pixel_values(self, frames: np.ndarray, input_size: int | tuple[int, int]) -> torch.Tensor:
        """uint8 (B, H, W, 3) RGB → normalised float (B, 3, h, w) on the device, at the model's input size: ``input_size``
        by the checkpoint's rule (`model_input_size`), or (h, w) itself."""
        # uint8 crosses to the device (4x less than float), the conversion happens there.
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        size = input_size if isinstance(input_size, tuple) else model_input_size(
            x.shape[2], x.shape[3], input_size, keep_aspect_ratio=self.keep_aspect_ratio, multiple_of=self.multiple_of)
        if size != tuple(x.shape[2:]):
            # antialias=True is what PIL and torchvision do (and the only bicubic kernel with their a=-0.5);
            # the clamp matches their uint8 result, which cannot overshoot.
            x = F.interpolate(x, size=size, mode=self.resample, antialias=True, align_corners=False).clamp_(0, 255)
        return torch.addcmul(self.shift, x, self.scale)

    def predict(self, frames: np.ndarray, input_size: int | tuple[int, int], percentiles: Sequence[float],
                epsilon: float) -> np.ndarray:
        """uint8 (B, H, W, 3) frames → float32 (B, h, w, 1) relative depth at the model's resolution (called under
        ``torch.inference_mode`` by `LearnedRepresentation.compute`)."""
        disparity = predicted_disparity(self.model, self.pixel_values(frames, input_size))
        return disparity_to_depth(disparity, percentiles, epsilon).unsqueeze(-1).cpu().numpy()


def _one_line(err: BaseException, limit: int = 200) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:limit]}"


def _check_loading(variant: WeightVariant, model: Any, info: Mapping[str, Any], where: str) -> None:
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(info.get("mismatched_keys") or ())
    problems = []
    if mismatched:
        shown = ", ".join(f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched[:3])
        problems.append(f"{len(mismatched)} shape mismatch(es): {shown}" + (", ..." if len(mismatched) > 3 else ""))
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {', '.join(missing[:3])}" + (", ..." if len(missing) > 3 else ""))
    if info.get("error_msgs"):
        problems.append("; ".join(str(m) for m in info["error_msgs"])[:200])
    if problems:
        raise WeightsError(
            f"weights {variant.name!r} ({where}) do not fit the {type(model).__name__} their config.json describes: "
            + "; ".join(problems) + "; the files are from different checkpoints: fetch them again, or fix weights_path=")
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        log.warning("weights %r: %d tensor(s) not used by the model, ignored: %s", variant.name, len(unexpected),
                    ", ".join(unexpected[:4]))


def load_depth_net(weights: ResolvedWeights, device: str | torch.device) -> DepthNet:
    """Load resolved weights (config.json + model.safetensors), safetensors only, onto ``device``.

    Every failure (weights missing or corrupt, another architecture, tensors that do not fit) is a
    `WeightsError` naming the variant.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForDepthEstimation

    variant, folder, where = weights.variant, weights.path, weights.source
    try:
        # Shape mismatches are reported by _check_loading (with the tensor names) instead of raised here.
        model, info = AutoModelForDepthEstimation.from_pretrained(
            folder, use_safetensors=True, output_loading_info=True, ignore_mismatched_sizes=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        raise WeightsError(
            f"weights {variant.name!r} ({where}): cannot load the model from {folder} ({_one_line(err)}); the files are "
            f"corrupt or not a transformers depth checkpoint: {damaged_fix(variant, folder)}") from err
    expected = variant.meta["model_type"]
    if model.config.model_type != expected:
        raise WeightsError(
            f"weights {variant.name!r} ({where}) are a {model.config.model_type!r} model, not {expected!r}; "
            "point weights_path= to a checkpoint of this representation type")
    if getattr(model.config, "depth_estimation_type", "relative") != "relative":
        raise WeightsError(
            f"weights {variant.name!r} ({where}) predict metric depth, not relative inverse depth; "
            "use a relative-depth checkpoint")
    _check_loading(variant, model, info, where)
    target = torch.device(device)
    return DepthNet(model.to(target).eval(), variant.meta["preprocess"], target)
