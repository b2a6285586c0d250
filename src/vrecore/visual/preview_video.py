"""The preview video: an MP4 of the collages over time, at the source video's frame rate.

Collages are drawn in memory by the same `CollageMaker` as the collages (a few frames ahead, on a
pool of threads) and encoded with PyAV: H.264 (libx264) when the installed FFmpeg has it, else the
first encoder available of OpenH264 and MPEG-4 part 2.
"""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import attrs
import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.store.safe_paths import SymlinkRefused, create_new, directory, lstat, replace
from vrecore.visual.collage import CollageMaker, map_in_order, progress_bar, select
from vrecore.visual.stored import ExportView
from vrecore.visual.tiles import BACKGROUND

__all__ = ["ENCODERS", "VIDEO_FILE", "VideoResult", "VideoWriter", "choose_encoder", "frame_rate",
           "write_preview_video"]

VIDEO_FILE = "preview.mp4"
DEFAULT_MAX_WIDTH = 1920
"""Preview videos are at most this wide (a size every player decodes smoothly)."""
ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")
"""Encoders tried in this order; the first that the installed FFmpeg has is used."""
DEFAULT_FPS = 25.0


@attrs.frozen
class VideoResult:
    """What `write_preview_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    codec: str


def choose_encoder() -> str:
    """The first encoder of `ENCODERS` that this PyAV's FFmpeg has."""
    import av

    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different errors for an unknown codec across versions
            continue
        return name
    raise ConfigError(f"the installed PyAV (FFmpeg) has none of the video encoders {', '.join(ENCODERS)}; "
                      f"install a PyAV wheel from PyPI (pip install --force-reinstall av), which includes libx264")


class VideoWriter:
    """An MP4 being written from uint8 RGB pictures of one size (padded to even sizes); it appears under its final
    name only when `close` succeeds."""

    def __init__(self, path: Path, size: tuple[int, int], rate: Fraction, *, crf: int = 23) -> None:
        import av

        if path.suffix.lower() != ".mp4":
            raise ConfigError(f"--output {path}: the preview is an MP4 file; give a name ending in .mp4")
        if not path.parent.is_dir():
            raise ConfigError(f"--output {path}: the folder {path.parent} does not exist; create it or choose another")
        self.path, self.rate, self.frames = path, rate, 0
        self.codec = choose_encoder()
        self.image_size = size
        self.width, self.height = size[0] + size[0] % 2, size[1] + size[1] % 2  # 4:2:0 video needs even sizes
        self._tmp = f".{path.name}.tmp-{os.getpid()}"
        self._av = av
        try:
            with directory(path.parent) as fd:
                existing = lstat(fd, path.name)
                if existing is not None and stat.S_ISLNK(existing.st_mode):
                    raise SymlinkRefused(path)
                self._file = create_new(fd, self._tmp, path.with_name(self._tmp))  # never through a link
            self._container: Any = av.open(self._file, mode="w", format="mp4")
        except OSError as e:
            self.discard()
            from vrecore.store.files import describe_os_error

            raise StorageError(describe_os_error(e, f"preview video '{path}'")) from e
        self._stream: Any = cast(Any, self._container.add_stream(self.codec, rate=rate))  # PyAV types it as a union
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        if self.codec in ("libx264", "h264"):
            self._stream.options = {"crf": str(crf), "preset": "superfast"}  # ~1.6x faster than veryfast, files ~25% larger
        self._canvas = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)

    def add(self, image: np.ndarray) -> None:
        """Append one picture of the writer's size."""
        h, w = image.shape[:2]
        if (w, h) != self.image_size:
            raise ConfigError(f"a {w}x{h} picture cannot go into a {self.image_size[0]}x{self.image_size[1]} video")
        self._canvas[:h, :w] = image
        for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(self._canvas, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._file.close()
            with directory(self.path.parent) as fd:
                replace(fd, self._tmp, self.path.name, self.path)
        except OSError as e:
            from vrecore.store.files import describe_os_error

            raise StorageError(describe_os_error(e, f"preview video '{self.path}'")) from e
        finally:
            self.discard()

    def discard(self) -> None:
        """Give up: close and delete the unfinished file (nothing happens after `close`)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - already closed, not opened, or the encoder failed: the file goes either way
            pass
        if hasattr(self, "_file"):
            self._file.close()
        with contextlib.suppress(OSError), directory(self.path.parent) as fd:
            os.unlink(self._tmp, dir_fd=fd)

    def result(self) -> VideoResult:
        return VideoResult(self.path, self.frames, self.width, self.height, self.rate, self.codec)


def frame_rate(view: ExportView, fps: float | None) -> Fraction:
    """``fps``, else the source video's frame rate (25 with a warning when none is recorded), as a fraction."""
    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps {fps}: give a positive frame rate")
    if fps is None:
        fps = view.fps
        if fps is None:
            view.warn(f"no frame rate is recorded in {view.location}; the preview plays at {DEFAULT_FPS:g} frames/s "
                      f"(--fps sets another)")
            fps = DEFAULT_FPS
    return Fraction(fps).limit_denominator(1001)


def write_preview_video(export: str | os.PathLike[str] | ExportView, output: str | os.PathLike[str] | None = None, *,
                        fps: float | None = None, frames: Any = None, representations: Sequence[str] | None = None,
                        rows: int | None = None, cols: int | None = None, max_width: int | None = DEFAULT_MAX_WIDTH,
                        workers: int | None = None, crf: int = 23, progress: bool = False,
                        warn: Callable[[str], None] | None = None) -> VideoResult:
    """Write the collages of the selected stored frames as an MP4 (default ``<export>/preview.mp4``); with one
    name in ``representations``, a video of that representation alone."""
    view = export if isinstance(export, ExportView) else ExportView(export, warn=warn)
    maker = CollageMaker(view, representations, rows=rows, cols=cols, max_width=max_width)
    chosen = select(maker.frames(), frames, view.video().get("frames"))
    path = Path(output) if output is not None else view.output_path(VIDEO_FILE, "--output FILE.mp4")
    writer = VideoWriter(path, (maker.layout.width, maker.layout.height), frame_rate(view, fps), crf=crf)
    bar = progress_bar(len(chosen), "video", progress)
    try:
        for _, image in map_in_order(maker.render, chosen, workers):
            writer.add(image)
            if bar is not None:
                bar.update(1)
        writer.close()
    finally:
        writer.discard()
        if bar is not None:
            bar.close()
    return writer.result()
