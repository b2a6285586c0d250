"""Tests of the camera-normals-from-depth kernels against analytic surfaces and the per-pixel SVD reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vre_geometry._normals import (
    encode_normals,
    intrinsics_from_fov,
    normals_from_depth_gradient,
    normals_from_depth_svd,
    normals_from_depth_svd_reference,
    normals_preview,
)

H, W = 36, 52
FOV = 70.0


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors (last axis) in degrees, accurate for tiny angles (atan2 of |a x b| and a . b)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def pixel_rays(h: int, w: int, fx: float, fy: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates (x / z, y / z) of every pixel, OpenCV frame (y down)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return (u - cx) / fx, (v - cy) / fy


def plane_depth(a: float, b: float, c: float, h: int, w: int, intr: tuple[float, float, float, float]) -> np.ndarray:
    """z-depth of the plane Z = a + b X + c Y (OpenCV camera coordinates) seen through the intrinsics."""
    xn, yn = pixel_rays(h, w, *intr)
    z = a / (1.0 - b * xn - c * yn)
    assert np.all(z > 0), "test plane must be in front of the camera"
    return z


def plane_normal_gl(b: float, c: float) -> np.ndarray:
    """Unit normal of Z = a + b X + c Y (a > 0) facing the camera, OpenGL frame (x right, y up, z to viewer)."""
    n_cv = np.array([b, c, -1.0])  # gradient of Z - bX - cY is (-b, -c, 1), away from the camera: flip it
    n_gl = n_cv * np.array([1.0, -1.0, -1.0])
    return n_gl / np.linalg.norm(n_gl)


def smooth_depth(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.full((h, w), 3.0)
    for _ in range(4):
        fu, fv = rng.uniform(0.02, 0.12, 2)
        ph, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.3)
        d += amp * np.sin(fu * u + fv * v + ph)
    return d


@pytest.fixture(scope="module")
def intr() -> tuple[float, float, float, float]:
    return intrinsics_from_fov(FOV, W, H)


# ------------------------------------------------------------------------------------------------------------
# intrinsics
# ------------------------------------------------------------------------------------------------------------
def test_intrinsics_from_fov_horizontal() -> None:
    fx, fy, cx, cy = intrinsics_from_fov(90.0, 100, 60)
    assert fx == pytest.approx(50.0) and fy == fx
    assert (cx, cy) == (49.5, 29.5)
    # the horizontal fov spans the outer pixel edges (-0.5 and width - 0.5)
    half = math.degrees(math.atan((100 / 2) / fx))
    assert 2 * half == pytest.approx(90.0)


def test_intrinsics_from_fov_other_axes() -> None:
    fx_v, _, _, _ = intrinsics_from_fov(60.0, 160, 90, fov_axis="vertical")
    assert fx_v == pytest.approx(45.0 / math.tan(math.radians(30.0)))
    fx_d, _, _, _ = intrinsics_from_fov(60.0, 160, 90, fov_axis="diagonal")
    assert fx_d == pytest.approx(math.hypot(160, 90) / 2 / math.tan(math.radians(30.0)))


@pytest.mark.parametrize("args", [(0.0, 10, 10), (180.0, 10, 10), (60.0, 0, 10), (60.0, 10, -1), (60.0, 1.5, 10)])
def test_intrinsics_from_fov_rejects_bad_arguments(args: tuple) -> None:
    with pytest.raises(ValueError):
        intrinsics_from_fov(*args)


# ------------------------------------------------------------------------------------------------------------
# analytic surfaces
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window_size", [3, 5, 11])
@pytest.mark.parametrize("depth_value", [2.5, 7.3, 1234.5678])
def test_fronto_parallel_plane_is_exactly_z(intr, window_size: int, depth_value: float) -> None:
    depth = np.full((H, W), depth_value, np.float32)
    n = normals_from_depth_svd(depth, *intr, window_size)
    assert n.shape == (H, W, 3) and n.dtype == np.float32
    assert np.array_equal(n, np.broadcast_to(np.float32([0, 0, 1]), n.shape))  # borders included
    enc = encode_normals(n)
    assert np.array_equal(enc, np.broadcast_to(np.float32([0.5, 0.5, 1.0]), enc.shape))


@pytest.mark.parametrize("intrinsics", [(60.0, 45.0, 20.0, 22.0), (30.0, 90.0, -5.0, 40.0)])
def test_fronto_parallel_plane_exact_with_any_intrinsics(intrinsics: tuple) -> None:
    depth = np.full((H, W), 1234.5678)
    for n in (normals_from_depth_svd(depth, *intrinsics, 5), normals_from_depth_svd(depth, *intrinsics, 11),
              normals_from_depth_gradient(depth, *intrinsics)):
        assert np.array_equal(n, np.broadcast_to(np.float32([0, 0, 1]), n.shape))


def test_fronto_parallel_plane_reference_and_gradient(intr) -> None:
    depth = np.full((H, W), 4.0)
    for n in (normals_from_depth_svd_reference(depth, *intr, 5), normals_from_depth_gradient(depth, *intr)):
        assert np.allclose(n, [0.0, 0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("b, c", [(0.3, -0.2), (-0.8, 0.5), (0.9, 0.3), (0.0, -1.6)])
@pytest.mark.parametrize("window_size", [3, 5, 11])
def test_tilted_plane_matches_analytic_normal(intr, b: float, c: float, window_size: int) -> None:
    depth = plane_depth(4.0, b, c, H, W, intr)
    expected = plane_normal_gl(b, c)
    n = normals_from_depth_svd(depth, *intr, window_size)
    k = window_size // 2
    err = angle_deg(n, expected)
    assert err[k:-k, k:-k].max() <= 0.25
    assert err.max() <= 0.25  # windows cut by the border still hold points of the same plane
    if window_size == 5:  # the reference the other tests compare with
        assert angle_deg(normals_from_depth_svd_reference(depth, *intr, 5), expected).max() <= 0.25


def test_tilted_plane_non_square_pixels_off_centre_principal_point() -> None:
    intr = (60.0, 45.0, 20.0, 22.0)
    depth = plane_depth(3.0, 0.7, -0.4, H, W, intr)
    expected = plane_normal_gl(0.7, -0.4)
    for fn in (lambda d: normals_from_depth_svd(d, *intr, 5), lambda d: normals_from_depth_gradient(d, *intr)):
        assert angle_deg(fn(depth), expected).max() <= 0.25


@pytest.mark.parametrize("tilt_deg", [75.0, 84.0, 88.0, 89.5])
def test_grazing_plane(tilt_deg: float) -> None:
    """A floor seen at grazing angles: the two smallest eigenvalues of a window are close, the float32
    closed form alone would be off by degrees there (the float64 path takes over)."""
    intr = intrinsics_from_fov(20.0, W, H)
    c = math.tan(math.radians(tilt_deg))      # Z = a + c Y: incidence angle tilt_deg on the optical axis
    xn, yn = pixel_rays(H, W, *intr)
    denom = 1.0 - c * yn
    depth = np.where(denom > 0.02, 5.0 / np.where(denom > 0.02, denom, 1.0), 0.0)  # above the horizon: sky
    valid = depth > 0
    full = valid.copy()
    for dv in range(-2, 3):
        full &= np.roll(valid, dv, axis=0)
    assert full[2:-2].sum() > 200
    n = normals_from_depth_svd(depth, *intr, 5)
    err = angle_deg(n, plane_normal_gl(0.0, c))
    assert not np.isnan(n[full]).any()
    assert err[2:-2][full[2:-2]].max() <= 0.25


@pytest.mark.parametrize("window_size", [3, 5])
def test_sphere_normals_are_radial(window_size: int) -> None:
    h, w = 64, 80
    intr = intrinsics_from_fov(60.0, w, h)
    centre, radius = np.array([0.3, -0.2, 6.0]), 2.0
    xn, yn = pixel_rays(h, w, *intr)
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=-1)  # P = t * ray has z-depth t
    rc = rays @ centre
    rr = np.sum(rays * rays, axis=-1)
    disc = rc ** 2 - rr * (centre @ centre - radius ** 2)
    hit = disc > 0
    t = (rc - np.sqrt(np.where(hit, disc, 0.0))) / rr
    depth = np.where(hit, t, 0.0)  # background: invalid
    pts = rays * t[..., None]
    expected = (pts - centre) / radius * np.array([1.0, -1.0, -1.0])  # outward = towards the camera, GL
    n = normals_from_depth_svd(depth, *intr, window_size)
    # pixels whose whole window is on the sphere and that are 3+ pixels away from the silhouette
    margin = window_size // 2 + 3
    inner = hit.copy()
    for dv in range(-margin, margin + 1):
        for du in range(-margin, margin + 1):
            inner &= np.roll(hit, (dv, du), axis=(0, 1))
    assert inner.sum() > 500
    err = angle_deg(n, expected)
    assert err[inner].max() <= 2.0
    assert np.median(err[inner]) <= 0.5
    assert (n[..., 2][inner] > 0).all()  # facing the camera
    # background far from the sphere: every window point invalid -> NaN
    far = ~hit
    for dv in range(-window_size, window_size + 1):
        for du in range(-window_size, window_size + 1):
            far &= ~np.roll(hit, (dv, du), axis=(0, 1))
    assert far.sum() > 100
    assert np.isnan(n[far]).all()
    assert not np.isnan(n[hit]).any()


# ------------------------------------------------------------------------------------------------------------
# fast kernel vs the per-window SVD reference
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window_size", [3, 5, 11])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_matches_reference_on_smooth_depth(intr, window_size: int, seed: int) -> None:
    depth = smooth_depth(H, W, seed)
    fast = normals_from_depth_svd(depth, *intr, window_size)
    ref = normals_from_depth_svd_reference(depth, *intr, window_size)
    assert not np.isnan(fast).any() and not np.isnan(ref).any()
    assert angle_deg(fast, ref).max() <= 0.25
    assert np.allclose(np.linalg.norm(fast, axis=-1), 1.0, atol=1e-6)


def test_fast_matches_reference_on_depth_edges(intr) -> None:
    """Windows across depth discontinuities are elongated point clouds (ill-conditioned eigenproblems)."""
    depth = smooth_depth(H, W, 2)
    depth[:, W // 2:] += 4.0
    depth[H // 3:, : W // 4] *= 0.25
    for window_size in (3, 5):
        fast = normals_from_depth_svd(depth, *intr, window_size)
        ref = normals_from_depth_svd_reference(depth, *intr, window_size)
        assert angle_deg(fast, ref).max() <= 0.25


def test_fast_matches_reference_with_non_square_pixels() -> None:
    intr = (55.0, 70.0, 30.3, 12.7)
    depth = smooth_depth(H, W, 3)
    fast = normals_from_depth_svd(depth, *intr, 5)
    ref = normals_from_depth_svd_reference(depth, *intr, 5)
    assert angle_deg(fast, ref).max() <= 0.25


def test_window_larger_than_image(intr) -> None:
    depth = smooth_depth(5, 7, 4)
    fast = normals_from_depth_svd(depth, *intr, 11)
    ref = normals_from_depth_svd_reference(depth, *intr, 11)
    assert angle_deg(fast, ref).max() <= 0.25


def test_depth_scale_and_dtype_invariance(intr) -> None:
    depth = smooth_depth(H, W, 5)
    base = normals_from_depth_svd(depth, *intr, 5)
    assert np.array_equal(normals_from_depth_svd(depth * 1024.0, *intr, 5), base)  # power of two: bit exact
    assert angle_deg(normals_from_depth_svd(depth * 1000.0, *intr, 5), base).max() <= 1e-3
    assert angle_deg(normals_from_depth_svd(depth.astype(np.float32), *intr, 5), base).max() <= 0.01


# ------------------------------------------------------------------------------------------------------------
# invalid depth
# ------------------------------------------------------------------------------------------------------------
def with_holes(depth: np.ndarray) -> np.ndarray:
    d = depth.copy()
    d[5:12, 8:30] = 0.0              # zero
    d[20:, :6] = np.nan              # NaN, touching the border
    d[3, 40] = np.inf                # single inf
    d[25:28, 30:45] = -1.0           # negative
    d[12:30, 46] = -np.inf           # a thin invalid column
    d[18:, 20:26] = np.nan
    d[30, 23] = 3.0                  # isolated valid pixel inside a hole: a window with a single point
    return d


@pytest.mark.parametrize("window_size", [3, 5])
def test_invalid_pixels_match_reference(intr, window_size: int) -> None:
    depth = with_holes(smooth_depth(H, W, 6))
    fast = normals_from_depth_svd(depth, *intr, window_size)
    ref = normals_from_depth_svd_reference(depth, *intr, window_size)
    assert np.array_equal(np.isnan(fast), np.isnan(ref))
    ok = ~np.isnan(ref[..., 0])
    err = angle_deg(fast[ok], ref[ok])
    # windows whose only valid points are one image row or column fit the plane through the camera
    # centre: the viewing ray lies in it and the orientation is a tie, compare those up to sign
    xn, yn = pixel_rays(H, W, *intr)
    ray_gl = np.stack([xn, -yn, -np.ones_like(xn)], axis=-1)[ok]
    tie = np.abs(np.sum(ref[ok] * ray_gl, axis=-1)) < 1e-3 * np.linalg.norm(ray_gl, axis=-1)
    assert tie.sum() < 0.05 * ok.sum()
    assert err[~tie].max() <= 0.25
    assert np.all(np.minimum(err, 180.0 - err)[tie] <= 0.25)


@pytest.mark.parametrize("window_size", [3, 5, 11])
def test_invalid_pixels_nan_only_where_too_few_points(intr, window_size: int) -> None:
    depth = with_holes(smooth_depth(H, W, 7))
    valid = np.isfinite(depth) & (depth > 0)
    k = window_size // 2
    padded = np.pad(valid, k)
    count = sum(padded[dv:dv + H, du:du + W] for dv in range(window_size) for du in range(window_size))
    n = normals_from_depth_svd(depth, *intr, window_size)
    nan = np.isnan(n)
    assert np.array_equal(nan[..., 0], nan[..., 2])            # a pixel is all NaN or not at all
    assert not nan[count >= 3].any()   # smooth surface: any 3+ valid points of a window are not collinear
    assert nan[count < 3].all()
    assert nan[count == 0].all()
    good = ~nan[..., 0]
    assert np.allclose(np.linalg.norm(n[good], axis=-1), 1.0, atol=1e-6)


def test_all_invalid_frame_is_nan(intr) -> None:
    depth = np.full((H, W), np.nan)
    depth[::2] = 0.0
    assert np.isnan(normals_from_depth_svd(depth, *intr, 5)).all()
    assert np.isnan(normals_from_depth_gradient(depth, *intr)).all()


@pytest.mark.parametrize("tilt", [0.0, 0.7, -1.3])
def test_collinear_points_are_nan(intr, tilt: float) -> None:
    """Only one valid column, whose depth follows the plane Z = 2 + tilt Y: the back-projected points lie
    on the line where that plane cuts the plane through the camera and the column (rounding makes them
    only nearly collinear when tilt != 0)."""
    depth = np.zeros((H, W))
    depth[:, 20] = plane_depth(2.0, 0.0, tilt, H, W, intr)[:, 20]
    n = normals_from_depth_svd(depth, *intr, 5)
    ref = normals_from_depth_svd_reference(depth, *intr, 5)
    assert np.isnan(n).all() and np.isnan(ref).all()


def test_single_valid_row_is_the_plane_through_the_camera(intr) -> None:
    """A window whose only valid points are one image row: they lie in the plane through the optical
    centre and that row, a legitimate (non-collinear) fit with close smallest eigenvalues. The viewing
    ray lies in that plane, so the orientation is arbitrary: compare up to sign."""
    depth = smooth_depth(H, W, 8)
    depth[10:20] = 0.0
    n = normals_from_depth_svd(depth, *intr, 5)
    ref = normals_from_depth_svd_reference(depth, *intr, 5)
    assert not np.isnan(n[11]).any()           # window rows 9..13: only row 9 is valid
    fx, fy, cx, cy = intr
    expected = np.array([0.0, -1.0, (9 - cy) / fy])  # plane Y = y9 Z: normal (0, 1, -y9) OpenCV -> GL
    for got in (n[11], ref[11]):
        err = angle_deg(got, expected)
        assert np.minimum(err, 180.0 - err).max() <= 0.25


# ------------------------------------------------------------------------------------------------------------
# batching, validation, storage
# ------------------------------------------------------------------------------------------------------------
def test_batched_equals_per_frame(intr) -> None:
    frames = np.stack([smooth_depth(H, W, s) for s in range(3)])
    frames[1] = with_holes(frames[1])
    batched = normals_from_depth_svd(frames, *intr, 5)
    assert batched.shape == (3, H, W, 3)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], normals_from_depth_svd(frames[i], *intr, 5))
    grad = normals_from_depth_gradient(frames, *intr)
    for i in range(3):
        np.testing.assert_array_equal(grad[i], normals_from_depth_gradient(frames[i], *intr))
    ref = normals_from_depth_svd_reference(frames[:2, :12, :16], *intr, 3)
    np.testing.assert_array_equal(ref[1], normals_from_depth_svd_reference(frames[1, :12, :16], *intr, 3))


@pytest.mark.parametrize("window_size", [2, 4, 1, 0, -3, 5.0, "5", True])
def test_window_size_validation(intr, window_size) -> None:
    depth = np.ones((8, 8))
    with pytest.raises(ValueError, match="odd integer >= 3"):
        normals_from_depth_svd(depth, *intr, window_size)
    with pytest.raises(ValueError, match="odd integer >= 3"):
        normals_from_depth_svd_reference(depth, *intr, window_size)


def test_shape_and_intrinsics_validation(intr) -> None:
    with pytest.raises(ValueError, match="shape"):
        normals_from_depth_svd(np.ones(10), *intr, 3)
    with pytest.raises(ValueError, match="shape"):
        normals_from_depth_svd(np.ones((1, 2, 8, 8)), *intr, 3)
    with pytest.raises(ValueError, match="fx"):
        normals_from_depth_svd(np.ones((8, 8)), 0.0, 10.0, 4.0, 4.0, 3)


@pytest.mark.parametrize("b, c", [(0.4, 0.3), (-0.9, 0.5)])
def test_gradient_variant_on_planes(intr, b: float, c: float) -> None:
    depth = plane_depth(3.0, b, c, H, W, intr)
    n = normals_from_depth_gradient(depth, *intr)
    assert n.shape == (H, W, 3) and n.dtype == np.float32
    assert angle_deg(n, plane_normal_gl(b, c)).max() <= 0.25  # borders (one-sided differences) too


def test_gradient_variant_invalid_pixels(intr) -> None:
    depth = smooth_depth(H, W, 9)
    depth[10, 10] = np.nan
    depth[20, 30] = 0.0
    n = normals_from_depth_gradient(depth, *intr)
    nan = np.isnan(n[..., 0])
    assert nan[10, 10] and nan[20, 30] and nan[10, 9] and nan[11, 10]  # the pixel and its difference users
    assert nan.sum() == 10
    assert angle_deg(n[~nan], normals_from_depth_svd(depth, *intr, 3)[~nan]).max() < 5.0


def test_encode_and_preview() -> None:
    n = np.array([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [np.nan, np.nan, np.nan]]], np.float32)
    enc = encode_normals(n)
    assert enc.dtype == np.float32
    np.testing.assert_array_equal(enc[0, :3], [[0.5, 0.5, 1.0], [1.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    assert np.isnan(enc[0, 3]).all()
    img = normals_preview(enc)
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    np.testing.assert_array_equal(img[0], [[128, 128, 255], [255, 128, 128], [128, 0, 128], [0, 0, 0]])
    batch = normals_preview(np.stack([enc, enc]))
    assert batch.shape == (2, 1, 4, 3)
    with pytest.raises(ValueError):
        normals_preview(np.zeros((4, 4)))
