"""What every semantic map here shares: probabilities in memory, argmax or float16 on disk, colour previews."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from vrecore.plugin import OutputSpec, Representation

__all__ = ["DISK_FORMS", "SemanticMapRepresentation", "colorize", "labels_of", "one_hot"]

DISK_FORMS = ("argmax", "probabilities")


def labels_of(memory: np.ndarray) -> np.ndarray:
    """Class index of every pixel (B, H, W) of a memory-form map (B, H, W, C); ties go to the lower index."""
    return memory.argmax(axis=-1)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot (…, C) of integer labels (…)."""
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"label {int(labels.max())} is out of range for {num_classes} classes")
    return np.eye(num_classes, dtype=np.float32)[labels]


def colorize(labels: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """uint8 RGB image (…, 3) of integer labels (…) through a palette."""
    return np.asarray(colors, dtype=np.uint8)[labels]


def _check_disk_form(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in DISK_FORMS:
        raise ValueError(f"disk_form must be one of {', '.join(DISK_FORMS)}, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class SemanticMapRepresentation(Representation):
    """A per-pixel distribution over named classes.

    Memory form: float32 (B, H, W, C) probabilities (a one-hot map for hard labels). Disk form: the
    argmax as uint8 (H, W) (``disk_form="argmax"``, the default), or float16 (H, W, C) probabilities
    (``disk_form="probabilities"``). Reading an argmax back gives its one-hot map. Classes and colours
    travel in the output spec and the stored metadata; previews colour the argmax.
    """

    disk_form: str = attrs.field(default="argmax", validator=_check_disk_form)

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        """Class names and their RGB colours, in channel order."""
        raise NotImplementedError(f"{type(self).__name__} must implement label_set()")

    def output_spec(self) -> OutputSpec:
        classes, colors = self.label_set()
        if self.disk_form == "probabilities":
            dtype = "float16"
        else:
            dtype = "uint8" if len(classes) <= 256 else "uint16"
        return OutputSpec(channels=len(classes), disk_dtype=dtype, classes=classes, colors=colors)

    def to_disk(self, memory: np.ndarray) -> np.ndarray:
        if self.disk_form == "probabilities":
            return super().to_disk(memory)  # float16, or the run's output_dtype
        return labels_of(memory).astype(self.output_spec().disk_dtype)

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        if self.disk_form == "argmax" and disk.ndim == 3:
            return one_hot(disk.astype(np.int64), self.output_spec().channels)
        return disk.astype(np.float32)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return colorize(labels_of(memory), self.label_set()[1])

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "disk_form": self.disk_form}
