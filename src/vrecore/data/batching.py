"""Stacking ``({task: array}, name)`` items into batches: `collate`, `MISSING_LABEL` and a worker's shared batch."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vrecore.errors import ConfigError

__all__ = ["MISSING_LABEL", "Collated", "MultiTaskItem", "collate", "shared_empty"]

MISSING_LABEL = -1
"""Class index of a missing frame of a class-index task (pass it as ``ignore_index`` to the loss)."""

MultiTaskItem = tuple[dict[str, Any], str]


class Collated(list):  # type: ignore[type-arg]
    """Items of one batch read together; ``batch`` and ``names`` are their collated form."""

    batch: dict[str, Any]
    names: list[str]


def shared_empty(torch: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised tensor in shared memory, allocated there as torch's default_collate does in a worker
    (``share_memory_()`` on a new tensor would copy it there: 2-3x slower)."""
    elem = torch.empty(0, dtype=dtype)
    storage = elem._typed_storage()._new_shared(int(np.prod(shape)), device=elem.device)
    return elem.new(storage).resize_(shape)


def collate(items: Sequence[MultiTaskItem], shapes: Mapping[str, tuple[tuple[int, ...], str]] | None = None
            ) -> tuple[dict[str, Any], list[str]]:
    """Stack ``({task: array}, name)`` items into ``({task: (B, ...)}, names)`` (torch tensors when the items
    are tensors); None values become NaN, or `MISSING_LABEL` for integer tasks. ``shapes``: task ->
    (shape, dtype) for tasks that may be None in every item of a batch."""
    if not items:
        return {}, []
    names = [name for _, name in items]
    tensors = any(not isinstance(v, np.ndarray) and v is not None for d, _ in items for v in d.values())
    out: dict[str, Any] = {}
    for task in items[0][0]:
        values = [d[task] for d, _ in items]
        known = next((v for v in values if v is not None), None)
        if known is not None:
            shape, dtype = tuple(known.shape), str(known.dtype).replace("torch.", "")
        elif shapes and task in shapes:
            shape, dtype = shapes[task]
        else:
            raise ConfigError(f"task '{task}' is missing from every item of the batch and its shape is unknown; "
                              f"use the dataset's collate_fn")
        kind = np.dtype(dtype).kind
        fill = MISSING_LABEL if kind == "i" else np.nan if kind == "f" else 0
        arrays = [np.asarray(v) if v is not None else np.full(shape, fill, dtype) for v in values]
        stacked = np.stack(arrays)
        if tensors:
            import torch

            out[task] = torch.from_numpy(stacked)
        else:
            out[task] = stacked
    return out, names
