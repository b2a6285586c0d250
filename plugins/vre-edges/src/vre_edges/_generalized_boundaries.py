"""Generalized-boundaries soft segmentation (Leordeanu et al.): colour co-occurrence PCA soft masks, vectorised."""

from __future__ import annotations

import functools

import cv2
import numpy as np

# Fixed constants of the seed's algorithm (its `get_pca_data` / `like_an_image` defaults).
_DIM_H, _DIM_S, _DIM_V = 15, 11, 7  # HSV quantisation levels -> 1155 colour words
_N_COLOURS = _DIM_H * _DIM_S * _DIM_V
_WINDOW = 16  # reference/sample patch side, in pixels of the reduced image
_SAMPLE_STEP = 30  # stride of the sample patches, each one yields one soft mask
_ENERGY = 0.5  # keep the top colour components that hold more than half the variance
_FIT_STEP = 3  # pixel stride of the least-squares fit used by adjust_to_rgb
_EPS = float(np.finfo(np.float32).eps)
MEDIAN_BORDERS = ("replicate", "zero")

# Block-Krylov settings for the colour PCA; the exact eigendecomposition is the fallback.
_KRYLOV_BLOCK = 12
_KRYLOV_DEPTH = 8
_KRYLOV_TOL = 1e-4  # residual of the kept Ritz pairs, relative to the largest eigenvalue


def generalized_boundaries(
    frames: np.ndarray,
    use_median_filtering: bool = True,
    adjust_to_rgb: bool = True,
    max_channels: int = 3,
    internal_size: int = 300,
    median_border: str = "replicate",
) -> np.ndarray:
    """Soft segmentation layers of Leordeanu et al.'s Generalized Boundaries, per frame.

    frames: uint8 (B, H, W, 3) RGB. Returns float32 (B, H, W, C) in [0, 1], normalised jointly over all
    channels of each frame: C = 3 (an RGB-like rendering) when adjust_to_rgb, else
    C = min(max_channels, number of sample patches) principal soft-segmentation layers.
    internal_size is the longer side of the reduced image the segmentation is computed on. median_border is how
    the median filter sees past the border: "replicate" (the border pixels) or "zero" (the seed tool's zero padding).
    """
    frames = _check_frames(frames)
    if max_channels < 1:
        raise ValueError(f"max_channels must be >= 1, got {max_channels}")
    if median_border not in MEDIAN_BORDERS:
        raise ValueError(f"median_border must be one of {', '.join(MEDIAN_BORDERS)}, got {median_border!r}")
    if internal_size < 1:
        raise ValueError(f"internal_size must be >= 1, got {internal_size}")
    n, h, w, _ = frames.shape
    layout = _layout(h, w, internal_size)
    n_out = 3 if adjust_to_rgb else min(max_channels, layout.n_samples)
    out = np.empty((n, h, w, n_out), dtype=np.float32)
    for i in range(n):  # per frame: every statistic (normalisation, PCA) is per frame in the method
        _one_frame(frames[i], layout, use_median_filtering and median_border, adjust_to_rgb, max_channels, out[i])
    return out


