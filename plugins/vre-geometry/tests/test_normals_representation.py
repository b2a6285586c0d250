"""normals/depth-svd and normals/depth-gradient as representations: analytic surfaces, invalid depth, intrinsics, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vre_geometry._normals import normals_from_depth_svd, normals_from_depth_svd_reference
from vre_geometry.normals import NormalsFromDepthGradient, NormalsFromDepthSVD
from vre_geometry.testing import relative_depth, render_scene
from vrecore.errors import GraphError
from vrecore.graph.build import build_graph
from vrecore.graph.representation import Batch

H, W = 36, 52


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors (last axis) in degrees, accurate for tiny angles."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def run(rep, depth: np.ndarray) -> np.ndarray:
    """Memory form of ``rep`` for a (H, W) or (B, H, W) depth."""
    d = np.asarray(depth, np.float32)
    d = d[None] if d.ndim == 2 else d
    return rep.compute(Batch(indices=np.arange(len(d)), frames=None, deps={"depth": d[..., None]}))


def decode(encoded: np.ndarray) -> np.ndarray:
    return encoded.astype(np.float64) * 2.0 - 1.0


def pixel_rays(intr: tuple[float, float, float, float], h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    fx, fy, cx, cy = intr
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return (u - cx) / fx, (v - cy) / fy


def plane(a: float, b: float, c: float, intr: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """z-depth of the plane Z = a + b X + c Y (OpenCV camera) and its unit normal facing the camera (OpenGL)."""
    xn, yn = pixel_rays(intr)
    z = a / (1.0 - b * xn - c * yn)
    assert (z > 0).all()
    n = np.array([b, -c, 1.0])  # OpenCV (b, c, -1) faces the camera; OpenGL flips y and z
    return z, n / np.linalg.norm(n)


def smooth(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.full((H, W), 3.0)
    for _ in range(4):
        fu, fv = rng.uniform(0.02, 0.12, 2)
        d += rng.uniform(0.05, 0.3) * np.sin(fu * u + fv * v + rng.uniform(0, 2 * np.pi))
    return d


TYPES = [NormalsFromDepthSVD, NormalsFromDepthGradient]


# --------------------------------------------------------------------------------------------------------------
# analytic surfaces, through the representation (memory form and disk form)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: NormalsFromDepthSVD(name="n", window_size=3),
                                  lambda: NormalsFromDepthSVD(name="n", window_size=11, sensor_fov=40.0),
                                  lambda: NormalsFromDepthSVD(name="n", fx=20.0, fy=35.0, cx=-3.0, cy=40.0),
                                  lambda: NormalsFromDepthGradient(name="n")])
def test_fronto_parallel_plane_is_exactly_half_half_one(make) -> None:
    rep = make()
    out = run(rep, np.full((2, H, W), 7.25))
    assert out.shape == (2, H, W, 3) and out.dtype == np.float32
    expected = np.broadcast_to(np.array([0.5, 0.5, 1.0], np.float32), out.shape)
    assert np.array_equal(out, expected)                       # every pixel, borders included
    disk = rep.to_disk(out)
    assert disk.dtype == np.float16 and np.array_equal(disk, expected.astype(np.float16))


@pytest.mark.parametrize("b, c", [(0.3, -0.2), (-0.8, 0.5), (0.0, -1.6)])
@pytest.mark.parametrize("params", [{"window_size": 5, "sensor_fov": 70.0},
                                    {"window_size": 11, "fx": 40.0, "fy": 55.0, "cx": 20.0, "cy": 22.0},
                                    {"sensor_fov": 50.0, "fov_axis": "horizontal", "sensor_size": [1040, 720]}])
@pytest.mark.parametrize("cls", TYPES)
def test_tilted_plane_analytic_normal_at_every_pixel(cls, params: dict, b: float, c: float) -> None:
    if cls is NormalsFromDepthGradient:
        params = {k: v for k, v in params.items() if k != "window_size"}
    rep = cls(name="n", **params)
    z, expected = plane(4.0, b, c, rep.intrinsics(H, W))
    out = run(rep, z)[0]
    assert angle_deg(decode(out), expected).max() <= 0.25      # interior and border pixels
    disk = rep.to_disk(out[None])[0]                            # float16 on disk
    assert angle_deg(decode(disk), expected).max() <= 0.25


@pytest.mark.parametrize("window_size", [3, 5])
def test_sphere_normals_are_radial(window_size: int) -> None:
    h, w = 64, 80
    rep = NormalsFromDepthSVD(name="n", window_size=window_size, sensor_fov=60.0, fov_axis="horizontal")
    intr = rep.intrinsics(h, w)
    centre, radius = np.array([0.3, -0.2, 6.0]), 2.0
    xn, yn = pixel_rays(intr, h, w)
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=-1)
    rc, rr = rays @ centre, np.sum(rays * rays, axis=-1)
    disc = rc ** 2 - rr * (centre @ centre - radius ** 2)
    hit = disc > 0
    t = (rc - np.sqrt(np.where(hit, disc, 0.0))) / rr
    depth = np.where(hit, t, 0.0)                                # background: zero = invalid
    expected = (rays * t[..., None] - centre) / radius * np.array([1.0, -1.0, -1.0])
    out = run(rep, depth)[0]
    n = decode(out)
    margin = window_size // 2 + 3                                # whole window on the sphere, off the silhouette
    inner = hit.copy()
    for dv in range(-margin, margin + 1):
        for du in range(-margin, margin + 1):
            inner &= np.roll(hit, (dv, du), axis=(0, 1))
    err = angle_deg(n, expected)
    assert inner.sum() > 500 and err[inner].max() <= 2.0 and np.median(err[inner]) <= 0.5
    # NaN exactly where the window holds no sphere pixel
    k = window_size // 2
    near = np.pad(hit, k)
    any_valid = sum(near[i:i + h, j:j + w] for i in range(window_size) for j in range(window_size)) > 0
    assert np.array_equal(np.isnan(out[..., 0]), ~any_valid)
    assert np.allclose(np.linalg.norm(n[any_valid], axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("window_size", [3, 5, 11])
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_the_svd_reference_on_random_smooth_depth(window_size: int, seed: int) -> None:
    rep = NormalsFromDepthSVD(name="n", window_size=window_size, sensor_fov=70.0)
    depth = smooth(seed)
    ref = normals_from_depth_svd_reference(depth, *rep.intrinsics(H, W), window_size)
    out = run(rep, depth)[0]
    assert angle_deg(decode(out), ref).max() <= 0.25
    assert angle_deg(decode(rep.to_disk(out[None])[0]), ref).max() <= 0.25


def test_scene_relative_depth_with_offset_gives_the_true_normals() -> None:
    """vre-depth's relative depth (0 = nearest) is z - near rescaled: depth_offset = epsilon undoes it exactly."""
    scene = render_scene(90, 160)
    rel = relative_depth(scene.z, near=10.0, epsilon=0.05)
    inside = (rel > 0) & (rel < 1)
    right = NormalsFromDepthSVD(name="n", sensor_fov=75.0, depth_offset=0.05)
    wrong = NormalsFromDepthSVD(name="n", sensor_fov=75.0)
    err_right = angle_deg(decode(run(right, rel)[0]), scene.normals)
    err_wrong = angle_deg(decode(run(wrong, rel)[0]), scene.normals)
    # pixels whose whole window lies on one face of the scene, inside the depth range
    flat = inside.copy()
    labels = scene.labels
    for dv in range(-2, 3):
        for du in range(-2, 3):
            flat &= np.roll(labels, (dv, du), axis=(0, 1)) == labels
            flat &= np.roll(inside, (dv, du), axis=(0, 1))
            flat &= np.all(np.roll(scene.normals, (dv, du), axis=(0, 1)) == scene.normals, axis=-1)
    assert flat.sum() > 5000
    assert np.nanmax(err_right[flat]) <= 0.25
    assert np.nanmedian(err_wrong[flat]) > 2.0  # without the offset the shape is sheared


