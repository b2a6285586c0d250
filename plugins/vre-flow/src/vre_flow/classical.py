"""optical-flow/dis and optical-flow/farneback: OpenCV's classical dense flows on grey frames (CPU, no weights)."""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_flow.flow import OpticalFlow

__all__ = ["DIS_PRESETS", "DISFlow", "FarnebackFlow"]

DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def _grey(frames: np.ndarray) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


@attrs.define(kw_only=True, eq=False)
class DISFlow(OpticalFlow):
    """Dense Inverse Search flow (Kroeger et al., ECCV 2016) with OpenCV's ``preset`` (ultrafast, fast, medium)."""

    type_name = "optical-flow/dis"

    preset: str = attrs.field(default="medium", validator=attrs.validators.in_(tuple(DIS_PRESETS)))
    _dis: Any = attrs.field(default=None, init=False, repr=False)

    def _flows(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        import cv2

        if self._dis is None:  # made once and reused: the engines call compute from one thread
            self._dis = cv2.DISOpticalFlow.create(DIS_PRESETS[self.preset])
        out = np.empty((*sources.shape[:3], 2), np.float32)
        for i, (a, b) in enumerate(zip(_grey(sources), _grey(targets), strict=True)):
            out[i] = self._dis.calc(a, b, None)
        return out


@attrs.define(kw_only=True, eq=False)
class FarnebackFlow(OpticalFlow):
    """Farneback's polynomial-expansion flow (SCIA 2003), ``cv2.calcOpticalFlowFarneback`` with its parameters."""

    type_name = "optical-flow/farneback"

    pyr_scale: float = attrs.field(default=0.5, converter=float, validator=[attrs.validators.gt(0.0),
                                                                           attrs.validators.lt(1.0)])
    levels: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    winsize: int = attrs.field(default=15, validator=attrs.validators.ge(3))
    iterations: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    poly_n: int = attrs.field(default=5, validator=attrs.validators.in_((5, 7)))
    poly_sigma: float = attrs.field(default=1.2, converter=float, validator=attrs.validators.gt(0.0))

    def _flows(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        import cv2

        out = np.empty((*sources.shape[:3], 2), np.float32)
        for i, (a, b) in enumerate(zip(_grey(sources), _grey(targets), strict=True)):
            out[i] = cv2.calcOpticalFlowFarneback(a, b, None, self.pyr_scale, self.levels, self.winsize,
                                                  self.iterations, self.poly_n, self.poly_sigma, 0)
        return out
