"""descriptor/sift on a real frame: keypoints found, drawn as the map, and moving with the image."""
from __future__ import annotations

import numpy as np

from vre_flow.sift import SIFT
from vre_flow.testing import moving_clip
from vrecore.graph.representation import Batch


def test_keypoints_are_drawn_as_dots(textured_frame):
    rep = SIFT(name="sift")
    points = rep.keypoints(textured_frame)
    out = rep.compute(Batch(indices=np.arange(1), frames=textured_frame[None], deps={}))
    assert out.shape == (1, *textured_frame.shape[:2], 1) and out.dtype == np.bool_
    assert len(points) > 300  # measured: 1540 on this frame
    x, y = np.rint(points).astype(int).T
    assert out[0, y, x, 0].all()
    assert len(points) <= out.sum() <= 5 * len(points)  # a radius-1 dot covers at most 5 pixels


def test_preview_shows_the_keypoints_at_tile_size(textured_frame):
    """The stored dots are 1-3 pixels wide: the preview draws a circle around each, large enough to be seen in a
    collage or report tile (a quarter of the frame's width), and nothing far from any keypoint."""
    import cv2

    rep = SIFT(name="sift")
    out = rep.compute(Batch(indices=np.arange(1), frames=textured_frame[None], deps={}))
    image = rep.make_images(out)[0]
    h, w = out.shape[1:3]
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
    tile = cv2.resize(image, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    luma = cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY)
    assert (luma > 40).mean() > 0.1, (luma > 40).mean()  # measured: 0.39 (1-pixel blue dots: 0)
    far = cv2.distanceTransform((~out[0, ..., 0]).astype(np.uint8), cv2.DIST_L2, 5) > max(h, w) / 20
    assert far.any() and image[far].max() == 0  # black away from every keypoint
    x, y = np.rint(rep.keypoints(textured_frame)).astype(int).T
    assert image[y, x].max(axis=-1).min() > 0  # each keypoint is marked where it is


def test_keypoints_follow_the_image(textured_frame):
    clip, _ = moving_clip(textured_frame, 2, shift=(4.0, 2.0))
    rep = SIFT(name="sift", max_keypoints=200)
    before, after = rep.keypoints(clip[0]), rep.keypoints(clip[1])
    assert len(before) == len(after) == 200
    moved = before + np.float32([4.0, 2.0])
    nearest = np.min(np.hypot(*(moved[:, None, :] - after[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert np.mean(nearest < 0.5) > 0.8, np.mean(nearest < 0.5)  # measured: 0.96


def test_process_scale_keeps_input_coordinates(textured_frame):
    points = SIFT(name="sift", process_scale=0.5).keypoints(textured_frame)
    h, w = textured_frame.shape[:2]
    assert len(points) > 50 and points[:, 0].max() > w * 0.8 and points[:, 1].max() > h * 0.8
    assert points[:, 0].max() < w and points[:, 1].max() < h
