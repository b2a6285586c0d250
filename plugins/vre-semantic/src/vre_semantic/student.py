"""What a student made by `vre distill` is, without torch: its head, its file's header, its inputs and its metrics.

A student is a PHG-MAE-Distil network trained on an export's input tasks against a teacher task. Its
``.safetensors`` file carries, in the safetensors header's ``__metadata__`` (read here with the standard library,
never unpickled), one JSON entry ``vre.student``: the head (`HEADS`), the input channels and their
normalisation, the training size, the teacher and the held-out metric. `semantic/phg-mae-distil` reads it to
size its output, and the report reads it (through the representation's metadata) to show teacher and student
side by side.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.plugin import WeightsError

__all__ = ["HEADS", "HEADER_KEY", "METRICS", "best_f_score", "delta1", "intersection_over_union", "mean_iou",
           "read_student_header", "student_input"]

HEADER_KEY = "vre.student"
HEADS = ("classes", "mask", "edges", "dense")
"""What the teacher is, hence the student's head: a class map (softmax), a mask (one sigmoid, kept as a
two-class map), an edge map (one sigmoid, a probability), dense floats (raw values)."""
METRICS = {"classes": "miou", "mask": "iou", "edges": "f_score", "dense": "delta1"}
"""The held-out metric of each head, student against teacher (higher is better)."""

_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def read_student_header(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``vre.student`` entry of a safetensors file, or None when the file is not a student (the seed's models).

    Reads only the file's JSON header. A file whose header cannot be read is None too: loading it says why, with
    `load_safetensors`'s advice; a student entry that is damaged is a one-line WeightsError.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < size <= _MAX_HEADER:
                raise ValueError("no safetensors header")
            header = json.loads(f.read(size))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    entry = (header.get("__metadata__") or {}).get(HEADER_KEY) if isinstance(header, dict) else None
    if entry is None:
        return None
    try:
        student = json.loads(entry)
        if student["head"] not in HEADS or int(student["num_filters"]) < 1:
            raise ValueError(f"head {student['head']!r}")
        for key in ("channels", "input_channels", "mean", "std", "input_size"):
            student[key]  # noqa: B018 - a missing key is a damaged header
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{p}: its '{HEADER_KEY}' header is damaged ({err}); run `vre distill` again") from None
    return dict(student)


def student_input(arrays: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The network's input (B, C, H, W) float32 of input tasks in their memory form, each (B, H, W, c): the
    channels side by side, standardised with the training set's per-channel ``mean`` and ``std``. Training and
    `semantic/phg-mae-distil` both go through here, so a student sees at run time what it saw in training."""
    x = np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays], axis=-1)
    m = np.asarray(mean, dtype=np.float32)
    s = np.maximum(np.asarray(std, dtype=np.float32), np.float32(1e-6))
    return np.ascontiguousarray(((x - m) / s).transpose(0, 3, 1, 2))


# -- metrics: numpy, student against teacher, higher is better ---------------------------------------------------
def intersection_over_union(predicted: np.ndarray, target: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty (nothing to find, nothing found)."""
    union = np.logical_or(predicted, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, target).sum() / union)


def mean_iou(predicted: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in either map (integer labels)."""
    ious = []
    for c in range(num_classes):
        p, t = predicted == c, target == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


THRESHOLDS = np.round(np.arange(0.02, 1.0, 0.02), 2)


def best_f_score(probability: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(F-score, threshold): the best F1 of ``probability > threshold`` against the boolean ``target`` over
    `THRESHOLDS`, one threshold for the whole set (as BSDS's ODS), pixel for pixel (no matching tolerance)."""
    positives = int(target.sum())
    counts = np.histogram(probability[target], bins=np.r_[THRESHOLDS, np.inf])[0][::-1].cumsum()[::-1]
    predicted = np.histogram(probability, bins=np.r_[THRESHOLDS, np.inf])[0][::-1].cumsum()[::-1]
    # counts[i]: true positives above THRESHOLDS[i] (bins are [t_i, t_i+1): ">= t", the same up to ties)
    f = np.where(predicted + positives > 0, 2 * counts / np.maximum(predicted + positives, 1), 1.0)
    best = int(np.argmax(f))
    return float(f[best]), float(THRESHOLDS[best])


def delta1(predicted: np.ndarray, target: np.ndarray) -> float:
    """The share of values within a factor 1.25 of the teacher's (depth's δ<1.25), on magnitudes."""
    p, t = np.abs(predicted) + 1e-6, np.abs(target) + 1e-6
    return float((np.maximum(p / t, t / p) < 1.25).mean())


def trivial_baseline(head: str, target: np.ndarray, num_classes: int, train_mean: Any) -> float:
    """The metric of the best constant answer: all-background or all-foreground for a mask, all-edge for an
    edge map, the most frequent training class for a class map (``train_mean``: its index), the training mean
    for dense values."""
    if head == "mask":
        return max(intersection_over_union(np.zeros_like(target), target),
                   intersection_over_union(np.ones_like(target), target))
    if head == "edges":
        return best_f_score(np.ones(target.shape, np.float32), target)[0]
    if head == "classes":
        return mean_iou(np.full_like(target, int(train_mean)), target, num_classes)
    return delta1(np.broadcast_to(np.asarray(train_mean, np.float32), target.shape), target)


def describe(student: Mapping[str, Any]) -> str:
    """One line about a student: ``150k student of 'hed' (edges/hed): held-out f_score 0.74 (trivial 0.21)``."""
    return (f"{student.get('variant', '?')} student of {student.get('teacher')!r} ({student.get('teacher_type')}): "
            f"held-out {student.get('metric')} {student.get('student_vs_teacher', float('nan')):.3f} "
            f"(trivial baseline {student.get('trivial_baseline', float('nan')):.3f})")
