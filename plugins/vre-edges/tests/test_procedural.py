"""edges/canny and the soft segmentations: what they compute, their parameters, their disk forms and previews."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from vre_edges._generalized_boundaries import generalized_boundaries, generalized_boundaries_preview
from vre_edges._halftone import halftone, halftone_preview
from vre_edges.canny import Canny
from vre_edges.soft_segmentation import GeneralizedBoundaries, Halftone
from vrecore.errors import GraphError
from vrecore.graph.build import build_graph
from vrecore.graph.representation import Batch


def _frames(n: int = 2, h: int = 90, w: int = 160) -> np.ndarray:
    """Shapes and gradients with a little noise: edges of every orientation and contrast."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    out = []
    for i in range(n):
        img = np.stack([96 + 80 * np.sin(xx / (15 + 4 * i)), 128 + 60 * np.cos(yy / 11), 60 + xx / 3], -1)
        cv2.circle(img, (w // 3, h // 2), h // 4 + 3 * i, (250, 30, 40), -1)
        cv2.rectangle(img, (w // 2, h // 5), (w - 10, h // 2 + 5 * i), (20, 40, 200), -1)
        img += rng.normal(0, 4, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _batch(frames: np.ndarray) -> Batch:
    return Batch(indices=np.arange(len(frames)), frames=None, deps={"rgb": frames})


@pytest.mark.parametrize("params", [{}, {"threshold1": 30, "threshold2": 90, "aperture_size": 5},
                                    {"threshold1": 300, "threshold2": 100, "aperture_size": 7, "l2_gradient": True}])
def test_canny_is_opencv_canny_of_the_grey_frame(params: dict[str, Any]) -> None:
    frames = _frames()
    rep = Canny(name="canny", **params)
    out = rep.compute(_batch(frames))
    assert out.shape == (2, 90, 160, 1) and out.dtype == np.bool_
    for frame, edges in zip(frames, out, strict=True):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        expected = cv2.Canny(grey, rep.threshold1, rep.threshold2, apertureSize=rep.aperture_size,
                             L2gradient=rep.l2_gradient)
        np.testing.assert_array_equal(edges[..., 0], expected == 255)
    assert out.any() and not out.all()
    disk = rep.to_disk(out)
    assert disk.dtype == np.bool_ and disk.shape == (2, 90, 160)
    preview = rep.make_images(out)
    assert set(np.unique(preview)) == {0, 255} and (preview[..., 0] == preview[..., 2]).all()  # grey


def test_canny_on_colour_is_opencv_canny_of_the_rgb_frame_as_the_seed_runs_it() -> None:
    frames = _frames()
    out = Canny(name="canny", color=True).compute(_batch(frames))
    for frame, edges in zip(frames, out, strict=True):
        np.testing.assert_array_equal(edges[..., 0], cv2.Canny(frame, 100.0, 200.0) == 255)
    # Red beside green of the same grey level: no edge in grey, an edge in colour.
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[:, :20] = (200, 0, 0)
    frame[:, 20:] = (0, 102, 0)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    assert abs(int(grey[0, 0]) - int(grey[0, 39])) <= 1
    assert not Canny(name="c").compute(_batch(frame[None])).any()
    colour = Canny(name="c", color=True).compute(_batch(frame[None]))[0, ..., 0]
    assert colour[:, 19].all() and colour.sum() == 40  # one line of edge pixels, along the border


def test_float_rgb_dependency_is_read_as_unit_range() -> None:
    frames = _frames(1)
    as_float = frames.astype(np.float32) / 255
    for rep in (Canny(name="c"), Halftone(name="h"), GeneralizedBoundaries(name="g")):
        np.testing.assert_array_equal(rep.compute(_batch(as_float)), rep.compute(_batch(frames)))


def test_soft_segmentations_wrap_their_kernels() -> None:
    frames = _frames()
    params = {"sample": 4, "scale": 2, "percentage": 50, "angles": [10, 20, 30, 40], "antialias": True,
              "include_k": True}
    rep = Halftone(name="halftone", **params)
    out = rep.compute(_batch(frames))
    np.testing.assert_array_equal(out, halftone(frames, **params))
    assert out.shape == (2, 180, 320, 4) and rep.output_spec().channels == 4
    np.testing.assert_array_equal(rep.make_images(out), halftone_preview(out))

    gb = GeneralizedBoundaries(name="gb", use_median_filtering=False, internal_size=120)
    out = gb.compute(_batch(frames))
    np.testing.assert_array_equal(out, generalized_boundaries(frames, use_median_filtering=False, internal_size=120))
    np.testing.assert_array_equal(gb.make_images(out), generalized_boundaries_preview(out))
    for r, o in ((rep, rep.resize(rep.compute(_batch(frames)), (90, 160))), (gb, out)):
        disk = r.to_disk(o)
        assert disk.dtype == np.float16 and disk.shape == (2, 90, 160, r.output_spec().channels)
        back = r.from_disk(disk)
        assert back.dtype == np.float32 and np.abs(back - o).max() <= 2 ** -11  # float16 keeps [0, 1] to 5e-4


def test_halftone_preview_without_k_says_so_on_the_picture() -> None:
    """The seed's 3 planes (C, M, Y) leave out the black ink that grey component replacement moved to K, so dark
    areas print light: the preview says so in a strip along its bottom; with include_k it is the plain print."""
    dark = np.full((1, 180, 320, 3), 40, np.uint8)
    with_k = Halftone(name="h", include_k=True)
    out = with_k.compute(_batch(dark))
    assert with_k.make_images(out).mean() < 100  # dark grey prints dark: mostly black ink
    without_k = Halftone(name="h")
    out = without_k.compute(_batch(dark))
    image, plain = without_k.make_images(out)[0], halftone_preview(out)[0]
    assert plain.mean() > 200  # what the stored planes print: near-white
    differs = np.nonzero((image != plain).any(axis=(1, 2)))[0]
    assert differs.min() > 180 * 3 // 4 and differs.max() == 179  # a strip at the bottom, the rest unchanged
    strip = cv2.cvtColor(image[differs.min():], cv2.COLOR_RGB2GRAY)
    assert (strip < 60).mean() > 0.5 and (strip > 180).mean() > 0.03  # light text on a dark strip


def test_generalized_boundaries_layers_keep_the_declared_channel_count() -> None:
    # A 90x160 frame reduced to 36x64 has 2 x 2 sample patches, so only 4 layers exist: the 5th is zeros.
    rep = GeneralizedBoundaries(name="gb", adjust_to_rgb=False, max_channels=5, internal_size=64)
    out = rep.compute(_batch(_frames()))
    assert out.shape == (2, 90, 160, 5) and rep.output_spec().channels == 5
    assert (out[..., 4] == 0).all() and out[..., :4].std() > 0.05
    assert rep.make_images(out).shape == (2, 90, 160, 3)


@pytest.mark.parametrize(("type_name", "params", "message"), [
    ("edges/canny", {"aperture_size": 4}, "aperture_size"),
    ("edges/canny", {"threshold1": -1}, "threshold1"),
    ("edges/canny", {"l2_gradient": "yes"}, "l2_gradient"),
    ("edges/canny", {"color": 1}, "color"),
    ("soft-segmentation/halftone", {"percentage": 101}, "percentage"),
    ("soft-segmentation/halftone", {"angles": [0, 15, 30]}, "angles"),
    ("soft-segmentation/halftone", {"sample": 0}, "sample"),
    ("soft-segmentation/halftone", {"resolution": [0, 10]}, "resolution|height and width"),
    ("soft-segmentation/generalized-boundaries", {"max_channels": 0}, "max_channels"),
    ("soft-segmentation/generalized-boundaries", {"internal_size": 16}, "internal_size"),
    ("edges/hed", {"variant": "imagenet"}, "variant"),
    ("edges/hed", {"input_size": [64]}, "height, width"),
    ("edges/dexined", {"mode": "max"}, "mode"),
])
def test_invalid_parameters_are_config_errors(type_name: str, params: dict[str, Any], message: str) -> None:
    reads_frames = type_name in ("edges/hed", "edges/dexined")
    config = {"representations": {"rgb": {"type": "color/rgb"},
                                  "x": {"type": type_name, "parameters": params,
                                        "dependencies": [] if reads_frames else ["rgb"]}}}
    with pytest.raises(GraphError, match=message):
        build_graph(config)