# --------------------------------------------------------------------------------------------------------------
# invalid depth: borders, zeros, NaN, +-inf, negative, beyond max_distance
# --------------------------------------------------------------------------------------------------------------
def with_holes(depth: np.ndarray) -> np.ndarray:
    d = depth.copy()
    d[5:12, 8:30] = 0.0              # zero
    d[20:, :6] = np.nan              # NaN, touching the border
    d[3, 40] = np.inf                # single inf
    d[25:28, 30:45] = -1.0           # negative
    d[12:30, 46] = -np.inf           # a thin invalid column
    d[18:, 20:26] = np.nan
    d[30, 23] = 3.0                  # isolated valid pixel inside a hole
    d[0, :] = np.nan                 # invalid first row
    return d


def any_valid_in_window(depth: np.ndarray, window: int) -> np.ndarray:
    valid = (np.isfinite(depth) & (depth > 0)).astype(np.int32)
    k = window // 2
    padded = np.pad(valid, k)
    h, w = depth.shape
    count = np.zeros((h, w), np.int32)
    for i in range(window):
        for j in range(window):
            count += padded[i:i + h, j:j + w]
    return count > 0


@pytest.mark.parametrize("cls, window", [(NormalsFromDepthSVD, 3), (NormalsFromDepthSVD, 5),
                                         (NormalsFromDepthSVD, 11), (NormalsFromDepthGradient, 3)])
