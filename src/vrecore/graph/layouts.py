"""Stored layouts: the seed tool's disk form of a type, as an opt-in ``disk_layout`` parameter.

vre stores a one-channel output as (H, W) in the smallest dtype that holds it (bool edges, float16 depth).
The seed tool (VRE 1.18) stores every output with its channel axis, (H, W, C), in float32 unless told
otherwise. A type whose default differs in shape or in a non-float dtype mixes in `SeedDiskLayout`:
``disk_layout: seed`` then stores what the seed stores, so that the seed's own loaders and its
``MultiTaskDataset`` read the frames with the shape and dtype they expect. (Float dtypes alone need no
parameter: ``output_dtype: float32`` gives the seed's.)
"""
from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from vrecore.graph.representation import Representation

__all__ = ["DISK_LAYOUTS", "SeedDiskLayout", "disk_layout_field"]

DISK_LAYOUTS = ("vre", "seed")


def disk_layout_field() -> str:
    """The ``disk_layout`` parameter of a type mixing in `SeedDiskLayout` (declare it last, so that the
    type's own parameters keep their order in `vre list`)."""
    return attrs.field(default="vre", validator=attrs.validators.in_(DISK_LAYOUTS))  # type: ignore[no-any-return]


class SeedDiskLayout(Representation):
    """Adds the stored forms of ``disk_layout``: ``vre`` (the type's own) or ``seed`` ((H, W, C) in
    `seed_disk_dtype`). The type declares ``disk_layout: str = disk_layout_field()``."""

    seed_disk_dtype: ClassVar[str] = "float32"
    """The dtype the seed tool stores this type in."""
    # The layout changes only the stored form, which the fingerprint records anyway (dtype and shape).
    unfingerprinted_parameters: ClassVar[tuple[str, ...]] = ("disk_layout",)

    disk_layout: str

    def to_disk(self, memory: np.ndarray) -> np.ndarray:
        if self.disk_layout == "seed":
            return memory.astype(self.seed_disk_dtype, copy=False)
        return super().to_disk(memory)

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        memory = super().from_disk(disk)
        spec_dtype = np.dtype(self.output_spec().disk_dtype)
        if self.disk_layout == "seed" and spec_dtype.kind in "bui" and memory.dtype != spec_dtype:
            return memory.astype(spec_dtype)  # e.g. the seed's float32 {0, 1} edges back to bool
        return memory
