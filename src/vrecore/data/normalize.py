"""Normalization of a dataset's items: the modes, the ``normalization`` argument, and scaling by statistics."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vrecore.data.statistics import TaskStatistics
from vrecore.errors import ConfigError

__all__ = ["NORMALIZATIONS", "normalization_modes", "normalize", "normalize_in_place"]

NORMALIZATIONS = ("min_max", "standardization")


def normalization_modes(normalization: Any, tasks: Sequence[str], normalizable: Callable[[str], bool]
                        ) -> dict[str, str]:
    """The ``normalization`` argument (None, a mode, or {task: mode} with a ``"*"`` default) checked against the
    dataset's ``tasks``: task -> mode of every normalized task (class tasks and masks are never normalized)."""
    if normalization is None:
        return {}
    if isinstance(normalization, str):
        modes: dict[str, Any] = {"*": normalization}
    elif isinstance(normalization, Mapping):
        modes = dict(normalization)
    else:
        raise ConfigError(f"normalization must be None, 'min_max', 'standardization' or {{task: mode}}, got "
                          f"{normalization!r}")
    default = modes.pop("*", None)
    for task, mode in modes.items():
        if task not in tasks:
            raise ConfigError(f"normalization names task '{task}', which is not in the dataset "
                              f"({', '.join(tasks)})")
        if mode is not None and not normalizable(task):
            raise ConfigError(f"task '{task}' holds classes or a mask; it is never normalized (leave it out "
                              f"of normalization)")
    out: dict[str, str] = {}
    for task in tasks:
        mode = modes.get(task, default if normalizable(task) else None)
        if mode is None:
            continue
        if mode not in NORMALIZATIONS:
            raise ConfigError(f"normalization {mode!r} (task '{task}') is not one of None, "
                              f"{', '.join(NORMALIZATIONS)}")
        out[task] = mode
    return out


def _scale(stats: TaskStatistics, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, divisor) per channel of a normalization; a constant channel has divisor 1 (it becomes 0)."""
    if mode == "min_max":
        low, span = stats.min, stats.max - stats.min
    else:
        low, span = stats.mean, stats.std
    span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    return low.astype(np.float32), span.astype(np.float32)


def normalize(x: np.ndarray, stats: TaskStatistics, mode: str) -> np.ndarray:
    """(x - min) / (max - min) or (x - mean) / std per channel (last axis)."""
    low, span = _scale(stats, mode)
    return ((x.astype(np.float32) - low) / span).astype(np.float32)


def normalize_in_place(x: np.ndarray, stats: TaskStatistics, mode: str) -> None:
    """`normalize` of a float32 array, written over it."""
    low, span = _scale(stats, mode)
    x -= low
    x /= span