def test_nan_only_where_the_whole_window_is_invalid(cls, window: int) -> None:
    depth = with_holes(smooth(2))
    depth[:, :3] = 0.0
    depth[14:22, 2:14] = np.nan       # a hole larger than every window: all-invalid windows inside
    params = {"window_size": window} if cls is NormalsFromDepthSVD else {}
    rep = cls(name="n", sensor_fov=70.0, **params)
    out = run(rep, depth)[0]
    nan = np.isnan(out)
    assert np.array_equal(nan[..., 0], nan[..., 1]) and np.array_equal(nan[..., 0], nan[..., 2])
    any_valid = any_valid_in_window(depth, window)
    assert (~any_valid).sum() > 10
    assert np.array_equal(nan[..., 0], ~any_valid)
    n = decode(out[any_valid])
    assert np.allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    # every normal faces the camera (negative dot product with the OpenGL viewing ray (x, -y, -1))
    xn, yn = pixel_rays(rep.intrinsics(H, W))
    ray = np.stack([xn, -yn, -np.ones_like(xn)], axis=-1)[any_valid]
    assert (np.sum(n * ray, axis=-1) < 1e-6).all()
    # where the kernel could fit, the representation stores exactly its (encoded) result
    if cls is NormalsFromDepthSVD:
        kernel = normals_from_depth_svd(depth.astype(np.float32), *rep.intrinsics(H, W), window)
        fitted = ~np.isnan(kernel[..., 0])
        np.testing.assert_array_equal(out[fitted], (kernel[fitted] + np.float32(1)) * np.float32(0.5))


def test_invalid_value_replaces_nan_on_disk() -> None:
    depth = np.full((H, W), 2.0)
    depth[:12, :12] = np.nan
    rep = NormalsFromDepthSVD(name="n", invalid_value=0.5)
    out = run(rep, depth)
    assert not np.isnan(out).any()
    assert np.array_equal(out[0, :10, :10], np.full((10, 10, 3), 0.5, np.float32))  # the encoded zero vector
    assert np.array_equal(out[0, 20:, 20:], np.broadcast_to(np.array([0.5, 0.5, 1.0], np.float32), (H - 20, W - 20, 3)))
    assert rep.to_disk(out).dtype == np.float16


def test_all_invalid_frame_is_nan_and_preview_black() -> None:
    rep = NormalsFromDepthSVD(name="n")
    out = run(rep, np.zeros((2, H, W)))
    assert np.isnan(out).all()
    assert (rep.make_images(out) == 0).all()


def test_max_distance_and_depth_scale() -> None:
    z, expected = plane(4.0, 0.4, -0.3, NormalsFromDepthSVD(name="n").intrinsics(H, W))
    base = decode(run(NormalsFromDepthSVD(name="n"), z)[0])
    # normals do not change with the depth unit
    scaled = decode(run(NormalsFromDepthSVD(name="n", depth_scale=1000.0), z)[0])
    assert angle_deg(scaled, base).max() <= 1e-3
    # max_distance (in scaled units) makes farther pixels invalid: NaN only where whole windows are beyond it
    cut = float(np.quantile(z, 0.4))
    out = run(NormalsFromDepthSVD(name="n", depth_scale=1000.0, max_distance=1000.0 * cut), z)[0]
    beyond = np.where(z <= cut, z, np.nan)
    assert np.array_equal(np.isnan(out[..., 0]), ~any_valid_in_window(beyond, 5))
    ok = ~np.isnan(out[..., 0])
    assert angle_deg(decode(out[ok]), expected).max() <= 0.25


