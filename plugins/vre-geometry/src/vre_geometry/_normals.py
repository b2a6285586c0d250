"""Numerical kernels estimating camera-frame surface normals from z-depth maps (numpy + OpenCV)."""
from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "encode_normals",
    "intrinsics_from_fov",
    "normals_from_depth_gradient",
    "normals_from_depth_svd",
    "normals_from_depth_svd_reference",
    "normals_preview",
]

# Conventions shared by every function of this module
# ----------------------------------------------------
# * Pixel (u, v) = (column, row) has its centre at integer coordinates; a z-depth Z back-projects to
#   X = (u - cx) * Z / fx, Y = (v - cy) * Z / fy (OpenCV camera: x right, y down, z forward).
# * Normals are returned in the OpenGL camera frame: x right, y up, z towards the viewer, i.e. the OpenCV
#   vector (x, y, z) is returned as (x, -y, -z). They are unit vectors oriented towards the camera (their
#   dot product with the viewing ray is <= 0), so a fronto-parallel plane gives exactly (0, 0, 1).
# * Depth values that are zero, negative, NaN or +-inf are invalid: they are left out of every window.
#   A pixel whose window holds fewer than 3 valid points, or whose points are degenerate (all equal,
#   collinear, or spread isotropically so that no plane is preferred), gets NaN normals. Image borders
#   behave the same way: pixels outside the image are simply absent from the window.

_MIN_POINTS = 3
# The float32 solver reports, per pixel, g = (l_mid - l_min) / p (see _solve_normals), its eigenvector error
# being ~ 1e-7 / g. Pixels with g <= _FLOAT32_MIN_GAP (only when l_mid and l_min are very close: surfaces
# seen beyond ~89 degrees, a single row or column of valid pixels, near-collinear points) are solved again
# in float64; there, g <= _DEGENERATE means collinear / isotropic points, no plane: NaN (the reference's
# bound s_mid <= 1e-6 s_max on singular values is g ~ 3e-12).
_FLOAT32_MIN_GAP = 1e-3
_DEGENERATE = 3e-12
_SOLVER_BUFFERS = 20
_STRIP = 16  # output rows per strip (at least 2 windows): keeps the working arrays small and cache resident
_TWO_PI_3 = 2.0 * math.pi / 3.0


# ---------------------------------------------------------------------------------------------------------
# intrinsics and argument checks
# ---------------------------------------------------------------------------------------------------------
def intrinsics_from_fov(fov_deg: float, width: int, height: int, *,
                        fov_axis: Literal["horizontal", "vertical", "diagonal"] = "horizontal",
                        ) -> tuple[float, float, float, float]:
    """Pinhole intrinsics (fx, fy, cx, cy) of an ideal camera with square pixels.

    ``fov_deg`` is the full field of view in degrees across the image width (default), height
    (``fov_axis="vertical"``) or diagonal (``fov_axis="diagonal"``; the meaning of ``sensor_fov`` in the
    original video-representations-extractor, where ``sensor_size`` was the (width, height) that fov refers
    to). The field of view spans the outer pixel edges: fx = fy = (width / 2) / tan(fov / 2) for a
    horizontal fov. The principal point is the image centre in the pixel-centre convention used by the
    kernels (pixel u has its centre at u): cx = (width - 1) / 2, cy = (height - 1) / 2.
    """
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))) \
            or isinstance(width, bool) or isinstance(height, bool) or width < 1 or height < 1:
        raise ValueError(f"width and height must be positive integers, got width={width!r}, height={height!r}")
    fov = float(fov_deg)
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov_deg must be in the open interval (0, 180) degrees, got {fov_deg!r}")
    spans = {"horizontal": width / 2.0, "vertical": height / 2.0, "diagonal": math.hypot(width, height) / 2.0}
    if fov_axis not in spans:
        raise ValueError(f"fov_axis must be one of {sorted(spans)}, got {fov_axis!r}")
    f = spans[fov_axis] / math.tan(math.radians(fov) / 2.0)
    return f, f, (width - 1) / 2.0, (height - 1) / 2.0


def _check_window(window_size: int) -> int:
    if isinstance(window_size, bool) or not isinstance(window_size, (int, np.integer)):
        raise ValueError(f"window_size must be an odd integer >= 3, got {window_size!r}")
    if window_size < 3 or window_size % 2 == 0:
        raise ValueError(f"window_size must be an odd integer >= 3 (the window is centred on the pixel), "
                         f"got {window_size}")
    return int(window_size)


def _check_intrinsics(fx: float, fy: float, cx: float, cy: float) -> tuple[float, float, float, float]:
    fx, fy, cx, cy = float(fx), float(fy), float(cx), float(cy)
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
        raise ValueError(f"focal lengths fx, fy must be finite and > 0, got fx={fx}, fy={fy}")
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"principal point cx, cy must be finite, got cx={cx}, cy={cy}")
    return fx, fy, cx, cy


