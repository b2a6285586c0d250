"""Defining properties of the procedural soft segmentations: halftone screens and generalized boundaries."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vre_edges._generalized_boundaries import generalized_boundaries, generalized_boundaries_preview
from vre_edges._halftone import halftone, halftone_preview


def _flat(value, h: int = 96, w: int = 128, n: int = 1) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.uint8), (n, h, w, 3)).copy()


def _natural_like(n: int = 3, h: int = 120, w: int = 200, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with a few shapes and noise: many colour words, like a real frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        img = np.stack([
            128 + 100 * np.sin(xx / (17 + 3 * i) + i),
            128 + 100 * np.cos(yy / (13 + i) - xx / 41),
            128 + 90 * np.sin((xx + yy) / (29 - i)),
        ], axis=-1)
        img[h // 4 : h // 2, w // 5 : w // 2] = (230 - 40 * i, 40, 60)
        cv2.circle(img, (3 * w // 4, h // 2), h // 5, (30, 200 - 30 * i, 90), -1)
        img += rng.normal(0, 6, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


# ---------------------------------------------------------------------------------------------- halftone


def test_halftone_shape_dtype_and_binary_range():
    frames = _natural_like(2)
    out = halftone(frames)
    assert out.shape == (2, 120, 200, 3) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert halftone(frames, include_k=True).shape == (2, 120, 200, 4)
    assert halftone(frames, scale=2).shape == (2, 240, 400, 3)
    assert halftone(frames, resolution=(60, 100)).shape == (2, 60, 100, 3)
    smooth = halftone(frames, antialias=True)
    assert smooth.min() >= 0.0 and smooth.max() <= 1.0
    assert ((smooth > 0) & (smooth < 1)).any(), "antialiased dots must have partially covered edge pixels"


def test_halftone_white_paper_has_no_dots():
    out = halftone(_flat(255), include_k=True)
    assert not out.any()
    assert (halftone_preview(out) == 255).all()


def test_halftone_flat_grey_is_a_regular_dot_lattice():
    s = 8
    plane = halftone(_flat(150), sample=s, percentage=0)[0, ..., 0]  # cyan screen: angle 0
    inner = plane[s : -2 * s, s : -2 * s]
    assert inner.any() and not inner.all()
    # periodic with the cell size along both axes
    np.testing.assert_array_equal(plane[s : -2 * s, s : -2 * s], plane[2 * s : -s, s : -2 * s])
    np.testing.assert_array_equal(plane[s : -2 * s, s : -2 * s], plane[s : -2 * s, 2 * s : -s])
    # one dot per cell, centred: each cell is mirror symmetric, and has ink at its centre but not its corners
    cell = plane[2 * s : 3 * s, 2 * s : 3 * s]
    np.testing.assert_array_equal(cell, cell[::-1])
    np.testing.assert_array_equal(cell, cell[:, ::-1])
    assert cell[s // 2, s // 2] == 1 and cell[0, 0] == 0


@pytest.mark.parametrize("angle", [15, 30, 45])
def test_halftone_screen_is_rotated_by_its_angle(angle):
    s = 16
    plane = halftone(_flat(60, 320, 320), sample=s, percentage=0, angles=(angle, 0, 0, 0))[0, ..., 0]
    n, _, stats, centres = cv2.connectedComponentsWithStats(plane.astype(np.uint8))
    keep = (stats[1:, cv2.CC_STAT_AREA] > 0.5 * stats[1:, cv2.CC_STAT_AREA].max())
    pts = centres[1:][keep]
    pts = pts[(np.abs(pts - 160) < 100).all(axis=1)]  # away from the clipped border dots
    d = pts[:, None, :] - pts[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    np.fill_diagonal(dist, np.inf)
    nearest = d[np.arange(len(pts)), dist.argmin(axis=1)]
    assert np.allclose(np.hypot(nearest[:, 0], nearest[:, 1]), s, atol=1.0), "dot pitch must be `sample`"
    orient = np.degrees(np.arctan2(nearest[:, 1], nearest[:, 0])) % 90  # x right, y down
    err = np.minimum(np.abs(orient - angle), 90 - np.abs(orient - angle))
    assert np.median(err) < 2.0


def test_halftone_dot_coverage_grows_with_darkness():
    s = 12
    levels = [255, 230, 200, 170, 140, 110, 80, 50, 20, 0]
    hard = [halftone(_flat(g, 144, 144), sample=s, percentage=0)[0, s:-s, s:-s, 0].mean() for g in levels]
    soft = [halftone(_flat(g, 144, 144), sample=s, percentage=0, antialias=True)[0, s:-s, s:-s, 0].mean()
            for g in levels]
    assert hard[0] == 0 and soft[0] == 0
    assert np.all(np.diff(hard) >= 0) and hard[-1] > hard[1] + 0.5
    assert np.all(np.diff(soft) > 0)
    # dot area follows the ink: coverage = pi/4 * ink for a disc of diameter sqrt(ink) * sample
    expected = [math.pi / 4 * (255 - g) / 255 for g in levels]
    np.testing.assert_allclose(soft, expected, atol=0.02)
    np.testing.assert_allclose(hard, expected, atol=0.06)  # pixel-centre raster of small discs


def test_halftone_inks_follow_the_colour():
    red = halftone(_flat((255, 0, 0)), percentage=0, include_k=True)[0]
    assert not red[..., 0].any() and red[..., 1].any() and red[..., 2].any() and not red[..., 3].any()
    cyan = halftone(_flat((0, 255, 255)), percentage=0)[0]
    assert cyan[..., 0].any() and not cyan[..., 1:].any()


def test_halftone_gray_component_replacement_moves_ink_to_black():
    grey = _flat(90, 120, 120)
    coverage = []
    for pct in (0, 50, 100):
        out = halftone(grey, sample=10, percentage=pct, antialias=True, include_k=True)[0, 10:-10, 10:-10]
        coverage.append(out.mean(axis=(0, 1)))
    cmy = [c[:3].mean() for c in coverage]
    k = [c[3] for c in coverage]
    assert cmy[0] > cmy[1] > cmy[2] == 0
    assert k[0] == 0 < k[1] < k[2]


def test_halftone_batch_composition_does_not_matter():
    frames = _natural_like(3)
    batched = halftone(frames, antialias=True)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], halftone(frames[i : i + 1], antialias=True)[0])


def test_halftone_preview_prints_inks_on_paper():
    out = halftone(_natural_like(2), include_k=True)
    prev = halftone_preview(out)
    assert prev.shape == (2, 120, 200, 3) and prev.dtype == np.uint8
    ink_free = ~out.any(axis=-1)
    assert (prev[ink_free] == 255).all()


def test_halftone_rejects_bad_arguments():
    with pytest.raises(ValueError):
        halftone(_flat(0).astype(np.float32))
    with pytest.raises(ValueError):
        halftone(_flat(0), angles=(0, 15, 30))
    with pytest.raises(ValueError):
        halftone(_flat(0), percentage=120)
    with pytest.raises(ValueError):
        halftone(_flat(0), sample=0)


# ---------------------------------------------------------------------------------- generalized boundaries


def _two_regions(h: int = 120, w: int = 200, edge: int = 90) -> np.ndarray:
    img = _flat((200, 60, 40), h, w)
    img[:, :, edge:] = (40, 90, 210)
    return img


def test_gb_shape_dtype_range():
    frames = _natural_like(2)
    out = generalized_boundaries(frames)
    assert out.shape == (2, 120, 200, 3) and out.dtype == np.float32
    for o in out:  # normalised jointly over the channels of each frame
        assert o.min() == 0.0 and abs(float(o.max()) - 1.0) < 1e-6
    raw = generalized_boundaries(frames, use_median_filtering=False, adjust_to_rgb=False, max_channels=5)
    assert raw.shape == (2, 120, 200, 5)
    assert raw.min() >= 0.0 and raw.max() <= 1.0


def test_gb_channel_count_is_capped_by_the_sample_patches():
    frames = _natural_like(1, 120, 200)  # reduced to 180x300: 6 x 10 sample patches
    assert generalized_boundaries(frames, adjust_to_rgb=False, max_channels=200).shape[-1] == 60


def test_gb_flat_image_has_no_boundary():
    for value in (0, 128, (10, 200, 90)):
        out = generalized_boundaries(_flat(value))
        assert np.abs(out).max() < 1e-6


def test_gb_step_edge_response_is_concentrated_on_the_edge():
    edge = 90
    for kwargs in ({}, {"adjust_to_rgb": False, "max_channels": 3}, {"use_median_filtering": False}):
        out = generalized_boundaries(_two_regions(edge=edge), **kwargs)[0]
        gy, gx = np.gradient(out, axis=(0, 1))
        strength = np.sqrt((gx**2 + gy**2).sum(axis=-1))
        near = np.zeros(strength.shape, dtype=bool)
        near[:, edge - 8 : edge + 8] = True
        assert strength[near].sum() > 0.97 * strength.sum(), kwargs
        assert strength[:, edge - 4 : edge + 4].max(axis=1).min() > 0.1, kwargs  # all along the edge
        assert strength[~near].max() < 0.02, kwargs
        # each side is one flat segment, and the sides differ
        left, right = out[:, : edge - 8], out[:, edge + 8 :]
        assert left.std(axis=(0, 1)).max() < 0.01 and right.std(axis=(0, 1)).max() < 0.01, kwargs
        assert np.abs(left.mean(axis=(0, 1)) - right.mean(axis=(0, 1))).max() > 0.5, kwargs


def test_gb_rgb_adjustment_keeps_the_colour_order():
    out = generalized_boundaries(_two_regions())[0]
    left, right = out[:, :80].mean(axis=(0, 1)), out[:, 100:].mean(axis=(0, 1))
    assert left[0] > right[0] and left[2] < right[2]  # red on the left, blue on the right


def test_gb_regions_of_one_colour_share_a_segment():
    """Soft segmentation groups by colour co-occurrence: two separate patches of the same colour match."""
    img = _flat((30, 160, 60), 150, 240)
    img[:, :, 60:120] = (220, 200, 40)
    img[:, :, 180:] = (220, 200, 40)
    out = generalized_boundaries(img, adjust_to_rgb=False, max_channels=2, use_median_filtering=False)[0]
    a, b, c = out[:, 10:50].mean(axis=(0, 1)), out[:, 70:110].mean(axis=(0, 1)), out[:, 190:230].mean(axis=(0, 1))
    assert np.abs(b - c).max() < 0.02
    assert np.abs(a - b).max() > 0.3


def test_gb_is_invariant_to_per_channel_contrast():
    frames = _two_regions()
    frames[:, 30:60, 20:50] = (90, 200, 120)
    stretched = (frames.astype(np.int32) // 2 + np.array([40, 10, 70])).astype(np.uint8)
    np.testing.assert_allclose(generalized_boundaries(stretched), generalized_boundaries(frames), atol=1e-4)


def test_gb_batch_composition_does_not_matter():
    frames = np.concatenate([_natural_like(3), _two_regions(), _flat(77, 120, 200)])
    for kwargs in ({}, {"adjust_to_rgb": False, "max_channels": 4}):
        batched = generalized_boundaries(frames, **kwargs)
        for i in range(len(frames)):
            np.testing.assert_array_equal(batched[i], generalized_boundaries(frames[i : i + 1], **kwargs)[0])
        reordered = generalized_boundaries(frames[::-1], **kwargs)[::-1]
        np.testing.assert_array_equal(reordered, batched)


def test_gb_preview():
    out = generalized_boundaries(_natural_like(2))
    prev = generalized_boundaries_preview(out)
    assert prev.shape == (2, 120, 200, 3) and prev.dtype == np.uint8
    grey = generalized_boundaries_preview(out[..., :1])
    assert (grey[..., 0] == grey[..., 2]).all()


def test_gb_rejects_bad_input():
    with pytest.raises(ValueError):
        generalized_boundaries(_flat(0)[..., :2])
    with pytest.raises(ValueError):
        generalized_boundaries(_flat(0, 8, 8), internal_size=10)
    with pytest.raises(ValueError):
        generalized_boundaries(_flat(0), max_channels=0)


def test_the_seed_renderer_draws_at_the_native_size_and_follows_the_ink():
    from vre_edges.soft_segmentation import Halftone
    from vrecore.plugin import Batch

    rep = Halftone(name="h", renderer="seed", resolution=(40, 60), scale=2, percentage=0)
    frames = np.concatenate([_flat(0, 80, 120), _flat(128, 80, 120), _flat(255, 80, 120)])
    out = rep.compute(Batch(indices=np.arange(3), frames=None, deps={"rgb": frames}))
    assert out.shape == (3, *rep.native_size((80, 120)), 3) == (3, 80, 120, 3) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    ink = out.reshape(3, -1).mean(axis=1)
    assert ink[0] > ink[1] > 0.3 and ink[2] == 0  # black inks most, grey less, white none
    with_gcr = Halftone(name="h", renderer="seed", resolution=(40, 60), scale=2).compute(
        Batch(indices=np.arange(1), frames=None, deps={"rgb": frames[:1]}))
    assert with_gcr.mean() < ink[0] / 2  # 91% of black's grey goes to K, which is not stored
    with pytest.raises(ValueError, match="renderer"):
        Halftone(name="h", renderer="pil")
