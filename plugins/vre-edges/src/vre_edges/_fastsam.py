"""FastSAM's "everything" mode in plain torch, as the seed tool runs it: frames -> YOLOv8-seg -> every instance mask.

The steps and their constants are the seed tool's (VRE 1.18.6, ``soft_segmentation/fastsam``), which follows
FastSAM's own predictor (Zhao et al. 2023, github.com/CASIA-IVA-Lab/FastSAM):

1. `network_size`, `preprocess`: RGB in [0, 1], resized (bilinear) so that the longer side is ``input_size`` (1024),
   each side then moved to a multiple of 32 -- up when the remainder is at most 16, else down, as the seed does.
   No letterbox padding.
2. `detections`: candidates whose best class probability exceeds ``conf``; greedy non-maximum suppression
   (boxes of one class suppress those of the same class overlapping them with an IoU above ``iou``), at most 30000
   candidates in and `MAX_DETECTIONS` (300) out, most confident first. Rows: x1, y1, x2, y2, confidence, class,
   mask coefficients.
3. `full_frame_rule`: box sides within 20 pixels of the image border are moved onto it, and a box overlapping the
   whole image with an IoU above 0.9 becomes the whole image (keeping its confidence and mask coefficients), as
   FastSAM's predictor does before it assembles the masks.
4. `instance_map`: each mask is sigmoid(coefficients . prototypes), upsampled (bilinear) from stride 4 to the
   network's input size, cut to its box, thresholded at 0.5. Every pixel then gets the number of the smallest
   mask covering it -- the mask the seed's picture shows on top there -- counted from 1 in the order of step 2
   (most confident first); 0 where no mask covers it.

`fastsam_checkpoint_files` is the ``vre convert-weights --variant`` transform of Ultralytics' ``FastSAM-*.pt``
files: it checks, on the stand-ins of the pickled model, every architectural fact the tensors cannot carry.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vre_edges._yolov8_seg import BN_EPS, STRIDES, YoloV8Seg, arch_of
from vrecore.plugin import WeightsError

__all__ = [
    "MAX_DETECTIONS",
    "detections",
    "fastsam_checkpoint_files",
    "full_frame_rule",
    "instance_map",
    "instance_maps",
    "network_size",
    "nms",
    "preprocess",
]

MAX_DETECTIONS = 300
_MAX_NMS = 30000
_MAX_WH = 7680  # offset between classes in class-aware suppression (Ultralytics' max box size)
_BORDER = 20
_FULL_FRAME_IOU = 0.9


def _multiple_of_32(x: int) -> int:
    r = x % 32
    return x + (32 - r) % 32 if x < 32 or r <= 16 else x - r


def network_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(h, w) the network runs at for a ``height`` x ``width`` frame: longer side ``input_size``, multiples of 32."""
    if height > width:
        h, w = input_size, width * input_size // height
    else:
        h, w = height * input_size // width, input_size
    return _multiple_of_32(h), _multiple_of_32(w)


def preprocess(frames: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 RGB frames (B, H, W, 3) -> float (B, 3, h, w) in [0, 1] at ``size``, bilinear (no antialiasing)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices of the boxes (N, 4) x1 y1 x2 y2 kept by greedy non-maximum suppression, best score first, at most
    ``limit``: a box is dropped when a kept, better-scored one overlaps it with an IoU above ``iou``. float32
    arithmetic in the order torchvision's CPU kernel uses."""
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float32)
    x1, y1, x2, y2 = b.T
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(b), bool)
    kept: list[int] = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == limit:
            break
        rest = slice(i + 1, None)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        # The IoU is float32 and the threshold a double, compared as doubles (as in C++).
        alive[rest] &= ~((inter / (areas[i] + areas[rest] - inter)).astype(np.float64) > iou)
    return order[np.asarray(kept, np.int64)]


def detections(pred: torch.Tensor, conf: float, iou: float, nc: int) -> torch.Tensor:
    """One frame's network predictions (4 + nc + nm, A) -> kept detections (n, 6 + nm): x1, y1, x2, y2,
    confidence, class, mask coefficients; most confident first."""
    x = pred.t()
    box, cls, coef = x[:, :4], x[:, 4:4 + nc], x[:, 4 + nc:]
    best, label = cls.max(1, keepdim=True)
    xyxy = torch.cat((box[:, :2] - box[:, 2:] / 2, box[:, :2] + box[:, 2:] / 2), 1)
    rows = torch.cat((xyxy, best, label.float(), coef), 1)[best[:, 0] > conf]
    if not len(rows):
        return rows
    rows = rows[torch.argsort(rows[:, 4], descending=True, stable=True)[:_MAX_NMS]]
    shifted = (rows[:, :4] + rows[:, 5:6] * _MAX_WH).cpu().numpy()
    keep = nms(shifted, rows[:, 4].cpu().numpy(), iou, MAX_DETECTIONS)
    return rows[torch.from_numpy(keep).to(rows.device)]