def generalized_boundaries_preview(out: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) preview: the first three layers as RGB, or a grey image if there are fewer."""
    out = np.asarray(out)
    if out.ndim != 4:
        raise ValueError(f"expected (B, H, W, C) soft segmentation, got shape {out.shape}")
    rgb = out[..., :3] if out.shape[-1] >= 3 else np.repeat(out[..., :1], 3, axis=-1)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


class _Layout:
    """Geometry shared by all frames of one size: reduced grid, patch origins and fit samples."""

    def __init__(self, h: int, w: int, internal_size: int) -> None:
        scale = internal_size / max(h, w)
        self.ry, self.rx = int(np.floor(h * scale)), int(np.floor(w * scale))
        half = _WINDOW // 2
        if self.ry <= _WINDOW or self.rx <= _WINDOW:
            raise ValueError(
                f"a {h}x{w} frame reduces to {self.ry}x{self.rx} at internal_size={internal_size}; "
                f"both sides must exceed {_WINDOW} pixels, raise internal_size"
            )
        # nearest-neighbour reduction with the source index floor(i / scale), in float32 like torch's
        inv = np.float32(1.0 / scale)
        self.src_y = np.minimum(np.floor(np.arange(self.ry, dtype=np.float32) * inv).astype(np.intp), h - 1)
        self.src_x = np.minimum(np.floor(np.arange(self.rx, dtype=np.float32) * inv).astype(np.intp), w - 1)
        # reference patches: 16x16 windows centred every 8 px; sample patches: every 30 px
        self.ref = _window_index(
            self.ry, self.rx, np.arange(half, self.ry - half, half), np.arange(half, self.rx - half, half)
        )
        samples_y = np.arange(half, self.ry - half, _SAMPLE_STEP)
        samples_x = np.arange(half, self.rx - half, _SAMPLE_STEP)
        self.samples = _window_index(self.ry, self.rx, samples_y, samples_x)
        self.n_samples = self.samples.shape[0]
        fy = np.arange(0, self.ry - _FIT_STEP, _FIT_STEP)
        fx = np.arange(0, self.rx - _FIT_STEP, _FIT_STEP)
        self.fit = (fy[:, None] * self.rx + fx[None, :]).ravel()


@functools.lru_cache(maxsize=8)
def _layout(h: int, w: int, internal_size: int) -> _Layout:
    return _Layout(h, w, internal_size)


def _window_index(ry: int, rx: int, centres_y: np.ndarray, centres_x: np.ndarray) -> np.ndarray:
    """Flat pixel indices (n_windows, WINDOW**2) of the windows [c - 8, c + 8) around each centre."""
    half = _WINDOW // 2
    offs = np.arange(-half, half)
    rows = (centres_y[:, None] + offs[None, :])[:, None, :, None]
    cols = (centres_x[:, None] + offs[None, :])[None, :, None, :]
    return (rows * rx + cols).reshape(len(centres_y) * len(centres_x), _WINDOW * _WINDOW)


def _one_frame(
    frame: np.ndarray, lay: _Layout, median: str | bool, adjust_to_rgb: bool, max_channels: int, out: np.ndarray
) -> None:
    """Writes one frame's (H, W, C) result into out; ``median`` is False or the median filter's border."""
    h, w, _ = frame.shape
    # per-channel min-max of the full-resolution frame (what the method normalises with)
    lo = np.empty(3, np.float32)
    hi = np.empty(3, np.float32)
    for c, plane in enumerate(cv2.split(frame)):
        lo[c], hi[c] = cv2.minMaxLoc(plane)[:2]
    small = frame[lay.src_y][:, lay.src_x].astype(np.float32) / np.float32(255)
    rgb = (small - lo / 255) / ((hi - lo) / 255 + np.float32(_EPS))

    col = _colour_words(rgb).ravel()
    masks = _patch_soft_masks(col, lay)  # (n_samples, 1155): per colour word, P(belongs with sample patch)
    seg = _layers(masks, col, min(max_channels, lay.n_samples)).reshape(lay.ry, lay.rx, -1)

    if median:
        seg = _median3(seg, zero_border=median == "zero")
    if adjust_to_rgb:
        seg = _fit_to_rgb(seg, rgb.reshape(-1, 3), lay.fit)

    # bicubic back to full size straight into the output, then joint min-max over all channels
    dst = out.reshape(h, w) if out.shape[-1] == 1 else out
    big = cv2.resize(seg, (w, h), dst=dst, interpolation=cv2.INTER_CUBIC)
    if not np.shares_memory(big, out):  # OpenCV reallocates rather than fail on a layout it dislikes
        out[...] = big.reshape(out.shape)
    lo_all, hi_all = float(out.min()), float(out.max())
    out -= np.float32(lo_all)
    out *= np.float32(1.0 / (hi_all - lo_all + _EPS))


def _colour_words(rgb: np.ndarray) -> np.ndarray:
    """Quantised HSV colour index in [0, 1155) of each pixel, after per-channel min-max of H, S and V."""
    r, g, b = (np.ascontiguousarray(rgb[..., c]) for c in range(3))  # planar: fast elementwise passes
    mx = np.maximum(np.maximum(r, g), b)
    span = mx - np.minimum(np.minimum(r, g), b) + np.float32(1e-10)
    # hue sector chosen by the smallest channel, ties going to the first one (argmin's rule)
    r_min = (r <= g) & (r <= b)
    g_min = ~r_min & (g <= b)
    num = np.where(r_min, b - g, np.where(g_min, r - b, g - r))
    off = np.where(r_min, np.float32(180), np.where(g_min, np.float32(300), np.float32(60)))
    hue = (np.float32(60) * num / span + off) / np.float32(360)
    sat = span / (mx + np.float32(1e-10))
    words = np.zeros(rgb.shape[:-1], dtype=np.intp)
    for plane, levels, stride in ((hue, _DIM_H, 1), (sat, _DIM_S, _DIM_H), (mx, _DIM_V, _DIM_H * _DIM_S)):
        lo, hi = plane.min(), plane.max()
        unit = (plane - lo) / (hi - lo + np.float32(_EPS))
        # the +1 before rounding is the method's 1-based binning; it decides float32 ties, so keep it
        words += (np.rint(unit * np.float32(levels - 1) + np.float32(1)).astype(np.intp) - 1) * stride
    return words


def _presence(col: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(n_windows, 1155) float32 0/1: which colour words occur in each window."""
    pres = np.zeros((windows.shape[0], _N_COLOURS), dtype=np.float32)
    pres[np.arange(windows.shape[0])[:, None], col[windows]] = 1.0
    return pres


