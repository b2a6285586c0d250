"""vre-geometry's types pass the conformance suite every representation type must pass."""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vrecore.graph.representation import OutputSpec, Representation
from vrecore.testing import RepresentationTestSuite


def smooth_depth(n: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(n, H, W, 1) float32 smooth positive depth: a random tilted plane plus a low-frequency bump per frame."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 1), np.float32)
    for i in range(n):
        a, b, c, amp = rng.uniform(0.3, 0.7), rng.uniform(-0.01, 0.01), rng.uniform(0.0, 0.01), rng.uniform(0, 0.05)
        out[i, ..., 0] = a + b * u + c * v + amp * np.sin(u / 5.0) * np.cos(v / 4.0)
    return out


def encoded_normals(n: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(n, H, W, 3) float32 random unit normals facing the camera, stored as (n + 1) / 2."""
    vec = rng.normal(size=(n, *shape, 3)).astype(np.float32)
    vec[..., 2] = np.abs(vec[..., 2]) + 0.1
    vec /= np.linalg.norm(vec, axis=-1, keepdims=True)
    return (vec + 1.0) / 2.0


@attrs.define(kw_only=True, eq=False)
class ThreeClasses(Representation):
    """A stand-in semantic map object (not registered): scores over three named classes."""

    type_name = "test/three-classes"

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=3, disk_dtype="uint8", classes=("grass", "roof", "water"))


class TestNormalsSVD(RepresentationTestSuite):
    type_name = "normals/depth-svd"
    parameters = {"sensor_fov": 70.0, "window_size": 5}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        depth = smooth_depth(n, self.frame_shape, rng)
        depth[0, :3, :4] = np.nan      # invalid pixels too (a corner: NaN is kept where the window is all invalid)
        depth[-1, 10, 10] = 0.0
        return {"depth": depth}


class TestNormalsSVDInvalidValue(TestNormalsSVD):
    parameters: dict[str, Any] = {"fx": 30.0, "fy": 30.0, "cx": 15.0, "cy": 11.0, "window_size": 3, "invalid_value": 0.5}


class TestNormalsGradient(RepresentationTestSuite):
    type_name = "normals/depth-gradient"
    parameters = {"sensor_fov": 70.0}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        depth = smooth_depth(n, self.frame_shape, rng)
        depth[0, 5:8, 5:8] = np.inf
        return {"depth": depth}


class TestSafeLanding(RepresentationTestSuite):
    type_name = "mask/safe-landing"

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        return {"normals": encoded_normals(n, self.frame_shape, rng),
                "depth": rng.uniform(0, 1, (n, *self.frame_shape, 1)).astype(np.float32)}


class TestSafeLandingWithClasses(TestSafeLanding):
    parameters = {"safe_classes": ["grass", "roof"]}

    def dependency_representations(self) -> dict[str, Any]:
        return {"semantic": ThreeClasses(name="semantic")}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        scores = rng.uniform(0, 1, (n, *self.frame_shape, 3)).astype(np.float32)
        return {**super().dependency_arrays(n, rng), "semantic": scores}


class TestDepthRange(RepresentationTestSuite):
    type_name = "mask/depth-range"
    parameters = {"min_depth": 0.2, "max_depth": 0.6}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        return {"depth": rng.uniform(0, 1, (n, *self.frame_shape, 1)).astype(np.float32),
                "mask": rng.uniform(0, 1, (n, *self.frame_shape, 1)) > 0.3}
