"""Camera normals from a depth map: a plane fit per window (normals/depth-svd) or central differences (normals/depth-gradient)."""
from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from vre_geometry._params import finite, one_of, positive
from vrecore.plugin import Batch, OutputSpec, Representation, Role

__all__ = ["DEFAULT_SENSOR_FOV", "NORMALS_CONVENTION", "NormalsFromDepthGradient", "NormalsFromDepthSVD"]

# The numerical kernels (vre_geometry._normals) import OpenCV: they are imported inside the methods that
# run them, so that building a graph (and plugin discovery) imports neither OpenCV nor torch.

DEFAULT_SENSOR_FOV = 75.0
"""Diagonal field of view (degrees) used when no intrinsics are given: the seed's Dronescapes camera."""

FOV_AXES = ("diagonal", "horizontal", "vertical")
CONVENTIONS = ("vre", "seed")
NORMALS_CONVENTION = ("unit normals in the OpenGL camera frame (x right, y up, z towards the viewer), oriented "
                      "towards the camera, stored as (n + 1) / 2 in [0, 1]: a fronto-parallel surface is "
                      "(0.5, 0.5, 1.0)")
SEED_NORMALS_CONVENTION = ("the seed tool's: vre's normals mirrored in x (v1 = 1 - vre's v1; the OpenCV camera frame "
                           "with normals pointing away from the camera), stored as (n + 1) / 2 in [0, 1]")
DEPTH_CONVENTION = ("the depth dependency is read as z-depth (distance along the optical axis, larger = "
                    "farther), z = depth * depth_scale + depth_offset; z <= 0, NaN, +-inf and z > max_distance "
                    "are invalid")


def _to_size(value: Any) -> Any:
    # configs give lists; a tuple keeps the parameter hashable and prints like the seed's (W, H)
    if isinstance(value, list):
        return tuple(value)
    return value


