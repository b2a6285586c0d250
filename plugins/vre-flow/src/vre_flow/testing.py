"""Test helpers of vre-flow: clips with known motion made from a real image, test weights, flow comparisons."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vrecore.plugin import Batch

__all__ = ["end_point_error", "make_test_weights", "moving_clip", "neighbour_batch", "save_frames",
           "untrained_network", "warp"]


def moving_clip(image: np.ndarray, frames: int, *, shift: tuple[float, float] = (0.0, 0.0), degrees: float = 0.0,
                size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``image`` moving by the same known motion every frame, and the true forward flow between them.

    One step rotates by ``degrees`` (clockwise on screen) about the centre of the output and then shifts by
    ``shift`` (x, y) pixels; frame k is ``image`` after k steps, cropped to ``size`` (h, w; default the image's)
    from its top-left corner (bicubic interpolation, mirrored borders). Returns uint8 frames (frames, h, w, 3) and
    the flow (frames - 1, h, w, 2) from frame k to frame k + 1 (the same for every k), in pixels, x right, y down.
    """
    import cv2

    h, w = size or image.shape[:2]
    step = np.eye(3)
    # OpenCV's positive angle turns anticlockwise on screen (y points down).
    step[:2] = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -degrees, 1.0)
    step[:2, 2] += shift
    clip, total = [], np.eye(3)
    for _ in range(frames):
        clip.append(cv2.warpAffine(image, total[:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
        total = step @ total
    # Frame k shows the image point q at total_k q, frame k + 1 at step total_k q: pixel p moves to step p.
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    flow = np.stack([step[0, 0] * xx + step[0, 1] * yy + step[0, 2] - xx,
                     step[1, 0] * xx + step[1, 1] * yy + step[1, 2] - yy], axis=-1).astype(np.float32)
    return np.stack(clip), np.broadcast_to(flow, (frames - 1, h, w, 2)).copy()


def untrained_network(kind: str) -> Any:
    """A seeded random-init network: ``raft-large``, ``raft-small`` or ``rife`` (untrained: for shapes and loading)."""
    import torch

    from vre_flow._raft import RAFT
    from vre_flow._rife import IFNet

    torch.manual_seed(0)
    return {"raft-large": lambda: RAFT(small=False), "raft-small": lambda: RAFT(small=True), "rife": IFNet}[kind]()


def make_test_weights(kind: str, path: Path) -> Path:
    """`untrained_network` saved as safetensors at ``path``: a real file of untrained weights."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    # Cloned: the large RAFT holds one norm under two names, which vre convert-weights also writes twice.
    save_file({k: v.clone() for k, v in untrained_network(kind).state_dict().items()}, str(path))
    return path


def end_point_error(flow: np.ndarray, truth: np.ndarray, margin: int = 0) -> float:
    """Mean Euclidean distance between two (..., H, W, 2) flows, ``margin`` pixels from the borders left out."""
    if margin:
        flow, truth = flow[..., margin:-margin, margin:-margin, :], truth[..., margin:-margin, margin:-margin, :]
    return float(np.mean(np.hypot(*np.moveaxis(flow.astype(np.float64) - truth, -1, 0))))


def warp(frames: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Each frame (B, H, W, C) sampled at p + flow(p): the later frame of a pair pulled back onto the earlier one."""
    import cv2

    h, w = flow.shape[1:3]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([cv2.remap(f, xx + fl[..., 0], yy + fl[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f, fl in zip(frames, flow, strict=True)])


def save_frames(frames: np.ndarray, folder: Path) -> Path:
    """Write frames as lossless PNG files 0.png, 1.png... (a video source that vre reads exactly)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def neighbour_batch(offsets: tuple[int, ...], clip: np.ndarray, indices: np.ndarray) -> Batch:
    """The batch of frames ``indices`` of ``clip`` with their neighbours at ``offsets``, clamped as an export does."""
    last = len(clip) - 1
    near = {d: np.clip(indices + d, 0, last) for d in offsets}
    return Batch(indices=indices, frames=clip[indices], deps={}, neighbours={d: clip[i] for d, i in near.items()},
                 neighbour_indices=near)
