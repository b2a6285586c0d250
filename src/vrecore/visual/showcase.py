"""All the pictures of an export at once: collages, the preview video and the report (how `vre demo` ends).

Each collage is drawn once: its JPEG is written by the drawing thread and the same picture goes
into the video.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from vrecore.visual.collage import CollageMaker, CollageResult, collage_folder, map_in_order, save_jpeg
from vrecore.visual.preview_video import VIDEO_FILE, VideoResult, VideoWriter, frame_rate
from vrecore.visual.report import write_report
from vrecore.visual.stored import ExportView

__all__ = ["Pictures", "write_pictures"]


@attrs.frozen
class Pictures:
    """Where `write_pictures` put everything."""

    collages: CollageResult
    video: VideoResult
    report: Path


def write_pictures(output_dir: str | os.PathLike[str], *, workers: int | None = None,
                   warn: Callable[[str], None] | None = None) -> Pictures:
    """Collages of every stored frame (``.collage/``), ``preview.mp4`` of them, and ``report.html``, in ``output_dir``."""
    view = ExportView(output_dir, warn=warn)
    maker = CollageMaker(view)
    frames = maker.frames()
    folder = collage_folder(view, None)
    writer = VideoWriter(view.root / VIDEO_FILE, (maker.layout.width, maker.layout.height), frame_rate(view, None))

    def draw(frame: int) -> np.ndarray:
        image = maker.render(frame)
        save_jpeg(folder / f"{frame}.jpg", image)
        return image

    try:
        for _, image in map_in_order(draw, frames, workers):
            writer.add(image)
        writer.close()
    finally:
        writer.discard()
    report = write_report(view)
    return Pictures(CollageResult(folder, tuple(frames), maker.layout), writer.result(), report)