def _patch_soft_masks(col: np.ndarray, lay: _Layout) -> np.ndarray:
    """Per sample patch, the soft figure/ground likelihood of every colour word.

    PCA of the colour-occurrence vectors of the reference patches; each sample patch's occurrence vector is
    projected on the leading components (holding > 50% of the variance), and colour c gets
    max(m + d, 0) / (max(m - d, 0) + max(m + d, 0)), m the mean occurrence and d the projected deviation.
    """
    ref = _presence(col, lay.ref)
    used = np.flatnonzero(ref.any(axis=0))
    ref = ref[:, used]
    mean = ref.mean(axis=0, dtype=np.float64)
    basis = _leading_components(ref, mean)  # (n_used, k)
    sample = _presence(col, lay.samples)[:, used].astype(np.float64)
    dev = ((sample - mean) @ basis) @ basis.T
    c0 = np.maximum(mean - dev, 0.0)
    c1 = np.maximum(mean + dev, 0.0)
    masks = np.zeros((lay.n_samples, _N_COLOURS), dtype=np.float64)
    # colours absent from every reference patch have m = d = 0, hence likelihood 0
    masks[:, used] = c1 / (c0 + c1 + _EPS)
    return masks


def _leading_components(pres: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Orthonormal colour-space basis of the top principal components holding > _ENERGY of the variance."""
    n_p, n_u = pres.shape
    # 0/1 products are exact small integers in float32; centre afterwards in float64
    if n_u <= n_p:  # colour-space covariance
        gram = (pres.T @ pres).astype(np.float64) - n_p * np.outer(mean, mean)
    else:  # fewer patches than colours: patch-space Gram, same non-zero spectrum
        proj = pres @ mean
        gram = (pres @ pres.T).astype(np.float64) - proj[:, None] - proj[None, :] + mean @ mean
    total = float(np.trace(gram))
    if total <= 1e-9 * n_p:
        return np.zeros((n_u, 0))
    vals, vecs = _top_energy_eigs(gram, _ENERGY * total)
    if n_u <= n_p:
        return vecs
    return ((pres.T @ vecs) - np.outer(mean, vecs.sum(axis=0))) / np.sqrt(vals)


def _top_energy_eigs(gram: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Leading eigenpairs of a PSD matrix, as many as needed for their sum to exceed target."""
    found = _krylov_top_eigs(gram, target)
    if found is not None:
        return found
    vals, vecs = np.linalg.eigh(gram)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    k = int(np.argmax(np.cumsum(vals) > target)) + 1
    return vals[:k], vecs[:, :k]


def _krylov_top_eigs(gram: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Block-Krylov Rayleigh-Ritz estimate; None when the subspace is too small or not converged."""
    n = gram.shape[0]
    width = _KRYLOV_BLOCK * (_KRYLOV_DEPTH + 1)
    if width * 2 > n:
        return None
    # fixed start block: the result must not depend on a global random state
    block = np.random.default_rng(0).standard_normal((n, _KRYLOV_BLOCK))
    blocks = []
    for _ in range(_KRYLOV_DEPTH + 1):
        block, _r = np.linalg.qr(block)
        blocks.append(block)
        block = gram @ block
    basis, _r = np.linalg.qr(np.hstack(blocks))
    projected = basis.T @ (gram @ basis)
    theta, small = np.linalg.eigh((projected + projected.T) / 2)
    theta, small = theta[::-1], small[:, ::-1]
    csum = np.cumsum(theta)
    if csum[-1] <= target:
        return None
    k = int(np.argmax(csum > target)) + 1
    kept = min(k + 1, width)  # the (k+1)-th must be right too, or k itself could be wrong
    vecs = basis @ small[:, :kept]
    resid = np.linalg.norm(gram @ vecs - vecs * theta[:kept], axis=0)
    if resid.max() > _KRYLOV_TOL * theta[0]:
        return None
    return theta[:k], vecs[:, :k]


def _layers(masks: np.ndarray, col: np.ndarray, n_layers: int) -> np.ndarray:
    """PCA of the per-pixel soft masks, done on colour words: (n_pixels, n_layers) float32 projections."""
    counts = np.bincount(col, minlength=_N_COLOURS).astype(np.float64)
    present = np.flatnonzero(counts)
    vals = masks[:, present]  # each mask image is this table looked up at the pixel's colour word
    weights = counts[present]
    mean = vals @ weights / weights.sum()
    centred = vals - mean[:, None]
    gram = (centred * weights) @ centred.T  # == sum over pixels of the centred mask outer products
    _vals, eig_vecs = np.linalg.eigh(gram)
    top = eig_vecs[:, ::-1][:, :n_layers]
    # eigenvector signs are arbitrary: make each one's largest-magnitude entry positive
    pivot = np.abs(top).argmax(axis=0)
    top = top * np.where(top[pivot, np.arange(top.shape[1])] < 0, -1.0, 1.0)
    table = np.zeros((_N_COLOURS, n_layers), dtype=np.float32)
    table[present] = centred.T @ top
    return table[col]


def _median3(seg: np.ndarray, zero_border: bool = False) -> np.ndarray:
    """3x3 median per channel, borders replicated (or zero-padded with ``zero_border``).

    The seed tool zero-pads, which pulls the border pixels of every layer towards 0 (the layer mean) and sets
    the corners to it; replicating the border avoids that frame artefact and is otherwise the same filter. The
    seed's padding is kept for its configs: after the final joint min-max it moves values by up to 0.7.
    """
    if zero_border:
        padded = cv2.copyMakeBorder(np.ascontiguousarray(seg), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        return np.ascontiguousarray(cv2.medianBlur(padded, 3)[1:-1, 1:-1]).reshape(seg.shape)
    out = cv2.medianBlur(np.ascontiguousarray(seg), 3)
    return out.reshape(seg.shape)


def _fit_to_rgb(seg: np.ndarray, rgb: np.ndarray, fit_idx: np.ndarray) -> np.ndarray:
    """Least-squares affine map of the layers onto the (normalised) image colours, fitted on a 3-px grid."""
    ry, rx, k = seg.shape
    design = np.concatenate([seg.reshape(-1, k), np.ones((ry * rx, 1), np.float32)], axis=1)
    coef = np.linalg.lstsq(design[fit_idx].astype(np.float64), rgb[fit_idx].astype(np.float64), rcond=None)[0]
    return (design @ coef.astype(np.float32)).reshape(ry, rx, 3)
