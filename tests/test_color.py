"""Built-in colour types: HSV matches the usual formula; protocol defaults round-trip."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from vrecore._builtin.color import HSV, RGB
from vrecore.graph.representation import Batch


def hsv_of(rgb: np.ndarray) -> np.ndarray:
    return HSV(name="hsv").compute(Batch(indices=np.arange(len(rgb)), frames=None, deps={"rgb": rgb}))


def test_known_value():
    out = hsv_of(np.array([[[[172, 47, 117]]]], np.uint8))
    np.testing.assert_allclose(out[0, 0, 0], [0.9067, 0.7267, 0.6745], atol=2e-3)


def test_matches_colorsys_on_random_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    rgb[0, 0, :4] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0]]  # greys and pure red
    out = hsv_of(rgb)
    expected = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in rgb.reshape(-1, 3)]).reshape(out.shape)
    diff = np.abs(out - expected)
    diff[..., 0] = np.minimum(diff[..., 0], 1 - diff[..., 0])  # hue is circular
    assert out.dtype == np.float32 and diff.max() < 2e-3


def test_rgb_and_hsv_disk_round_trip():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    r = RGB(name="rgb")
    out = r.compute(Batch(indices=np.arange(3), frames=rgb, deps={}))
    np.testing.assert_array_equal(r.from_disk(r.to_disk(out)), rgb)
    h = HSV(name="hsv")
    x = hsv_of(rgb)
    np.testing.assert_array_equal(h.from_disk(h.to_disk(x)), x)
    img = h.make_images(x)
    assert img.dtype == np.uint8 and img.shape == (3, 5, 7, 3)


def test_batched_equals_unbatched():
    rgb = np.random.default_rng(2).integers(0, 256, (4, 9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(hsv_of(rgb), np.concatenate([hsv_of(rgb[i:i + 1]) for i in range(4)]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int64])
def test_unit_to_uint8_gives_the_values_of_the_plain_formula(dtype) -> None:
    from vrecore.graph.representation import unit_to_uint8

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-0.5, 1.5, 4000), np.arange(256) / 255, (np.arange(255) + 0.5) / 255,
                        [0.0, 1.0, -np.inf, np.inf]])
    x = x.astype(dtype) if np.issubdtype(dtype, np.floating) else rng.integers(-3, 4, 500).astype(dtype)
    got = unit_to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == x.shape
    assert np.array_equal(got, (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
