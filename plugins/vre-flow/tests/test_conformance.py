"""Every type of vre-flow passes core's conformance suite (shapes, disk round trip, batched == unbatched, light
import), the flows with their neighbour frames in every batch (the suite adds them for types that read them)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vre_flow.testing import make_test_weights
from vrecore.testing import RepresentationTestSuite


class TestDIS(RepresentationTestSuite):
    type_name = "optical-flow/dis"
    parameters = {"preset": "fast", "delta": 2}
    atol = 0.0


class TestFarneback(RepresentationTestSuite):
    type_name = "optical-flow/farneback"
    parameters = {"units": "relative", "at_end": "undefined"}
    atol = 0.0


class _TestWeights(RepresentationTestSuite):
    """Weights made in the test (seeded random init), given as ``weights_path``."""

    kind = ""

    def prepare(self, representation: Any, tmp_path: Path) -> None:
        representation.weights_path = str(make_test_weights(self.kind, tmp_path / "weights.safetensors"))


class TestRAFTSmall(_TestWeights):
    type_name = "optical-flow/raft"
    parameters = {"variant": "small", "iters": 3}
    kind = "raft-small"
    frame_shape = (64, 96)
    atol = 1e-4


class TestRAFTLarge(_TestWeights):
    type_name = "optical-flow/raft"
    parameters = {"variant": "things", "iters": 2, "units": "seed"}
    kind = "raft-large"
    frame_shape = (64, 80)
    atol = 1e-4


class TestRIFE(_TestWeights):
    type_name = "optical-flow/rife"
    kind = "rife"
    atol = 1e-4


class TestSIFT(RepresentationTestSuite):
    type_name = "descriptor/sift"
    parameters = {"max_keypoints": 20}
    frame_shape = (48, 64)
    atol = 0.0