def test_float16_depth_input_is_accepted() -> None:
    z, expected = plane(0.5, 0.2, 0.1, NormalsFromDepthSVD(name="n").intrinsics(H, W))
    rep = NormalsFromDepthSVD(name="n")
    out = rep.compute(Batch(indices=np.arange(1), frames=None, deps={"depth": z.astype(np.float16)[None, ..., None]}))
    assert out.dtype == np.float32 and angle_deg(decode(out[0]), expected).max() <= 3.0  # float16 steps in depth


# --------------------------------------------------------------------------------------------------------------
# intrinsics: the seed's sensor_fov / sensor_size, fov axes, explicit pinhole
# --------------------------------------------------------------------------------------------------------------
def seed_intrinsics(fov: float, sensor: tuple[int, int], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The seed's fov_diag_to_intrinsic(fov, sensor=(W, H), res_new=(W', H')), written out: fx, fy, cx, cy."""
    z = math.sqrt((sensor[0] / 2) ** 2 + (sensor[1] / 2) ** 2) / math.tan(fov * math.pi / 180 / 2)
    ax, ay = math.atan(sensor[0] / 2 / z), math.atan(sensor[1] / 2 / z)
    return size[0] / 2 / math.tan(ax), size[1] / 2 / math.tan(ay), size[0] / 2, size[1] / 2


@pytest.mark.parametrize("sensor, size", [((3840, 2160), (960, 540)), ((4000, 3000), (960, 540)), ((64, 48), (64, 48))])
def test_sensor_fov_and_size_have_the_seeds_meaning(sensor: tuple[int, int], size: tuple[int, int]) -> None:
    rep = NormalsFromDepthSVD(name="n", sensor_fov=75, sensor_size=list(sensor))
    fx, fy, cx, cy = rep.intrinsics(size[1], size[0])
    sfx, sfy, scx, scy = seed_intrinsics(75, sensor, size)
    assert fx == pytest.approx(sfx, rel=1e-12) and fy == pytest.approx(sfy, rel=1e-12)
    # the principal point is the exact image centre in the pixel-centre convention (the seed: half a pixel off)
    assert (cx, cy) == (scx - 0.5, scy - 0.5)


def test_default_and_other_fov_axes() -> None:
    f_default = NormalsFromDepthSVD(name="n").intrinsics(540, 960)
    f_diag = NormalsFromDepthSVD(name="n", sensor_fov=75.0).intrinsics(540, 960)
    assert f_default == f_diag and f_default[0] == pytest.approx(math.hypot(960, 540) / 2 / math.tan(math.radians(37.5)))
    fx, fy, _, _ = NormalsFromDepthSVD(name="n", sensor_fov=90.0, fov_axis="horizontal").intrinsics(540, 960)
    assert fx == pytest.approx(480.0) and fy == pytest.approx(480.0)
    fx, _, _, _ = NormalsFromDepthSVD(name="n", sensor_fov=90.0, fov_axis="vertical").intrinsics(540, 960)
    assert fx == pytest.approx(270.0)


def test_explicit_pinhole_intrinsics() -> None:
    assert NormalsFromDepthSVD(name="n", fx=500, fy=510.5, cx=470.0, cy=260.0).intrinsics(540, 960) == \
        (500.0, 510.5, 470.0, 260.0)
    assert NormalsFromDepthSVD(name="n", fx=500.0, fy=500.0).intrinsics(540, 960) == (500.0, 500.0, 479.5, 269.5)


# --------------------------------------------------------------------------------------------------------------
# bad parameters and dependencies fail when the graph is built, with a clear message
# --------------------------------------------------------------------------------------------------------------
def build(normals: dict, depth_type: str = "test/grey") -> None:
    build_graph({"representations": {"depth": {"type": depth_type},
                                     "normals": {"dependencies": ["depth"], **normals}}})


@pytest.mark.parametrize("type_name", ["normals/depth-svd", "normals/depth-gradient"])
@pytest.mark.parametrize("parameters, message", [
    ({"sensor_fov": -30}, "sensor_fov must be in the open interval (0, 180) degrees, got -30"),
    ({"sensor_fov": 180}, "sensor_fov must be in the open interval (0, 180) degrees, got 180"),
    ({"sensor_fov": "wide"}, "sensor_fov must be a number, got 'wide'"),
    ({"sensor_size": [3840]}, "sensor_size must be [width, height] in pixels (two positive integers)"),
    ({"sensor_size": [3840, 0]}, "sensor_size must be [width, height] in pixels (two positive integers)"),
    ({"sensor_size": [3840, 2160]}, "sensor_size need sensor_fov"),
    ({"fov_axis": "diagonally"}, "fov_axis must be one of 'diagonal', 'horizontal', 'vertical'"),
    ({"fx": 0, "fy": 500}, "fx must be > 0, got 0"),
    ({"fx": 500, "fy": -1.5}, "fy must be > 0, got -1.5"),
    ({"fx": 500}, "pinhole intrinsics need both fx and fy (focal lengths in pixels of the depth map); got only fx"),
    ({"fx": 500, "fy": 500, "cx": 10}, "cx and cy go together"),
    ({"fx": 500, "fy": 500, "sensor_fov": 75}, "give the camera intrinsics one way: either sensor_fov"),
    ({"cx": 10.0, "cy": 5.0}, "pinhole intrinsics need both fx and fy"),
    ({"depth_scale": 0}, "depth_scale must be > 0, got 0"),
    ({"max_distance": -2}, "max_distance must be > 0, got -2"),
    ({"invalid_value": 2}, "invalid_value must be None (store NaN) or a number in [0, 1], got 2"),
])
def test_bad_parameters_fail_at_graph_build(registry, type_name: str, parameters: dict, message: str) -> None:
    with pytest.raises(GraphError) as e:
        build({"type": type_name, "parameters": parameters})
    assert str(e.value).startswith(f"representation 'normals' ({type_name}): invalid parameter: ")
    assert message in str(e.value)


@pytest.mark.parametrize("window_size", [4, 2, 1, -3, 5.0, True])
def test_bad_window_fails_at_graph_build(registry, window_size) -> None:
    with pytest.raises(GraphError, match=r"window_size must be an odd integer >= 3 \(the window is centred on the "
                                         r"pixel\), got " + repr(window_size).replace(".", r"\.")):
        build({"type": "normals/depth-svd", "parameters": {"window_size": window_size}})


def test_gradient_has_no_window(registry) -> None:
    with pytest.raises(GraphError, match="unknown parameter"):
        build({"type": "normals/depth-gradient", "parameters": {"window_size": 5}})


def test_depth_with_the_wrong_channel_count_fails_at_graph_build(registry) -> None:
    with pytest.raises(GraphError) as e:
        build({"type": "normals/depth-svd"}, depth_type="color/rgb")
    assert str(e.value) == ("representation 'normals' (normals/depth-svd) needs a 1-channel 'depth' dependency but "
                            "'depth' outputs 3 channels; give it a 1-channel representation")


def test_valid_graph_builds(registry) -> None:
    build({"type": "normals/depth-svd", "parameters": {"sensor_fov": 75, "sensor_size": [3840, 2160],
                                                       "window_size": 11}})
    build({"type": "normals/depth-gradient", "parameters": {"fx": 500, "fy": 500, "cx": 480, "cy": 270}})


def test_disk_dtype_is_now_the_output_dtype_setting(registry, caplog) -> None:
    """The stored dtype is decided once: the old ``disk_dtype`` parameter sets ``output_dtype``, with one warning."""
    depth = {"type": "test/grey"}
    graph = build_graph({"representations": {"depth": depth, "normals": {
        "type": "normals/depth-svd", "dependencies": ["depth"], "parameters": {"disk_dtype": "float32"}}}})
    assert graph["normals"].settings.output_dtype == "float32"
    assert "disk_dtype" not in graph["normals"].parameters
    assert "parameter disk_dtype is now the setting output_dtype" in caplog.text
    with pytest.raises(GraphError, match="disk_dtype=float32 and output_dtype=float16 disagree"):
        build_graph({"representations": {"depth": depth, "normals": {
            "type": "normals/depth-svd", "dependencies": ["depth"], "parameters": {"disk_dtype": "float32"},
            "output_dtype": "float16"}}})
