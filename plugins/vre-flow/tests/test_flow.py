"""The flow convention shared by every type: colours, units, resizing, and the frames at the ends of a video."""
from __future__ import annotations

import numpy as np
import pytest

from vre_flow.colorwheel import COLOR_WHEEL, flow_to_color
from vre_flow.testing import neighbour_batch


def _uniform(x: float, y: float, shape: tuple[int, int] = (4, 6)) -> np.ndarray:
    return np.broadcast_to(np.array([x, y], np.float32), (1, *shape, 2)).copy()


def test_colour_wheel_directions_zero_and_undefined():
    right, left = flow_to_color(_uniform(3, 0))[0, 0, 0], flow_to_color(_uniform(-3, 0))[0, 0, 0]
    np.testing.assert_array_equal(right, [255, 0, 0])  # the wheel starts (and ends) at red
    np.testing.assert_array_equal(left, (COLOR_WHEEL[27] * 255 + 0.5).astype(np.uint8))
    assert left[2] == 255 and left[0] == 0, "flow to the left is cyan-blue"
    np.testing.assert_array_equal(flow_to_color(_uniform(0, 0))[0, 0, 0], [255, 255, 255])
    nan = _uniform(1, 1)
    nan[0, 0, 0] = np.nan
    colours = flow_to_color(nan)
    np.testing.assert_array_equal(colours[0, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(colours[0, 1, 1], flow_to_color(_uniform(1, 1))[0, 1, 1])


def test_colour_saturation_follows_speed_relative_to_the_fastest_pixel():
    flow = _uniform(4, 0)
    flow[0, 0, 0] = (2, 0)
    colours = flow_to_color(flow)
    np.testing.assert_array_equal(colours[0, 0, 1], [255, 0, 0])
    np.testing.assert_array_equal(colours[0, 0, 0], [255, 128, 128])  # half the largest speed: half saturated
    beyond = flow_to_color(_uniform(8, 0), max_radius=4.0)[0, 0, 0]
    np.testing.assert_array_equal(beyond, [191, 0, 0])  # beyond max_radius: darkened by 0.75


def _reference_colours(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """The colour wheel written plainly, per pixel formula in float64 (what the fast version must match)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    finite = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(finite, u, 0), np.where(finite, v, 0)
    radius = np.hypot(u, v)
    scale = radius.reshape(len(flow), -1).max(axis=1) if max_radius is None else np.full(len(flow), max_radius)
    radius = radius / np.where(scale > 0, scale, 1)[:, None, None]
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (len(COLOR_WHEEL) - 1)
    k0 = np.floor(position).astype(int)
    frac = (position - k0)[..., None]
    colour = (1 - frac) * COLOR_WHEEL[k0 % len(COLOR_WHEEL)] + frac * COLOR_WHEEL[(k0 + 1) % len(COLOR_WHEEL)]
    r = radius[..., None]
    colour = np.where(finite[..., None], np.where(r <= 1, 1 - r * (1 - colour), colour * 0.75), 0)
    return (np.clip(colour, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("max_radius", [None, 2.5])
def test_colours_match_the_plain_formula(max_radius: float | None) -> None:
    rng = np.random.default_rng(3)
    flow = rng.normal(0, 2, (3, 40, 50, 2)).astype(np.float32)
    flow[1, :4, :4] = np.nan
    flow[2, 5:9, 5:9] = 0
    got, want = flow_to_color(flow, max_radius), _reference_colours(flow, max_radius)
    assert got.shape == (3, 40, 50, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float32 instead of float64: rounding, rarely


def test_resizing_scales_pixels_but_not_relative_units():
    from vre_flow.classical import DISFlow

    flow = _uniform(2, -1, (10, 20))
    np.testing.assert_allclose(DISFlow(name="f").resize(flow, (5, 40))[0, 2, 3], [4, -0.5])
    relative = DISFlow(name="f", units="relative")
    np.testing.assert_allclose(relative.resize(flow, (5, 40))[0, 2, 3], [2, -1])


@pytest.mark.parametrize(("units", "expected"), [("pixels", (6.0, -3.0)), ("relative", (6 / 32, -3 / 24)),
                                                 ("seed", (6 / 24, -3 / 32))])
def test_units(units, expected):
    from vre_flow.classical import DISFlow

    rep = DISFlow(name="f", units=units)
    out = rep._from_pixels(_uniform(6, -3, (24, 32)))
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(rep._to_pixels(out), _uniform(6, -3, (24, 32)), rtol=1e-6)


def test_a_video_shorter_than_delta_has_no_flow():
    from vre_flow.classical import DISFlow

    clip = np.random.default_rng(0).integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
    rep = DISFlow(name="f", delta=3)
    out = rep.compute(neighbour_batch(rep.frame_offsets(), clip, np.arange(3)))
    assert out.shape == (3, 24, 32, 2) and np.isnan(out).all()
    assert rep.make_images(out).max() == 0, "undefined flow is black"


def test_parameters_are_checked():
    from vre_flow.classical import DISFlow

    for bad in ({"delta": 0}, {"delta": True}, {"at_end": "clamp"}, {"units": "metres"}, {"preset": "slow"}):
        with pytest.raises((ValueError, TypeError)):
            DISFlow(name="f", **bad)