def _check_size(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    ok = isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise ValueError(f"sensor_size must be [width, height] in pixels (two positive integers), got {value!r}")


def _check_fov(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    finite(instance, attribute, value)
    if value is not None and not 0.0 < value < 180.0:
        raise ValueError(f"sensor_fov must be in the open interval (0, 180) degrees, got {value!r}")


def _check_window(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 3 or value % 2 == 0:
        raise ValueError(f"window_size must be an odd integer >= 3 (the window is centred on the pixel), "
                         f"got {value!r}")


def _check_unit_interval(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    finite(instance, attribute, value)
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be None (store NaN) or a number in [0, 1], got {value!r}")


@attrs.define(kw_only=True, eq=False)
class _NormalsFromDepth(Representation):
    """Shared by the normals types: intrinsics, depth preparation, invalid pixels, storage and preview.

    Intrinsics come either from a field of view (``sensor_fov`` in degrees across ``fov_axis`` of a
    sensor of ``sensor_size`` = [W, H] pixels, default: the depth map itself, rescaled per axis to the
    depth map; the seed's meaning) or from ``fx, fy`` (+ ``cx, cy``) in pixels of the depth map. With
    neither, ``sensor_fov`` is `DEFAULT_SENSOR_FOV` across the diagonal.
    """

    moved_parameters = {"disk_dtype": "output_dtype"}  # vre 0.1: the stored dtype is decided once, by output_dtype

    roles = (Role("depth", channels=1),)

    sensor_fov: float | None = attrs.field(default=None, validator=_check_fov)
    """Field of view in degrees across ``fov_axis`` of the sensor, in (0, 180)."""
    sensor_size: tuple[int, int] | None = attrs.field(default=None, converter=_to_size, validator=_check_size)
    """[width, height] the field of view refers to; None: the depth map's own size."""
    fov_axis: str = attrs.field(default="diagonal", validator=one_of(FOV_AXES))
    """Which extent of the sensor ``sensor_fov`` spans: diagonal (the seed's meaning), horizontal, vertical."""
    fx: float | None = attrs.field(default=None, validator=positive)
    fy: float | None = attrs.field(default=None, validator=positive)
    cx: float | None = attrs.field(default=None, validator=finite)
    cy: float | None = attrs.field(default=None, validator=finite)
    depth_scale: float = attrs.field(default=1.0, validator=positive)
    """Multiplies the depth. Normals do not change with it; it sets the unit of ``depth_offset``/``max_distance``."""
    depth_offset: float = attrs.field(default=0.0, validator=finite)
    """Added to the scaled depth: turns a shifted depth (vre-depth's 0 = nearest) back into a z-depth."""
    max_distance: float | None = attrs.field(default=None, validator=positive)
    """z-depth (after scale and offset) beyond which pixels are invalid (e.g. a far clip); None: no limit."""
    invalid_value: float | None = attrs.field(default=None, validator=_check_unit_interval)
    """Stored where the window holds no valid depth: None stores NaN (with ``convention: seed``, the camera-facing
    normal (0.5, 0.5, 1) the seed tool stores there), a number v stores (v, v, v)."""
    convention: str = attrs.field(default="vre", validator=one_of(CONVENTIONS))
    """``vre`` (x right, y up, z towards the viewer) or ``seed``: the seed tool's, mirrored in x (1 - v1)."""

    def __attrs_post_init__(self) -> None:
        pinhole = {k: getattr(self, k) for k in ("fx", "fy", "cx", "cy") if getattr(self, k) is not None}
        fov_given = [k for k in ("sensor_fov", "sensor_size") if getattr(self, k) is not None]
        if self.fov_axis != "diagonal":
            fov_given.append("fov_axis")
        if pinhole and fov_given:
            raise ValueError(f"give the camera intrinsics one way: either sensor_fov (with sensor_size, fov_axis) "
                             f"or fx, fy (with cx, cy), not both (got {', '.join([*fov_given, *pinhole])})")
        if pinhole and (self.fx is None or self.fy is None):
            raise ValueError(f"pinhole intrinsics need both fx and fy (focal lengths in pixels of the depth map); "
                             f"got only {', '.join(pinhole)}")
        if (self.cx is None) != (self.cy is None):
            raise ValueError("cx and cy go together (the principal point in pixels of the depth map); give both "
                             "or neither (then it is the image centre)")
        if fov_given and self.sensor_fov is None:
            raise ValueError(f"{' and '.join(fov_given)} need sensor_fov (the field of view in degrees)")

    # -- intrinsics ------------------------------------------------------------------------------
    def intrinsics(self, height: int, width: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels of a ``height`` x ``width`` depth map (pixel centres at integers)."""
        if self.fx is not None and self.fy is not None:
            cx = (width - 1) / 2.0 if self.cx is None else float(self.cx)
            cy = (height - 1) / 2.0 if self.cy is None else float(self.cy)
            return float(self.fx), float(self.fy), cx, cy
        fov = DEFAULT_SENSOR_FOV if self.sensor_fov is None else float(self.sensor_fov)
        sensor_w, sensor_h = self.sensor_size or (width, height)
        span = {"diagonal": math.hypot(sensor_w, sensor_h), "horizontal": float(sensor_w),
                "vertical": float(sensor_h)}[self.fov_axis] / 2.0
        focal = span / math.tan(math.radians(fov) / 2.0)  # in sensor pixels
        # Rescaled per axis to the depth map, as the seed does: a depth map of another aspect ratio than the
        # sensor is taken to cover the whole sensor (non-square pixels).
        return focal * width / sensor_w, focal * height / sensor_h, (width - 1) / 2.0, (height - 1) / 2.0

    # -- the representation ----------------------------------------------------------------------
    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=3, disk_dtype="float16")

    def compute(self, batch: Batch) -> np.ndarray:
        depth = np.asarray(batch.deps["depth"])[..., 0]
        fx, fy, cx, cy = self.intrinsics(*depth.shape[1:3])
        z = self._z_depth(depth)
        normals = self._normals(z, fx, fy, cx, cy)
        _fill_from_neighbours(normals, z, self._window())
        if self.convention == "seed":
            np.negative(normals[..., 0], out=normals[..., 0])
        normals += np.float32(1.0)  # (n + 1) / 2, in place; NaN stays NaN
        normals *= np.float32(0.5)
        if self.invalid_value is not None:
            normals[np.isnan(normals)] = np.float32(self.invalid_value)
        elif self.convention == "seed":  # the seed has no NaN (its reader refuses them): a window of no depth
            invalid = np.isnan(normals[..., 0])  # fits the camera-facing normal (0, 0, 1) there
            normals[invalid] = np.array([0.5, 0.5, 1.0], np.float32)
        return normals

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        from vre_geometry._normals import normals_preview

        return normals_preview(memory)

    def metadata(self) -> dict[str, Any]:
        if self.fx is not None:
            centre = "the image centre" if self.cx is None else f"({self.cx}, {self.cy})"
            intrinsics = f"fx={self.fx}, fy={self.fy} pixels of the depth map, principal point {centre}"
        else:
            fov = DEFAULT_SENSOR_FOV if self.sensor_fov is None else self.sensor_fov
            sensor = "the depth map" if self.sensor_size is None else \
                f"a {self.sensor_size[0]}x{self.sensor_size[1]} sensor, rescaled per axis to the depth map"
            intrinsics = f"{fov} degrees across the {self.fov_axis} of {sensor}; principal point at the image centre"
        convention = NORMALS_CONVENTION if self.convention == "vre" else SEED_NORMALS_CONVENTION
        return {**super().metadata(), "normals": convention, "depth": DEPTH_CONVENTION, "intrinsics": intrinsics,
                "invalid": (("(0.5, 0.5, 1)" if self.convention == "seed" else "NaN") if self.invalid_value is None
                            else f"{self.invalid_value} in every channel")
                + " where the window holds no valid depth"}

    # -- steps -----------------------------------------------------------------------------------
    def _window(self) -> int:
        return 3

    def _normals(self, z: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
        raise NotImplementedError

    def _z_depth(self, depth: np.ndarray) -> np.ndarray:
        """(B, H, W) float z-depth with invalid pixels as NaN (the kernels skip z <= 0, NaN and inf anyway)."""
        if depth.dtype not in (np.float32, np.float64):
            depth = depth.astype(np.float32)
        if self.depth_scale == 1.0 and self.depth_offset == 0.0 and self.max_distance is None:
            return depth  # the kernels only read it
        z = depth * depth.dtype.type(self.depth_scale)
        z += depth.dtype.type(self.depth_offset)
        if self.max_distance is not None:
            with np.errstate(invalid="ignore"):
                z[z > self.max_distance] = np.nan
        return z


def _fill_from_neighbours(normals: np.ndarray, z: np.ndarray, window: int) -> None:
    """Give a normal to every NaN pixel whose window holds some valid depth, in place.

    The kernels give NaN where a window has too few valid points for a fit (fewer than 3, collinear
    points; the gradient: the pixel or a difference neighbour invalid). Such a pixel takes the mean
    direction of the fitted normals in its window, or, with none there, the fronto-parallel (0, 0, 1):
    NaN is left only where the whole window is invalid.
    """
    nan = np.isnan(normals[..., 0])
    if not nan.any():
        return
    import cv2

    size = (window, window)
    for i in np.flatnonzero(nan.reshape(len(nan), -1).any(axis=1)):
        valid = ((z[i] > 0) & (z[i] < np.inf)).astype(np.float32)  # NaN compares false
        count = cv2.boxFilter(valid, -1, size, normalize=False,
                              borderType=cv2.BORDER_CONSTANT)
        todo = nan[i] & (count > 0.5)
        if not todo.any():
            continue
        fitted = np.where(nan[i][..., None], np.float32(0.0), normals[i])
        sums = cv2.boxFilter(fitted, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)[todo]
        norm = np.linalg.norm(sums, axis=-1, keepdims=True)
        # normals all face the camera, so a non-empty sum never cancels out
        filled = np.where(norm > 0, sums / np.where(norm > 0, norm, 1.0), np.array([0.0, 0.0, 1.0], np.float32))
        normals[i][todo] = filled


@attrs.define(kw_only=True, eq=False)
class NormalsFromDepthSVD(_NormalsFromDepth):
    """Camera normals by a least-squares plane fit over each pixel's ``window_size`` window of depth.

    Output (H, W, 3): (n + 1) / 2 of unit normals in the OpenGL camera frame (x right, y up, z towards the
    viewer), facing the camera; float16 on disk (``output_dtype`` decides). Windows are cut by the image border
    and skip invalid depth; a pixel whose window cannot be fitted takes its neighbours' mean normal,
    NaN (or ``invalid_value``) is stored only where the whole window is invalid.
    """

    type_name = "normals/depth-svd"

    window_size: int = attrs.field(default=5, validator=_check_window)
    """Odd side >= 3 of the square window fitted around each pixel (the seed's Dronescapes used 11)."""

    def _window(self) -> int:
        return self.window_size

    def _normals(self, z: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
        from vre_geometry._normals import normals_from_depth_svd

        return normals_from_depth_svd(z, fx, fy, cx, cy, self.window_size)


@attrs.define(kw_only=True, eq=False)
class NormalsFromDepthGradient(_NormalsFromDepth):
    """Camera normals from central differences of the back-projected depth (cheaper, noisier; streaming).

    Same parameters (no window: the 3 x 3 neighbourhood), output and conventions as normals/depth-svd.
    """

    type_name = "normals/depth-gradient"

    def _normals(self, z: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
        from vre_geometry._normals import normals_from_depth_gradient

        return normals_from_depth_gradient(z, fx, fy, cx, cy)