def _as_frames(depth: np.ndarray) -> tuple[np.ndarray, bool]:
    """(B, H, W) float view/copy of a (H, W) or (B, H, W) depth array, and whether the input was 2-D."""
    arr = np.asarray(depth)
    if arr.ndim not in (2, 3):
        raise ValueError(f"depth must have shape (H, W) or (B, H, W), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"depth must be a real numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"depth must have a non-empty image, got shape {arr.shape}")
    return (arr[None], True) if arr.ndim == 2 else (arr, False)


def _valid_mask(d: np.ndarray) -> np.ndarray:
    """Valid depth: finite and > 0 (NaN compares false, +inf is excluded by the second test)."""
    return (d > 0) & (d < np.inf)


# ---------------------------------------------------------------------------------------------------------
# fast kernel
# ---------------------------------------------------------------------------------------------------------
def normals_from_depth_svd(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                           window_size: int) -> np.ndarray:
    """Camera-frame normals by a least-squares plane fit over each pixel's window (fast, vectorised).

    Every pixel's ``window_size`` x ``window_size`` neighbourhood is back-projected with the pinhole
    intrinsics (z-depth: X = (u - cx) Z / fx, Y = (v - cy) Z / fy) and a plane is fitted by total least
    squares: the normal is the eigenvector of the smallest eigenvalue of the points' covariance (what an
    SVD of the centred points gives; see :func:`normals_from_depth_svd_reference`).

    Args:
        depth: z-depth (distance along the optical axis, any positive scale), float array (H, W) or
            (B, H, W). Zero, negative, NaN and +-inf values are invalid and left out of the windows.
        fx, fy, cx, cy: pinhole intrinsics in pixels (see :func:`intrinsics_from_fov`).
        window_size: odd window side >= 3.

    Returns:
        float32 array (..., H, W, 3) of unit normals in the OpenGL camera frame (x right, y up, z towards
        the viewer), oriented towards the camera: a fronto-parallel plane gives exactly (0, 0, 1). NaN
        where the window holds fewer than 3 valid points or a degenerate (e.g. collinear) point set.
        Windows are cut by the image border like by invalid pixels.

    Accuracy: within ~0.01 degree of the per-window SVD (:func:`normals_from_depth_svd_reference`);
    windows whose two smallest eigenvalues are nearly equal (surfaces seen beyond ~89 degrees, a single
    valid row or column) are solved in float64 and stay accurate down to collinearity, where NaN is given.

    Implementation, per strip of rows: the ten window moments (count, first and second order) are
    box / separable-filter sums (OpenCV, float64) of the depth images, taken in coordinates sheared to the
    window centre ((u - u0) Z, (v - v0) Z, Z - z_ref): no cancellation from the pixel position, exact zeros
    for a constant depth. Centring is done in float64, then per pixel in float32: the covariance is mapped
    back to camera coordinates, its eigenvalues come from the trigonometric closed form, and the normal
    from the well separated eigenvalue's adjugate column (= the largest-norm cross product of two rows of
    C - lambda I), through a 2x2 sub-problem when the two smallest eigenvalues are the closer pair (see
    ``_solve_normals``). Pixels where float32 is not enough are solved again in float64.
    """
    ws = _check_window(window_size)
    fx, fy, cx, cy = _check_intrinsics(fx, fy, cx, cy)
    frames, squeeze = _as_frames(depth)
    n_frames, height, width = frames.shape
    out = np.empty((n_frames, height, width, 3), dtype=np.float32)
    work = _Workspace(height, width, ws, fx, fy, cx, cy)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(n_frames):
            work.frame(frames[i], out[i])
    return out[0] if squeeze else out


