"""descriptor/sift: OpenCV SIFT keypoints of each frame, as a map of dots like the seed tool's picture of them."""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vrecore.plugin import Batch, OutputSpec, Representation

__all__ = ["SIFT"]

DOT_COLOR = (80, 170, 255)  # the seed's blue, lighter: pure blue on black is too dark to see in a small tile
RING_RADIUS = 1 / 64  # of the frame's shorter side: about 2 pixels once a frame is shrunk to a quarter-width tile


def _optional_positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:  # type: ignore[type-arg]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be a positive integer or null, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class SIFT(Representation):
    """SIFT keypoints (Lowe, IJCV 2004; ``cv2.SIFT``) of the grey frame: one bool channel, True on a dot of
    radius 1 around each keypoint, as the seed tool draws them.

    ``max_keypoints`` keeps the strongest ones (None: all); ``process_scale`` runs SIFT on a resized copy (cheaper
    below 1) and maps the keypoints back; ``sigma``, ``num_intervals`` (layers per octave), ``contrast_threshold``
    and ``edge_threshold`` are SIFT's own parameters (the first two named as in the seed tool). The descriptors
    themselves are not stored: a per-pixel map has no room for a variable number of 128-d vectors.
    """

    type_name = "descriptor/sift"
    uses_frames = True

    max_keypoints: int | None = attrs.field(default=None, validator=_optional_positive_int)
    process_scale: float = attrs.field(default=1.0, converter=float, validator=[attrs.validators.gt(0.0),
                                                                               attrs.validators.le(4.0)])
    sigma: float = attrs.field(default=1.6, converter=float, validator=attrs.validators.gt(0.0))
    num_intervals: int = attrs.field(default=3, validator=[attrs.validators.instance_of(int),
                                                           attrs.validators.ge(1)])
    contrast_threshold: float = attrs.field(default=0.04, converter=float, validator=attrs.validators.ge(0.0))
    edge_threshold: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0.0))

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def keypoints(self, frame: np.ndarray) -> np.ndarray:
        """(N, 2) float32 (x, y) keypoint positions of one uint8 RGB frame, strongest first."""
        import cv2

        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.process_scale != 1.0:
            h, w = grey.shape
            size = (max(1, round(w * self.process_scale)), max(1, round(h * self.process_scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
        sift = cv2.SIFT.create(nfeatures=self.max_keypoints or 0, nOctaveLayers=self.num_intervals,
                               contrastThreshold=self.contrast_threshold, edgeThreshold=self.edge_threshold,
                               sigma=self.sigma)
        found = sorted(sift.detect(grey, None), key=lambda k: -k.response)[:self.max_keypoints]
        xy = np.array([k.pt for k in found], np.float32).reshape(-1, 2)
        return xy / np.float32(self.process_scale)

    def compute(self, batch: Batch) -> np.ndarray:
        import cv2

        assert batch.frames is not None
        out = np.zeros((*batch.frames.shape[:3], 1), np.uint8)
        for i, frame in enumerate(batch.frames):
            canvas = out[i, ..., 0]
            for x, y in np.rint(self.keypoints(frame)).astype(np.int32):
                cv2.circle(canvas, (int(x), int(y)), 1, 1, thickness=-1)
        return out.view(np.bool_)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        """Light-blue rings around the stored dots on black, large enough to be seen in a collage tile."""
        import cv2

        # The map holds positions only (no keypoint scale): every ring has one radius, a fraction of the frame's
        # size, and dots that touch (one blob) share a ring.
        images = np.zeros((*memory.shape[:3], 3), np.uint8)
        radius = max(3, round(min(memory.shape[1:3]) * RING_RADIUS))
        thickness = max(1, radius // 3)
        for image, dots in zip(images, memory[..., 0].astype(np.uint8), strict=True):
            count, _, _, centres = cv2.connectedComponentsWithStats(dots, connectivity=8)
            # fixed-point centres (4 fractional bits) keep the anti-aliased rings where the blobs are
            for cx, cy in np.rint(centres[1:count] * 16).astype(np.int32):
                cv2.circle(image, (int(cx), int(cy)), radius * 16, DOT_COLOR, thickness, cv2.LINE_AA, shift=4)
            image[dots.view(np.bool_)] = DOT_COLOR
        return images
