"""Frames in: random, batched access to the decoded frames of a video or an image folder, and the footage vre ships."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "DecordSource": "vrecore.frames.video",
    "FrameSource": "vrecore.frames.video",
    "ImageFolderSource": "vrecore.frames.video",
    "PyAVSource": "vrecore.frames.video",
    "open_video": "vrecore.frames.video",
    "select_frames": "vrecore.frames.video",
    "ranges": "vrecore.frames.video",
    "cache_dir": "vrecore.frames.sample",
    "sample_clip": "vrecore.frames.sample",
    "make_sample_clip": "vrecore.frames.sample",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
