"""Every type of vre-flow passes core's conformance suite (shapes, disk round trip, batched == unbatched, light
import), the flows with their neighbour frames in every batch (the suite adds them for types that read them)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def made_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Weights made here (seeded random init) for a kind of network, once a session: RIFE's are 61 MB."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = make_test_weights(kind, tmp_path_factory.mktemp(kind) / "weights.safetensors")
        return made[kind]

    return get


class _TestWeights(RepresentationTestSuite):
    """Weights made in the test (seeded random init), given as ``weights_path``."""

    kind = ""

    @pytest.fixture(autouse=True)
    def _weights(self, made_weights: Callable[[str], Path]) -> None:
        self.weights = made_weights

    def prepare(self, representation: Any, tmp_path: Path) -> None:
        representation.weights_path = str(self.weights(self.kind))


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
