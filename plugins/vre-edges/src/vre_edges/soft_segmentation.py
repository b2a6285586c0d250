"""soft-segmentation/halftone and soft-segmentation/generalized-boundaries: procedural soft segmentations of rgb.

Both store float16: their values are fractions in [0, 1] (dot coverage, normalised soft layers) for which
float16 is exact at 0 and 1 and steps by at most 2**-11 (finer than an 8-bit preview), at half the bytes of
float32; these 3-4 channel full-resolution maps are the largest outputs of the plugin. Pass
``output_dtype: float32`` to store more digits. In memory (and read back) they are float32.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from threadpoolctl import threadpool_limits

from vre_edges._frames import optional_size, rgb_uint8
from vre_edges._generalized_boundaries import MEDIAN_BORDERS, generalized_boundaries, generalized_boundaries_preview
from vre_edges._halftone import halftone, halftone_preview, with_note
from vrecore.plugin import Batch, OutputSpec, Representation, Role

_positive_int = [attrs.validators.instance_of(int), attrs.validators.ge(1)]
_flag = attrs.validators.instance_of(bool)


def _four_angles(value: Sequence[Any]) -> tuple[float, float, float, float]:
    angles = tuple(float(a) for a in value)
    if len(angles) != 4:
        raise ValueError(f"angles must be 4 screen angles in degrees (C, M, Y, K), got {list(value)}")
    return angles  # type: ignore[return-value]


@attrs.define(kw_only=True, eq=False)
class _SoftSegmentation(Representation):
    """float32 [0, 1] maps of an rgb dependency, float16 on disk."""

    roles = (Role("rgb", channels=3),)

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        return super().from_disk(disk).astype(np.float32)


@attrs.define(kw_only=True, eq=False)
class Halftone(_SoftSegmentation):
    """CMYK halftone screens: per ink, a grid of ``sample`` x ``sample`` cells rotated by its angle holds one dot
    whose area follows the cell's ink. Channels C, M, Y (and K with ``include_k``), 1 on a dot, 0 off it
    (fractions at dot edges with ``antialias``). ``percentage`` % of the grey component goes to K. The output is
    ``scale`` times the frame size, of the frame first resized to ``resolution`` [h, w] when given; the engine
    resizes it to the frame (or to ``output_size``)."""

    type_name = "soft-segmentation/halftone"

    sample: int = attrs.field(default=3, validator=_positive_int)
    scale: int = attrs.field(default=1, validator=_positive_int)
    percentage: float = attrs.field(default=91.0, converter=float,
                                    validator=[attrs.validators.ge(0.0), attrs.validators.le(100.0)])
    angles: tuple[float, float, float, float] = attrs.field(default=(0.0, 15.0, 30.0, 45.0), converter=_four_angles)
    antialias: bool = attrs.field(default=False, validator=_flag)
    resolution: tuple[int, int] | None = attrs.field(default=None, converter=optional_size)
    include_k: bool = attrs.field(default=False, validator=_flag)
    renderer: str = attrs.field(default="disc", validator=attrs.validators.in_(("disc", "seed")))
    """``disc``: each dot is the disc of its area, vectorised; ``seed``: the seed tool's drawing (PIL's rotations and
    ellipses, after its bilinear resize to ``resolution``), the same bytes as its python-halftone, ~1 s a frame."""

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        h, w = self.resolution or input_size
        return h * self.scale, w * self.scale

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=4 if self.include_k else 3, disk_dtype="float16")

    def compute(self, batch: Batch) -> np.ndarray:
        if self.renderer == "seed":
            from vre_edges._halftone_seed import seed_halftone

            return seed_halftone(rgb_uint8(batch.deps["rgb"]), sample=self.sample, scale=self.scale,
                                 percentage=self.percentage, angles=self.angles, antialias=self.antialias,
                                 resolution=self.resolution, channels=4 if self.include_k else 3)
        return halftone(rgb_uint8(batch.deps["rgb"]), sample=self.sample, scale=self.scale,
                        percentage=self.percentage, angles=self.angles, antialias=self.antialias,
                        resolution=self.resolution, include_k=self.include_k)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        """The dots printed in ink on white paper; without a K plane (the seed's 3 channels), dark areas print
        light, and a note on the picture says why."""
        images = halftone_preview(memory)
        return images if memory.shape[-1] == 4 else with_note(images, "no K (black) ink stored: include_k is false")


@attrs.define(kw_only=True, eq=False)
class GeneralizedBoundaries(_SoftSegmentation):
    """Leordeanu et al.'s generalized-boundaries soft segmentation, computed on the frame reduced to
    ``internal_size`` pixels on its longer side: with ``adjust_to_rgb`` (default) the ``max_channels`` principal
    layers fitted onto the image colours (3 channels), else the ``max_channels`` layers themselves (zeros for
    layers beyond the number of sample patches, which only very small or very elongated frames run short of).
    Values in [0, 1], normalised per frame; ``use_median_filtering`` smooths the layers with a 3x3 median whose
    ``median_border`` is ``replicate`` (default) or ``zero`` (the seed tool's padding, which darkens the border)."""

    type_name = "soft-segmentation/generalized-boundaries"

    use_median_filtering: bool = attrs.field(default=True, validator=_flag)
    adjust_to_rgb: bool = attrs.field(default=True, validator=_flag)
    max_channels: int = attrs.field(default=3, validator=_positive_int)
    median_border: str = attrs.field(default="replicate", validator=attrs.validators.in_(MEDIAN_BORDERS))
    # Both sides of the reduced frame must exceed the method's 16-pixel patch, so the longer one at least must.
    internal_size: int = attrs.field(default=300, validator=[attrs.validators.instance_of(int),
                                                             attrs.validators.gt(16)])

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=3 if self.adjust_to_rgb else self.max_channels, disk_dtype="float16")

    def compute(self, batch: Batch) -> np.ndarray:
        # One BLAS thread: the method's matrices are small, and on busy cores (parallel exports, torch's threads,
        # the engine's writers) multi-threaded OpenBLAS was measured 10-40x slower than one thread.
        with threadpool_limits(limits=1, user_api="blas"):
            out = generalized_boundaries(rgb_uint8(batch.deps["rgb"]), use_median_filtering=self.use_median_filtering,
                                         adjust_to_rgb=self.adjust_to_rgb, max_channels=self.max_channels,
                                         internal_size=self.internal_size, median_border=self.median_border)
        missing = self.output_spec().channels - out.shape[-1]
        if missing > 0:  # fewer sample patches than max_channels: keep the declared channel count
            out = np.concatenate([out, np.zeros((*out.shape[:3], missing), np.float32)], axis=-1)
        return out

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return generalized_boundaries_preview(memory)
