"""Analytic test scenes with known depth, normals and classes, as vre types for tests (not registered by the plugin)."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vrecore.plugin import Batch, OutputSpec, Representation, hookimpl
from vrecore.testing import register_plugin, unregister_plugin

__all__ = ["SCENE_CLASSES", "Scene", "SceneDepth", "SceneSemantic", "register_scene_types", "render_scene",
           "unregister_scene_types", "write_scene_types_distribution"]

SCENE_CLASSES = ("ground", "building", "sky")
SCENE_COLORS = ((0, 160, 0), (200, 60, 60), (90, 160, 255))
TEST_DISTRIBUTION = "vre-geometry-testing"


@attrs.frozen(eq=False)
class Scene:
    """One rendered view: z-depth (inf: sky), unit normals (OpenGL camera frame; NaN: sky), class indices."""

    z: np.ndarray
    normals: np.ndarray
    labels: np.ndarray
    intrinsics: tuple[float, float, float, float]


@functools.lru_cache(maxsize=8)
def render_scene(height: int, width: int, *, fov_deg: float = 75.0, pitch_deg: float = 20.0,
                 camera_height: float = 10.0, box: tuple[tuple[float, float], ...] = ((-5.0, 5.0), (0.0, 3.0),
                                                                                     (22.0, 32.0))) -> Scene:
    """A camera ``camera_height`` above flat ground, pitched ``pitch_deg`` down, looking at a box.

    World frame: X right, Y up, Z forward (horizontal); the camera is at (0, camera_height, 0) and the box
    spans ``box`` = ((x0, x1), (y0, y1), (z0, z1)). Intrinsics: ``fov_deg`` across the image diagonal, the
    principal point at the image centre (what normals/depth-svd derives from ``sensor_fov`` alone). Rays
    above the horizon see the sky. The arrays are cached: treat them as read-only.
    """
    focal = math.hypot(width, height) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    xn, yn = (u - cx) / focal, (v - cy) / focal
    sp, cp = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    # camera axes in the world (OpenCV: x right, y down the image, z forward); a point of pixel (u, v) at
    # z-depth t is C + t * D with D = xn x_c + yn y_c + z_c
    x_c, y_c, z_c = np.array([1.0, 0.0, 0.0]), np.array([0.0, -cp, -sp]), np.array([0.0, -sp, cp])
    direction = xn[..., None] * x_c + yn[..., None] * y_c + z_c
    origin = np.array([0.0, camera_height, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        down = -direction[..., 1]
        t_ground = np.where(down > 0, camera_height / np.where(down > 0, down, 1.0), np.inf)
        # slab test against the box; the entry face is the one of the axis entered last
        t_near = np.full((height, width, 3), -np.inf)
        t_far = np.full((height, width, 3), np.inf)
        for a, (lo, hi) in enumerate(box):
            d = direction[..., a]
            t1, t2 = (lo - origin[a]) / d, (hi - origin[a]) / d
            inside = (lo <= origin[a] <= hi)
            t_near[..., a] = np.where(d != 0, np.minimum(t1, t2), -np.inf if inside else np.inf)
            t_far[..., a] = np.where(d != 0, np.maximum(t1, t2), np.inf if inside else -np.inf)
    entry_axis = t_near.argmax(axis=-1)
    t_enter, t_exit = t_near.max(axis=-1), t_far.min(axis=-1)
    t_box = np.where((t_enter <= t_exit) & (t_enter > 0), t_enter, np.inf)
    on_box = t_box < t_ground
    z = np.minimum(t_box, t_ground)
    sky = ~np.isfinite(z)

    world_n = np.zeros((height, width, 3))
    world_n[..., 1] = 1.0  # ground: up
    face_sign = -np.sign(np.take_along_axis(direction, entry_axis[..., None], axis=-1)[..., 0])
    box_n = np.zeros((height, width, 3))
    np.put_along_axis(box_n, entry_axis[..., None], face_sign[..., None], axis=-1)
    world_n = np.where(on_box[..., None], box_n, world_n)
    cv = np.stack([world_n @ x_c, world_n @ y_c, world_n @ z_c], axis=-1)
    normals = cv * np.array([1.0, -1.0, -1.0]) + 0.0  # OpenGL: (x, -y, -z)
    normals[sky] = np.nan

    labels = np.where(sky, 2, np.where(on_box, 1, 0)).astype(np.int64)
    for array in (z, normals, labels):
        array.flags.writeable = False
    return Scene(z=z, normals=normals, labels=labels, intrinsics=(focal, focal, cx, cy))


def relative_depth(z: np.ndarray, near: float, epsilon: float) -> np.ndarray:
    """vre-depth's convention: (z - near) / (far - near) clipped to [0, 1], far = near (1 + epsilon) / epsilon.

    Then z = (d + epsilon) * near / epsilon inside the range: normals/depth-svd with ``depth_offset: epsilon``
    sees the true shape (up to scale).
    """
    far = near * (1.0 + epsilon) / epsilon
    return np.clip((z - near) / (far - near), 0.0, 1.0)


@attrs.define(kw_only=True, eq=False)
class SceneDepth(Representation):
    """The depth of `render_scene` at the frame size: relative like vre-depth (0 = near), or metric z-depth."""

    type_name = "test/scene-depth"
    uses_frames = True  # only for the frame size

    fov_deg: float = 75.0
    pitch_deg: float = 20.0
    relative: bool = True
    near: float = 10.0
    epsilon: float = 0.05

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float32")

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        scene = render_scene(*batch.frames.shape[1:3], fov_deg=self.fov_deg, pitch_deg=self.pitch_deg)
        d = relative_depth(scene.z, self.near, self.epsilon) if self.relative else scene.z
        return np.broadcast_to(d.astype(np.float32)[None, ..., None], (len(batch), *d.shape, 1)).copy()


@attrs.define(kw_only=True, eq=False)
class SceneSemantic(Representation):
    """The classes of `render_scene` (ground, building, sky) as a one-hot map."""

    type_name = "test/scene-semantic"
    uses_frames = True

    fov_deg: float = 75.0
    pitch_deg: float = 20.0

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=len(SCENE_CLASSES), disk_dtype="uint8", classes=SCENE_CLASSES,
                          colors=SCENE_COLORS)

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        scene = render_scene(*batch.frames.shape[1:3], fov_deg=self.fov_deg, pitch_deg=self.pitch_deg)
        one_hot = np.eye(len(SCENE_CLASSES), dtype=np.float32)[scene.labels]
        return np.broadcast_to(one_hot[None], (len(batch), *one_hot.shape)).copy()

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return np.asarray(SCENE_COLORS, dtype=np.uint8)[memory.argmax(axis=-1)]


class _SceneTypesPlugin:
    @hookimpl
    def register_representations(self, register: Any) -> None:
        for cls in (SceneDepth, SceneSemantic):
            register(cls.type_name, f"{__name__}:{cls.__name__}", description=(cls.__doc__ or "").strip())


SCENE_TYPES_PLUGIN = _SceneTypesPlugin()


def register_scene_types(registry: Any = None) -> Any:
    """Add test/scene-depth and test/scene-semantic to ``registry`` (default: the global one)."""
    return register_plugin(SCENE_TYPES_PLUGIN, TEST_DISTRIBUTION, registry=registry)


def unregister_scene_types(registry: Any = None) -> None:
    """Undo `register_scene_types`."""
    unregister_plugin(TEST_DISTRIBUTION, registry)


def write_scene_types_distribution(site: Path) -> Path:
    """A throwaway installed distribution in ``site`` adding the scene types (put ``site`` on PYTHONPATH)."""
    info = Path(site) / "vre_geometry_testing-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {TEST_DISTRIBUTION}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vre]\n{TEST_DISTRIBUTION} = {__name__}:SCENE_TYPES_PLUGIN\n")
    return Path(site)