class _Workspace:
    """Buffers and per-geometry constants of :func:`normals_from_depth_svd`.

    A frame is processed in strips of max(``_STRIP``, 2 x window) output rows (plus the window's halo rows
    for the filters), so that the ~50 working arrays stay small and cache resident; they are allocated once
    per call (fresh full-frame temporaries would cost more in page faults than the arithmetic).
    """

    def __init__(self, height: int, width: int, ws: int, fx: float, fy: float, cx: float, cy: float):
        self.h, self.w, self.ws, self.k = height, width, ws, ws // 2
        self.fx, self.rho = fx, fx / fy
        k = self.k
        offs = np.arange(-k, k + 1, dtype=np.float64)
        self.k_one, self.k_d, self.k_d2 = np.ones(ws), offs, offs * offs
        self.strip = min(height, max(_STRIP, 2 * ws))
        halo_rows = min(self.strip + 2 * k, height)
        f64 = lambda rows: np.empty((rows, width), np.float64)  # noqa: E731
        self.img = [f64(halo_rows) for _ in range(5)]  # z, z - z_ref, z^2, z (z - z_ref), (z - z_ref)^2
        # window sums of the points (du z, dv z, zt = z - z_ref): count, zt, du z, dv z, zt^2,
        # du^2 z^2, du dv z^2, dv^2 z^2, du z zt, dv z zt
        self.sums = [f64(halo_rows) for _ in range(10)]
        self.tmp, self.mx, self.my, self.mz = (f64(self.strip) for _ in range(4))
        # centred scatter matrix of the sheared points (du Z, dv Z, Z): [[p q r] [q s t] [r t w]]
        self.cov = [np.empty((self.strip, width), np.float32) for _ in range(6)]
        self.eig = [np.empty((self.strip, width), np.float32) for _ in range(_SOLVER_BUFFERS)]
        self.eig_bool = np.empty((self.strip, width), bool)
        self.bad = np.empty((self.strip, width), bool)
        # window counts along each axis (windows are cut by the image border)
        self.cnt_u = cv2.boxFilter(np.ones((1, width)), -1, (ws, 1), normalize=False,
                                   borderType=cv2.BORDER_CONSTANT).reshape(1, width)
        self.cnt_v = cv2.boxFilter(np.ones((height, 1)), -1, (1, ws), normalize=False,
                                   borderType=cv2.BORDER_CONSTANT).reshape(height, 1)
        # per-column / per-row offsets of the window centre from the principal point and viewing rays
        # (OpenCV frame), float64 for the refinement path, float32 for the main path
        self.alpha_x64 = np.arange(width) - cx                                 # (W,)   u0 - cx
        self.alpha_y64 = np.arange(height) - cy                                # (H,)   v0 - cy
        self.ray_x64, self.ray_y64 = self.alpha_x64 / fx, self.alpha_y64 / fy
        self.alpha_x = self.alpha_x64.astype(np.float32)
        self.alpha_y = self.alpha_y64.astype(np.float32)[:, None]
        self.ray_x = self.ray_x64.astype(np.float32)
        self.ray_y = self.ray_y64.astype(np.float32)[:, None]

    def frame(self, d: np.ndarray, out: np.ndarray) -> None:
        """Normals of one (H, W) depth frame into ``out`` (H, W, 3) float32."""
        for r0 in range(0, self.h, self.strip):
            r1 = min(r0 + self.strip, self.h)
            self._strip(d, r0, r1, out[r0:r1])

    def _strip(self, d: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
        ws, k, n = self.ws, self.k, r1 - r0
        i0, i1 = max(0, r0 - k), min(self.h, r1 + k)    # input rows the windows of rows r0:r1 touch
        rows = i1 - i0
        c0 = r0 - i0                                      # first output row inside the halo strip
        src = d[i0:i1]
        z, zt, z2, zzt, zt2 = (a[:rows] for a in self.img)
        valid = _valid_mask(src)
        all_valid = bool(valid.all())
        if all_valid:
            np.copyto(z, src)
        else:
            z.fill(0.0)
            np.copyto(z, src, where=valid)
        zmax = float(z.max())
        if not zmax > 0:  # no valid pixel in reach
            out.fill(np.nan)
            return
        # exact power-of-two rescale to depth <= 1: the float32 eigen stage stays far from overflow and
        # the result does not depend on the depth unit (bit for bit, for power-of-two unit changes)
        scale = math.ldexp(1.0, -math.frexp(zmax)[1])
        z *= scale
        # the third coordinate is shifted by a depth of the strip (covariances are translation invariant):
        # less cancellation, and a constant depth gives exact zeros for every z moment
        np.subtract(z, zmax * scale, out=zt)
        if not all_valid:
            zt *= valid
        np.multiply(z, z, out=z2)
        np.multiply(z, zt, out=zzt)
        np.multiply(zt, zt, out=zt2)
        s1, sz, sx, sy, szz, sxx, sxy, syy, sxz, syz = (a[:rows] for a in self.sums)
        one, dd, dd2 = self.k_one, self.k_d, self.k_d2
        border = cv2.BORDER_CONSTANT  # zero outside the strip: exact at the image border; the halo rows
        box = (ws, ws)                # make the central rows exact inside the image
        # correlation: dst(u0, v0) = sum kx[du] ky[dv] src(u0 + du, v0 + dv); points (du z, dv z, zt)
        cv2.sepFilter2D(z, -1, dd, one, dst=sx, borderType=border)
        cv2.sepFilter2D(z, -1, one, dd, dst=sy, borderType=border)
        cv2.boxFilter(zt, -1, box, dst=sz, normalize=False, borderType=border)
        cv2.sepFilter2D(z2, -1, dd2, one, dst=sxx, borderType=border)
        cv2.sepFilter2D(z2, -1, dd, dd, dst=sxy, borderType=border)
        cv2.sepFilter2D(z2, -1, one, dd2, dst=syy, borderType=border)
        cv2.sepFilter2D(zzt, -1, dd, one, dst=sxz, borderType=border)
        cv2.sepFilter2D(zzt, -1, one, dd, dst=syz, borderType=border)
        cv2.boxFilter(zt2, -1, box, dst=szz, normalize=False, borderType=border)
        core = slice(c0, c0 + n)
        if all_valid:
            s1 = s1[:n]
            np.multiply(self.cnt_v[r0:r1], self.cnt_u, out=s1)
        else:
            cv2.boxFilter(valid.view(np.uint8), cv2.CV_64F, box, dst=s1, normalize=False, borderType=border)
            s1 = s1[core]
        sz, sx, sy, szz, sxx, sxy, syy, sxz, syz = (a[core] for a in (sz, sx, sy, szz, sxx, sxy, syy, sxz, syz))
        # centring in float64 (the only step with real cancellation), stored as float32
        tmp, mx, my, mz = (a[:n] for a in (self.tmp, self.mx, self.my, self.mz))
        np.divide(sx, s1, out=mx)
        np.divide(sy, s1, out=my)
        np.divide(sz, s1, out=mz)
        cov = [a[:n] for a in self.cov]
        for s_ab, s_a, m_b, dst in zip((sxx, sxy, sxz, syy, syz, szz), (sx, sx, sx, sy, sy, sz),
                                       (mx, my, mz, my, mz, mz), cov, strict=True):
            np.multiply(s_a, m_b, out=tmp)
            np.subtract(s_ab, tmp, out=dst, casting="same_kind")
        bad = self.bad[:n]
        np.less(s1, _MIN_POINTS - 0.5, out=bad)
        flags = self.eig_bool[:n]
        cp, cq, cr, cs, ct, cw = cov
        gap = _solve_normals(cp, cq, cr, cs, ct, cw, self.alpha_x, self.alpha_y[r0:r1], self.ray_x, self.ray_y[r0:r1],
                             self.fx, self.rho, [a[:n] for a in self.eig], flags, out)
        np.greater(gap, np.float32(_FLOAT32_MIN_GAP), out=flags)
        flags |= bad                             # done: well conditioned, or too few points
        if not flags.all():                      # solve the rest again in float64
            rr, cols = np.nonzero(~flags)
            flat = rr * self.w + cols
            c1, c_x, c_y, c_z, c_xx, c_xy, c_xz, c_yy, c_yz, c_zz = (
                a.reshape(-1)[flat] for a in (s1, sx, sy, sz, sxx, sxy, sxz, syy, syz, szz))
            mx, my, mz = c_x / c1, c_y / c1, c_z / c1
            cov64 = (c_xx - c_x * mx, c_xy - c_x * my, c_xz - c_x * mz, c_yy - c_y * my, c_yz - c_y * mz,
                     c_zz - c_z * mz)
            m = len(flat)
            res = np.empty((m, 3), np.float32)
            gap64 = _solve_normals(*cov64, self.alpha_x64[cols], self.alpha_y64[r0 + rr], self.ray_x64[cols],
                                   self.ray_y64[r0 + rr], self.fx, self.rho,
                                   [np.empty(m) for _ in range(_SOLVER_BUFFERS)], np.empty(m, bool), res)
            res[~(gap64 > _DEGENERATE)] = np.nan
            out[rr, cols] = res
        if bad.any():
            out[bad] = np.nan


def _solve_normals(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray, t: np.ndarray, w: np.ndarray,
                   ax: np.ndarray, ay: np.ndarray, ray_x: np.ndarray, ray_y: np.ndarray, fx: float, rho: float,
                   bufs: list[np.ndarray], flags: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Per-pixel smallest-eigenvalue eigenvector of 3x3 scatter matrices, elementwise and in place.

    ``p, q, r, s, t, w`` are the entries [[p q r] [q s t] [r t w]] of the centred scatter matrix of the
    sheared window points ((u - u0) Z, (v - v0) Z, Z) (overwritten); ``ax = u0 - cx`` and ``ay = v0 - cy``
    (broadcastable), ``ray_x, ray_y`` the pixel's viewing ray (x / z, y / z), ``bufs`` _SOLVER_BUFFERS
    scratch arrays and ``flags`` a bool array, all of the shape and dtype of ``p`` (float32 or float64).
    Writes unit normals (OpenGL frame, towards the camera) to ``out`` (..., 3) and returns a view holding
    ``gap / p``: ~ 3 (l_mid - l_min) / (l_max - l_min) where the two smallest eigenvalues are the closer
    pair, a number >= 1 otherwise (NaN when p == 0). The eigenvector error is ~ eps / that number.

    Method (after Eberly, "A robust eigensolver for 3x3 symmetric matrices"): the eigenvalues of
    B = (C - tr(C)/3 I) / p come from the trigonometric closed form; the one farther from the other two
    (lambda_min if det B <= 0, else lambda_max) has a well conditioned eigenvector, taken as the largest
    diagonal column of adj(C - lambda I) (= the largest-norm cross product of two rows). If it is lambda_min
    that is the normal. Otherwise the normal is the smaller eigenvector of the 2x2 restriction of C to the
    plane orthogonal to the lambda_max eigenvector (closed form without trigonometry), accurate even when
    l_mid and l_min are close (grazing surfaces, depth edges, thin strips of valid pixels).
    """
    E = p.dtype.type
    fx, rho = E(fx), E(rho)
    mul, add, sub = np.multiply, np.add, np.subtract
    free = list(bufs)
    take = free.pop

    # -- covariance of the camera-frame points scaled by fx (same eigenvectors): C = T C' T^T with
    #    T = [[1, 0, ax], [0, rho, rho ay], [0, 0, fx]]; rx = r + ax w, ty = t + ay w
    rx, ty, t1 = take(), take(), take()
    mul(w, ax, out=rx)
    rx += r
    mul(w, ay, out=ty)
    ty += t
    c00 = p                                      # p + ax (r + rx)
    add(r, rx, out=t1)
    t1 *= ax
    c00 += t1
    c01 = q                                      # rho (q + ay r + ax ty)
    c01 += mul(r, ay, out=t1)
    c01 += mul(ty, ax, out=t1)
    c11 = s                                      # rho^2 (s + ay (t + ty))
    add(t, ty, out=t1)
    t1 *= ay
    c11 += t1
    if rho != 1:
        c01 *= rho
        c11 *= rho * rho
    c02, c12, c22 = r, t, w                      # fx rx, rho fx ty, fx^2 w
    mul(rx, fx, out=c02)
    mul(ty, rho * fx, out=c12)
    c22 *= fx * fx
    free += [rx, ty]

    # -- D = C - tr(C)/3 I (same eigenvectors), p2 = tr(D^2) / 6, r = det(D) / (2 p^3) = det(B) / 2
    add(c00, c11, out=t1)
    t1 += c22
    t1 *= E(1.0 / 3.0)
    d00, d11, d22 = c00, c11, c22
    d00 -= t1
    d11 -= t1
    d22 -= t1
    p2, sp, half_r, t2 = take(), take(), take(), take()
    mul(c01, c01, out=p2)
    p2 += mul(c02, c02, out=t1)
    p2 += mul(c12, c12, out=t1)
    p2 *= E(2.0)
    p2 += mul(d00, d00, out=t1)
    p2 += mul(d11, d11, out=t1)
    p2 += mul(d22, d22, out=t1)
    p2 *= E(1.0 / 6.0)
    np.sqrt(p2, out=sp)
    det = half_r                                 # d00 (d11 d22 - c12^2) + c01 (c02 c12 - c01 d22)
    mul(d11, d22, out=det)                       #   + c02 (c01 c12 - c02 d11)
    det -= mul(c12, c12, out=t1)
    det *= d00
    mul(c02, c12, out=t2)
    t2 -= mul(c01, d22, out=t1)
    t2 *= c01
    det += t2
    mul(c01, c12, out=t2)
    t2 -= mul(c02, d11, out=t1)
    t2 *= c02
    det += t2
    mul(sp, p2, out=t1)
    t1 *= E(2.0)
    half_r /= t1                                 # NaN where p == 0 (isotropic / no spread)
    np.clip(half_r, -1.0, 1.0, out=half_r)
    use_max = take()                             # 1 where lambda_max is the separated eigenvalue
    np.greater(half_r, 0, out=flags)
    np.copyto(use_max, flags)
    # lambda_sep = 2 p cos(phi) (lambda_max) or 2 p cos(phi + 2 pi / 3) (lambda_min), phi = acos(r) / 3
    np.arccos(half_r, out=half_r)
    half_r *= E(1.0 / 3.0)
    np.cos(half_r, out=t1)
    half_r += E(_TWO_PI_3)
    np.cos(half_r, out=half_r)
    lam = half_r
    t1 -= lam
    t1 *= use_max
    lam += t1
    lam *= sp
    lam *= E(2.0)
    free += [t2, p2]

    # -- eigenvector of lambda_sep: adj(D - lambda I) ~ mu v v^T, take its largest-diagonal column
    m00, m11, m22 = take(), take(), take()
    sub(d00, lam, out=m00)
    sub(d11, lam, out=m11)
    sub(d22, lam, out=m22)
    free.append(lam)
    a00, a11, a22, a01, a02, a12 = take(), take(), take(), take(), take(), take()
    mul(m11, m22, out=a00)
    a00 -= mul(c12, c12, out=t1)
    mul(m00, m22, out=a11)
    a11 -= mul(c02, c02, out=t1)
    mul(m00, m11, out=a22)
    a22 -= mul(c01, c01, out=t1)
    mul(c02, c12, out=a01)
    a01 -= mul(c01, m22, out=t1)
    mul(c01, c12, out=a02)
    a02 -= mul(c02, m11, out=t1)
    mul(c01, c02, out=a12)
    a12 -= mul(m00, c12, out=t1)
    free += [m00, m11, m22]
    # branch-free selection with 0/1 weights (exact: x * 1 + y * 0 == x)
    vx, vy, vz, wt, wf = take(), take(), take(), take(), take()
    np.greater(a11, a00, out=flags)              # col1 = (a01, a11, a12) beats col0 = (a00, a01, a02)?
    np.copyto(wt, flags)
    sub(E(1.0), wt, out=wf)
    mul(a00, wf, out=vx)
    vx += mul(a01, wt, out=t1)
    mul(a01, wf, out=vy)
    vy += mul(a11, wt, out=t1)
    mul(a02, wf, out=vz)
    vz += mul(a12, wt, out=t1)
    np.maximum(a00, a11, out=a00)                # best diagonal so far
    np.greater(a22, a00, out=flags)              # col2 = (a02, a12, a22) beats both?
    np.copyto(wt, flags)
    sub(E(1.0), wt, out=wf)
    vx *= wf
    vx += mul(a02, wt, out=t1)
    vy *= wf
    vy += mul(a12, wt, out=t1)
    vz *= wf
    vz += mul(a22, wt, out=t1)
    free += [a00, a11, a22, a01, a02, a12]
    nrm = take()
    mul(vx, vx, out=nrm)
    nrm += mul(vy, vy, out=t1)
    nrm += mul(vz, vz, out=t1)
    np.sqrt(nrm, out=nrm)
    vx /= nrm
    vy /= nrm
    vz /= nrm

    # -- lambda_max case: orthogonal basis (e, f) of the plane orthogonal to v; e = v x (the axis least
    #    aligned with v among y and x), f = v x e; 2x2 matrix [[a, b], [b, c]] of D in that basis
    np.abs(vx, out=t1)
    np.abs(vy, out=nrm)
    np.greater(t1, nrm, out=flags)               # |vx| > |vy|: e = (-vz, 0, vx) else (0, vz, -vy)
    np.copyto(wt, flags)
    sub(E(1.0), wt, out=wf)
    ex, ey, ez = take(), take(), take()
    mul(vz, wt, out=ex)
    np.negative(ex, out=ex)
    mul(vz, wf, out=ey)
    mul(vx, wt, out=ez)
    ez -= mul(vy, wf, out=t1)
    # (e and f = v x e have the same norm, 1/2 <= |e|^2 <= 1: the 2x2 problem is only scaled, no need to
    # normalise)
    fx_, fy_, fz_ = take(), take(), take()
    mul(vy, ez, out=fx_)
    fx_ -= mul(vz, ey, out=t1)
    mul(vz, ex, out=fy_)
    fy_ -= mul(vx, ez, out=t1)
    mul(vx, ey, out=fz_)
    fz_ -= mul(vy, ex, out=t1)
    # D e
    dex, dey, dez = wt, wf, nrm
    mul(d00, ex, out=dex)
    dex += mul(c01, ey, out=t1)
    dex += mul(c02, ez, out=t1)
    mul(c01, ex, out=dey)
    dey += mul(d11, ey, out=t1)
    dey += mul(c12, ez, out=t1)
    mul(c02, ex, out=dez)
    dez += mul(c12, ey, out=t1)
    dez += mul(d22, ez, out=t1)
    ca, cb, cc = take(), take(), take()
    mul(ex, dex, out=ca)                         # a = e.De
    ca += mul(ey, dey, out=t1)
    ca += mul(ez, dez, out=t1)
    mul(fx_, dex, out=cb)                        # b = f.De
    cb += mul(fy_, dey, out=t1)
    cb += mul(fz_, dez, out=t1)
    # c = f.Df = d00 fx^2 + d11 fy^2 + d22 fz^2 + 2 (c01 fx fy + c02 fx fz + c12 fy fz)
    mul(fx_, fy_, out=cc)
    cc *= c01
    mul(fx_, fz_, out=t1)
    t1 *= c02
    cc += t1
    mul(fy_, fz_, out=t1)
    t1 *= c12
    cc += t1
    cc *= E(2.0)
    mul(fx_, fx_, out=t1)
    t1 *= d00
    cc += t1
    mul(fy_, fy_, out=t1)
    t1 *= d11
    cc += t1
    mul(fz_, fz_, out=t1)
    t1 *= d22
    cc += t1
    # smaller eigenvector of [[a, b], [b, c]]: with d = a - c, h = hypot(d, 2b), k = h + |d| (no
    # cancellation): (2b, -k) if d >= 0 else (-k, 2b); h = l_mid - l_min is the gap
    dd, hh = ca, cc
    dd -= cc                                     # d (a no longer needed)
    cb *= E(2.0)                                 # 2b
    mul(dd, dd, out=hh)                          # c no longer needed
    hh += mul(cb, cb, out=t1)
    np.sqrt(hh, out=hh)
    np.greater_equal(dd, 0, out=flags)
    np.copyto(wt, flags)
    sub(E(1.0), wt, out=wf)
    np.abs(dd, out=dd)
    dd += hh                                     # k
    s1_, s2_ = take(), take()                    # coefficients of e and f
    mul(cb, wt, out=s1_)
    s1_ -= mul(dd, wf, out=t1)
    mul(cb, wf, out=s2_)
    s2_ -= mul(dd, wt, out=t1)
    # candidate normal of the lambda_max case, blended with v (lambda_min case) by use_max
    nx, ny, nz = dd, cb, wt                      # reuse (k, 2b and the d >= 0 weights are consumed)
    free += [wf]
    mul(ex, s1_, out=nx)
    nx += mul(fx_, s2_, out=t1)
    mul(ey, s1_, out=ny)
    ny += mul(fy_, s2_, out=t1)
    mul(ez, s1_, out=nz)
    nz += mul(fz_, s2_, out=t1)
    keep = s1_
    sub(E(1.0), use_max, out=keep)
    for n_c, v_c in ((nx, vx), (ny, vy), (nz, vz)):
        n_c *= use_max
        n_c += mul(v_c, keep, out=t1)
    # conditioning: gap / p where lambda_max is the separated one, else (use_max = 0) 1 + gap / p
    hh /= sp
    hh += keep

    # -- orient towards the camera (dot with the viewing ray < 0 in the OpenCV frame), normalise and
    #    convert to the OpenGL frame: (x, y, z)_gl = (x, -y, -z)_cv
    dot, nrm = vx, vy
    mul(nx, ray_x, out=dot)
    dot += mul(ny, ray_y, out=t1)
    dot += nz
    mul(nx, nx, out=nrm)
    nrm += mul(ny, ny, out=t1)
    nrm += mul(nz, nz, out=t1)
    np.sqrt(nrm, out=nrm)
    np.copysign(nrm, dot, out=nrm)               # n_cv = -n / copysign(|n|, dot)
    np.divide(ny, nrm, out=out[..., 1])
    np.divide(nz, nrm, out=out[..., 2])
    np.negative(nrm, out=nrm)
    np.divide(nx, nrm, out=out[..., 0])
    out += np.float32(0.0)                       # -0.0 -> +0.0
    return hh


# ---------------------------------------------------------------------------------------------------------
# reference and cheap variants
# ---------------------------------------------------------------------------------------------------------
def _back_project(z: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(..., H, W, 3) OpenCV-frame points of a float64 z-depth array (..., H, W)."""
    h, w = z.shape[-2:]
    xs = (np.arange(w, dtype=np.float64) - cx) / fx
    ys = (np.arange(h, dtype=np.float64)[:, None] - cy) / fy
    return np.stack(np.broadcast_arrays(z * xs, z * ys, z), axis=-1)


def _orient_to_opengl(n: np.ndarray, ray: np.ndarray) -> np.ndarray:
    """Flip OpenCV-frame vectors to face the camera (dot(n, ray) <= 0), then express them as OpenGL."""
    flip = np.sum(n * ray, axis=-1, keepdims=True) > 0
    n = np.where(flip, -n, n)
    return n * np.array([1.0, -1.0, -1.0]) + 0.0  # + 0.0: no negative zeros


def normals_from_depth_svd_reference(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                                     window_size: int) -> np.ndarray:
    """Straightforward per-window SVD plane fit (slow; the ground truth for tests and benchmarks).

    Same inputs, output and conventions as :func:`normals_from_depth_svd`: for every pixel the valid
    back-projected points of its window are centred on their mean and the normal is the right singular
    vector of the smallest singular value. NaN where fewer than 3 valid points or where the two smallest
    singular values are (relatively) equal (collinear or isotropic points: no preferred plane).
    """
    ws = _check_window(window_size)
    fx, fy, cx, cy = _check_intrinsics(fx, fy, cx, cy)
    frames, squeeze = _as_frames(depth)
    b, h, w = frames.shape
    k = ws // 2
    z = frames.astype(np.float64)
    z = np.where(_valid_mask(z), z, np.nan)
    pts = _back_project(z, fx, fy, cx, cy)                                    # (B, H, W, 3), NaN invalid
    padded = np.pad(pts, ((0, 0), (k, k), (k, k), (0, 0)), constant_values=np.nan)
    out = np.full((b, h, w, 3), np.nan, dtype=np.float64)
    rows_per_chunk = max(1, 20000 // w)
    for i in range(b):
        for r0 in range(0, h, rows_per_chunk):
            r1 = min(h, r0 + rows_per_chunk)
            # (rows, W, 3, ws, ws) -> (rows * W, ws * ws, 3)
            win = np.lib.stride_tricks.sliding_window_view(padded[i, r0:r1 + 2 * k], (ws, ws), axis=(0, 1))
            win = win.transpose(0, 1, 3, 4, 2).reshape(-1, ws * ws, 3)
            ok = ~np.isnan(win[..., 0])
            cnt = ok.sum(axis=1)
            enough = cnt >= _MIN_POINTS
            win, ok, cnt = win[enough], ok[enough], cnt[enough]
            mean = np.nansum(win, axis=1) / cnt[:, None]
            cen = np.where(ok[..., None], win - mean[:, None, :], 0.0)       # absent points -> zero rows
            _, sv, vt = np.linalg.svd(cen, full_matrices=False)
            normal = vt[:, -1, :]
            degenerate = ~(sv[:, 1] > 1e-6 * sv[:, 0])
            normal[degenerate] = np.nan
            block = out[i, r0:r1].reshape(-1, 3)
            block[enough] = normal
    rays = _back_project(np.ones((h, w)), fx, fy, cx, cy)
    res = _orient_to_opengl(out, rays).astype(np.float32)
    return res[0] if squeeze else res


def normals_from_depth_gradient(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Cheap normals: cross product of the central differences of the back-projected points.

    n = dP/du x dP/dv (one-sided differences on the image border), normalised, oriented towards the
    camera and returned in the OpenGL camera frame like :func:`normals_from_depth_svd` (float32
    (..., H, W, 3); computed in float32). NaN where the pixel or a neighbour used by a difference is
    invalid (zero, negative, NaN or inf depth). Exact for planes; noisier than the plane fit on real data.
    The image needs at least 2 rows and 2 columns.
    """
    fx, fy, cx, cy = _check_intrinsics(fx, fy, cx, cy)
    frames, squeeze = _as_frames(depth)
    n_frames, h, w = frames.shape
    if h < 2 or w < 2:
        raise ValueError(f"normals_from_depth_gradient needs at least 2 x 2 pixels, got {h} x {w}")
    out = np.empty((n_frames, h, w, 3), np.float32)
    xn = ((np.arange(w) - cx) / fx).astype(np.float32)             # viewing ray (x / z, y / z), OpenCV
    yn = ((np.arange(h) - cy) / fy).astype(np.float32)[:, None]
    strip = min(h, _STRIP * 2)
    z, px, py = (np.empty((strip + 2, w), np.float32) for _ in range(3))
    du_x, du_y, du_z, dv_x, dv_y, dv_z, t1 = (np.empty((strip, w), np.float32) for _ in range(7))
    mul = np.multiply
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n_frames):
            for r0 in range(0, h, strip):
                # rows r0:r1 and their neighbours i0:i1; differences P(+1) - P(-1), one-sided on the image
                # border (the common factors 1/2 are left out: only the direction of the cross product matters)
                r1 = min(h, r0 + strip)
                n, i0, i1 = r1 - r0, max(0, r0 - 1), min(h, r1 + 1)
                d = frames[i, i0:i1]
                zs, xs, ys = z[:i1 - i0], px[:i1 - i0], py[:i1 - i0]
                np.copyto(zs, d, casting="unsafe")
                valid = _valid_mask(d)
                if not valid.all():
                    zs[~valid] = np.nan
                mul(zs, xn, out=xs)
                mul(zs, yn[i0:i1], out=ys)
                rows = np.arange(r0, r1)
                hi, lo = np.minimum(rows + 1, h - 1) - i0, np.maximum(rows - 1, 0) - i0
                c = slice(r0 - i0, r1 - i0)
                ux, uy, uz, vx, vy, vz, t = (a[:n] for a in (du_x, du_y, du_z, dv_x, dv_y, dv_z, t1))
                for s_, u_, v_ in ((xs, ux, vx), (ys, uy, vy), (zs, uz, vz)):
                    sc = s_[c]
                    np.subtract(sc[:, 2:], sc[:, :-2], out=u_[:, 1:-1])
                    np.subtract(sc[:, 1], sc[:, 0], out=u_[:, 0])
                    np.subtract(sc[:, -1], sc[:, -2], out=u_[:, -1])
                    np.subtract(s_[hi], s_[lo], out=v_)
                nx, ny, nz = xs[:n], ys[:n], zs[:n]                  # n = du x dv (OpenCV frame)
                mul(uy, vz, out=nx)
                nx -= mul(uz, vy, out=t)
                mul(uz, vx, out=ny)
                ny -= mul(ux, vz, out=t)
                mul(ux, vy, out=nz)
                nz -= mul(uy, vx, out=t)
                dot, nrm = ux, uy                                    # orient: dot with the ray < 0
                mul(nx, xn, out=dot)
                dot += mul(ny, yn[r0:r1], out=t)
                dot += nz
                mul(nx, nx, out=nrm)
                nrm += mul(ny, ny, out=t)
                nrm += mul(nz, nz, out=t)
                np.sqrt(nrm, out=nrm)
                np.copysign(nrm, dot, out=nrm)                       # n_cv = -n / copysign(|n|, dot)
                o = out[i, r0:r1]
                np.divide(ny, nrm, out=o[..., 1])                    # OpenGL: (x, -y, -z)_cv
                np.divide(nz, nrm, out=o[..., 2])
                np.negative(nrm, out=nrm)
                np.divide(nx, nrm, out=o[..., 0])
                o += np.float32(0.0)
                centre = valid[r0 - i0:r1 - i0]
                if not centre.all():
                    o[~centre] = np.nan
    return out[0] if squeeze else out


# ---------------------------------------------------------------------------------------------------------
# storage and preview
# ---------------------------------------------------------------------------------------------------------
def encode_normals(n: np.ndarray) -> np.ndarray:
    """Stored form of unit normals: (n + 1) / 2 in [0, 1], float32 (NaN stays NaN)."""
    n = np.asarray(n, dtype=np.float32)
    return (n + np.float32(1.0)) * np.float32(0.5)


def normals_preview(encoded: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) colour image of encoded normals: channels r, g, b = x, y, z; NaN -> black."""
    enc = np.asarray(encoded, dtype=np.float32)
    if enc.ndim < 3 or enc.shape[-1] != 3:
        raise ValueError(f"encoded normals must have shape (..., H, W, 3), got {enc.shape}")
    img = np.nan_to_num(enc, nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
