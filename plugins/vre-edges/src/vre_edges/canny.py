"""edges/canny: OpenCV's Canny edge detector on the grey (or the colour) image of an rgb dependency."""
from __future__ import annotations

import attrs
import numpy as np

from vre_edges._frames import rgb_uint8
from vrecore.plugin import Batch, OutputSpec, Role, SeedDiskLayout, disk_layout_field

APERTURE_SIZES = (3, 5, 7)


@attrs.define(kw_only=True, eq=False)
class Canny(SeedDiskLayout):
    """Canny edges (``cv2.Canny``) of ``cv2.cvtColor(rgb, COLOR_RGB2GRAY)``: one bool channel, True on an edge.

    ``threshold1`` / ``threshold2`` are the hysteresis thresholds on the Sobel gradient magnitude (their order
    does not matter, as in OpenCV), ``aperture_size`` the Sobel kernel size and ``l2_gradient`` picks the
    exact L2 magnitude instead of |dx| + |dy|. ``color`` runs ``cv2.Canny`` on the RGB image itself, as the seed
    tool does: OpenCV then takes, at each pixel, the gradient of the channel where it is strongest, so edges between
    colours of equal brightness count too (it is about 3x slower). ``disk_layout: seed`` stores float32
    (H, W, 1) in {0, 1}, as the seed tool does (default ``vre``: bool (H, W)); resized (``output_size``), it is then
    also resized as the seed resizes it: as float32, bilinear, so edges blur into fractions.
    """

    type_name = "edges/canny"
    roles = (Role("rgb", channels=3),)

    threshold1: float = attrs.field(default=100.0, converter=float, validator=attrs.validators.ge(0.0))
    threshold2: float = attrs.field(default=200.0, converter=float, validator=attrs.validators.ge(0.0))
    aperture_size: int = attrs.field(
        default=3, validator=[attrs.validators.instance_of(int), attrs.validators.in_(APERTURE_SIZES)])
    l2_gradient: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    color: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    disk_layout: str = disk_layout_field()

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def compute(self, batch: Batch) -> np.ndarray:
        import cv2

        rgb = rgb_uint8(batch.deps["rgb"])
        out = np.empty((*rgb.shape[:3], 1), dtype=np.bool_)
        for i, frame in enumerate(rgb):
            image = frame if self.color else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            edges = cv2.Canny(image, self.threshold1, self.threshold2, apertureSize=self.aperture_size,
                              L2gradient=self.l2_gradient)
            np.not_equal(edges, 0, out=out[i, ..., 0])
        return out

    def resize(self, memory: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if self.disk_layout == "seed" and memory.shape[1:3] != tuple(size):
            return super().resize(memory.astype(np.float32), size)  # the seed's {0, 1} floats, bilinear
        return super().resize(memory, size)
