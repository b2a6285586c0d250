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