def full_frame_rule(rows: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Detections with sides near the border moved onto it, and those covering nearly the whole frame made the
    whole frame (class 0, their own confidence and coefficients); a new tensor."""
    rows = rows.clone()
    x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    zero = torch.zeros((), dtype=rows.dtype, device=rows.device)
    rows[:, 0] = torch.where(x1 < _BORDER, zero, x1)
    rows[:, 1] = torch.where(y1 < _BORDER, zero, y1)
    rows[:, 2] = torch.where(x2 > width - _BORDER, zero + width, x2)
    rows[:, 3] = torch.where(y2 > height - _BORDER, zero + height, y2)
    x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    inter = ((torch.minimum(x2, zero + width) - torch.maximum(x1, zero)).clamp(0)
             * (torch.minimum(y2, zero + height) - torch.maximum(y1, zero)).clamp(0))
    union = float(width * height) + (x2 - x1) * (y2 - y1) - inter
    whole = inter / union > _FULL_FRAME_IOU
    rows[whole, :4] = torch.tensor([0.0, 0.0, width, height], dtype=rows.dtype, device=rows.device)
    rows[whole, 5] = 0.0
    return rows


def instance_map(rows: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
    """(h, w) int64 map of one frame: at each pixel the 1-based number of the smallest mask covering it, 0 where
    none does. ``rows``: detections (n, 6 + nm); ``proto``: prototypes (nm, h / 4, w / 4).

    A mask is only ever non-zero inside its box, so each is upsampled over its box alone: prototype cells of the box
    plus one on each side, upsampled x4, sample exactly the points (with the same weights) that upsampling the whole
    map samples there.
    """
    nm, ph, pw = proto.shape
    h, w = 4 * ph, 4 * pw
    n = len(rows)
    none = torch.iinfo(torch.int64).max
    best = torch.full((h, w), none, dtype=torch.int64, device=proto.device)
    if n:
        probs = (rows[:, 6:] @ proto.float().view(nm, -1)).sigmoid().view(n, ph, pw)
        # Pixel column c is in the box when x1 <= c < x2, that is ceil(x1) <= c < ceil(x2); rows alike.
        limits = torch.tensor([w, h, w, h], dtype=rows.dtype, device=rows.device)
        boxes = torch.minimum(rows[:, :4].ceil().clamp(min=0), limits).long().tolist()
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            if x1 <= x0 or y1 <= y0:
                continue
            r0, r1 = max(y0 // 4 - 1, 0), min((y1 - 1) // 4 + 2, ph)
            c0, c1 = max(x0 // 4 - 1, 0), min((x1 - 1) // 4 + 2, pw)
            up = F.interpolate(probs[i, r0:r1, c0:c1][None, None], size=(4 * (r1 - r0), 4 * (c1 - c0)),
                               mode="bilinear", align_corners=False)[0, 0]
            mask = up[y0 - 4 * r0:y1 - 4 * r0, x0 - 4 * c0:x1 - 4 * c0] > 0.5
            # A pixel keeps the smallest covering mask, the earliest on ties: the least key area * n + number.
            key = int(mask.sum()) * n + i
            region = best[y0:y1, x0:x1]
            region[mask & (region > key)] = key
    covered = best != none
    out = torch.zeros((h, w), dtype=torch.int64, device=proto.device)
    out[covered] = best[covered] % max(n, 1) + 1
    return out


def instance_maps(pred: torch.Tensor, proto: torch.Tensor, conf: float, iou: float, nc: int) -> torch.Tensor:
    """(B, h, w) int64 instance maps of a batch from the network's outputs (see the module's steps 2-4)."""
    h, w = 4 * proto.shape[2], 4 * proto.shape[3]
    return torch.stack([instance_map(full_frame_rule(detections(p, conf, iou, nc), h, w), q)
                        for p, q in zip(pred, proto, strict=True)])


# ------------------------------------------------------------------------------------------------------------------
# converting Ultralytics' FastSAM-*.pt (read with vrecore.weights.convert's stand-ins)
# ------------------------------------------------------------------------------------------------------------------

# yolov8-seg.yaml's layers: the class of each and where its input comes from (-1: the previous layer).
_LAYERS: tuple[tuple[str, int | list[int]], ...] = (
    ("Conv", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1),
    ("C2f", -1), ("SPPF", -1), ("Upsample", -1), ("Concat", [-1, 6]), ("C2f", -1), ("Upsample", -1),
    ("Concat", [-1, 4]), ("C2f", -1), ("Conv", -1), ("Concat", [-1, 12]), ("C2f", -1), ("Conv", -1),
    ("Concat", [-1, 9]), ("C2f", -1), ("Segment", [15, 18, 21]),
)
_SHORTCUT_LAYERS = (2, 4, 6, 8)  # the backbone's C2f bottlenecks add their input; the neck's do not


def _kind(obj: Any) -> str:
    return str(getattr(type(obj), "pickled_name", type(obj).__name__)).rpartition(".")[2]


def _attr(obj: Any, name: str, where: str) -> Any:
    state = vars(obj) if hasattr(obj, "__dict__") else {}
    if name not in state:
        raise WeightsError(f"{where} ({_kind(obj)}) has no attribute {name!r}: not an Ultralytics YOLOv8-seg model")
    return state[name]


def _children(obj: Any, where: str) -> dict[str, Any]:
    children = _attr(obj, "_modules", where)
    return {k: v for k, v in children.items() if v is not None}


def _walk(obj: Any, where: str) -> list[tuple[str, Any]]:
    found = [(where, obj)]
    for name, child in _children(obj, where).items():
        found += _walk(child, f"{where}.{name}")
    return found


def _check_yolov8_seg(model: Any) -> None:
    """Refuse (WeightsError) a pickled model whose structure differs from `YoloV8Seg`'s in what tensors cannot show."""
    if _kind(model) != "SegmentationModel":
        raise WeightsError(f"the checkpoint holds a {_kind(model)}, not an Ultralytics SegmentationModel")
    layers = list(_children(_attr(model, "_modules", "model").get("model"), "model.model").values())
    if len(layers) != len(_LAYERS):
        raise WeightsError(f"the model has {len(layers)} layers, not the {len(_LAYERS)} of YOLOv8-seg")
    for i, (layer, (kind, source)) in enumerate(zip(layers, _LAYERS, strict=True)):
        where = f"model.{i}"
        if _kind(layer) != kind or _attr(layer, "f", where) != source:
            raise WeightsError(f"layer {where} is a {_kind(layer)} fed by {_attr(layer, 'f', where)}, but YOLOv8-seg "
                               f"has a {kind} fed by {source} there")
        if kind == "C2f":
            for name, block in _children(_children(layer, where)["m"], f"{where}.m").items():
                if bool(_attr(block, "add", f"{where}.m.{name}")) != (i in _SHORTCUT_LAYERS):
                    raise WeightsError(f"{where}.m.{name} {'adds' if i not in _SHORTCUT_LAYERS else 'lacks'} the "
                                       "shortcut YOLOv8-seg has there")
        if kind == "Upsample" and (_attr(layer, "mode", where) != "nearest"
                                   or float(_attr(layer, "scale_factor", where)) != 2.0):
            raise WeightsError(f"layer {where} is not a nearest-neighbour x2 upsampling")
    for where, module in _walk(model, "model"):
        kind = _kind(module)
        if kind == "BatchNorm2d" and float(_attr(module, "eps", where)) != BN_EPS:
            raise WeightsError(f"{where} normalises with eps {_attr(module, 'eps', where)}, not {BN_EPS}")
        if kind == "Conv" and _kind(_children(module, where).get("act")) != "SiLU":
            raise WeightsError(f"{where} activates with {_kind(_children(module, where).get('act'))}, not SiLU")
        if kind == "MaxPool2d" and (_attr(module, "kernel_size", where), _attr(module, "stride", where),
                                    _attr(module, "padding", where)) != (5, 1, 2):
            raise WeightsError(f"{where} is not a 5x5 max-pool of stride 1 (SPPF)")
    stride = _attr(layers[-1], "stride", "model.22")
    if [float(s) for s in stride] != [float(s) for s in STRIDES]:
        raise WeightsError(f"the head's strides are {[float(s) for s in stride]}, not {list(STRIDES)}")


def fastsam_checkpoint_files(checkpoint: Any) -> dict[str, dict[str, torch.Tensor]]:
    """``model.safetensors`` of an Ultralytics FastSAM checkpoint read with stand-ins: the float32 state dict of
    its EMA model (else its model, as Ultralytics loads it), after checking the architecture (`_check_yolov8_seg`)
    and that `YoloV8Seg` loads the tensors strictly."""
    from vrecore.plugin import load_into, module_state_dict

    if not isinstance(checkpoint, Mapping) or not ({"ema", "model"} & set(checkpoint)):
        raise WeightsError("the checkpoint is not an Ultralytics one (a dict with 'model' or 'ema')")
    model = checkpoint.get("ema") or checkpoint.get("model")
    try:
        _check_yolov8_seg(model)
    except (TypeError, ValueError, AttributeError) as err:  # an attribute of an unexpected type
        raise WeightsError(f"the checkpoint is not an Ultralytics YOLOv8-seg model ({err})") from err
    state = module_state_dict(model)
    try:
        arch = arch_of(state)
    except ValueError as err:
        raise WeightsError(str(err)) from err
    load_into(YoloV8Seg(arch), state, f"FastSAM ({arch.scale})")
    return {"model.safetensors": state}
