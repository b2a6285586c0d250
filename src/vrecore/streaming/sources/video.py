"""Frames decoded by PyAV: video files (paced like a camera, or as fast as they decode)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.errors import ConfigError, SourceError

from .base import StreamSource

__all__ = ["AvSource", "VideoFileSource", "open_file_source"]


class AvSource(StreamSource):
    """Shared PyAV decoding loop; PyAV objects are touched by one thread at a time."""

    def __init__(self, width: int | None, height: int | None) -> None:
        if (width is None) != (height is None):
            raise ConfigError("give both width and height to rescale frames, or neither")
        self._out_w, self._out_h = width, height
        self._container: Any = None
        self._stream: Any = None
        self._frames: Any = None
        self._interrupted = threading.Event()
        # read() holds this; close() from another thread defers to it rather than freeing
        # FFmpeg state mid-decode (which crashes the process instead of raising).
        self._io_lock = threading.Lock()
        self._close_pending = False
        self._ended = False

    def _open_container(self) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        if self._container is not None:
            return
        self._container = self._open_container()
        videos = self._container.streams.video
        if not videos:
            self._container.close()
            self._container = None
            raise SourceError(f"{self._describe()} has no video stream: give a file or device with video")
        self._stream = videos[0]
        # FFmpeg frame threading decodes ahead on other cores; it is the main cost of this source.
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)

    def _describe(self) -> str:
        raise NotImplementedError

    @property
    def frame_size(self) -> tuple[int, int] | None:
        if self._out_w is not None and self._out_h is not None:
            return self._out_w, self._out_h
        if self._stream is None:
            return None
        ctx = self._stream.codec_context
        return (ctx.width, ctx.height) if ctx.width and ctx.height else None

    @property
    def fps(self) -> float | None:
        if self._stream is None:
            return None
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    def interrupt(self) -> None:
        self._interrupted.set()

    def _next_av_frame(self) -> Any:
        import av

        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            raise SourceError(f"cannot decode {self._describe()}: {exc}") from exc

    def _to_rgb(self, av_frame: Any) -> np.ndarray:
        if self._out_w is not None:
            return av_frame.to_ndarray(format="rgb24", width=self._out_w, height=self._out_h)
        return av_frame.to_ndarray(format="rgb24")

    def read(self) -> np.ndarray | None:
        with self._io_lock:
            try:
                if self._ended or self._interrupted.is_set():
                    return None
                if self._container is None:
                    self.open()
                frame = self._read_locked()
                if frame is None:
                    self._ended = True
                return frame
            finally:
                if self._close_pending:
                    self._close_locked()

    def _read_locked(self) -> np.ndarray | None:
        av_frame = self._next_av_frame()
        return None if av_frame is None else self._to_rgb(av_frame)

    def close(self) -> None:
        self._interrupted.set()
        # A decode step is short; waiting a little lets us free FFmpeg state ourselves.
        if self._io_lock.acquire(timeout=1.0):
            try:
                self._close_locked()
            finally:
                self._io_lock.release()
        else:
            self._close_pending = True

    def _close_locked(self) -> None:
        self._close_pending = False
        self._ended = True
        container, self._container = self._container, None
        self._frames = None
        if container is not None:
            container.close()


class VideoFileSource(AvSource):
    """Frames of a video file decoded by PyAV, optionally paced to the file's own frame rate.

    With `realtime=True` each frame is released at its presentation time (wall clock), so the
    file behaves like a camera; frames are never skipped here (dropping happens downstream,
    in LatestFrame). If decoding falls behind by more than 0.25 s the clock is re-anchored
    instead of bursting to catch up. `realtime=False` decodes as fast as possible.
    `width`/`height` rescale the frames; `loop=True` restarts at the end.
    """

    _RESYNC_S = 0.25

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        width: int | None = None,
        height: int | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__(width, height)
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self._clock_origin: float | None = None  # wall clock minus media time
        self._last_media_t = 0.0
        self._period = 0.0

    def _describe(self) -> str:
        return f"video {str(self.path)!r}"

    def _open_container(self) -> Any:
        import av

        if not self.path.is_file():
            raise SourceError(f"video file {str(self.path)!r} not found: check the path")
        try:
            return av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {self._describe()}: {exc}: is it a video file?") from exc

    def _read_locked(self) -> np.ndarray | None:
        av_frame = self._next_av_frame()
        if av_frame is None and self.loop and self._container is not None:
            self._container.seek(0)
            self._frames = self._container.decode(self._stream)
            # Continue the media clock across the wrap so pacing stays smooth.
            if self._clock_origin is not None:
                self._clock_origin += self._last_media_t + self._period
            av_frame = self._next_av_frame()
        if av_frame is None:
            return None
        frame = self._to_rgb(av_frame)
        if self.realtime:
            self._pace(av_frame)
        return frame

    def _pace(self, av_frame: Any) -> None:
        if not self._period:
            fps = self.fps
            self._period = 1.0 / fps if fps else 1.0 / 30.0
        t = av_frame.time
        media_t = float(t) if t is not None else self._last_media_t + self._period
        self._last_media_t = media_t
        now = time.perf_counter()
        if self._clock_origin is None:
            self._clock_origin = now - media_t
            return
        delay = self._clock_origin + media_t - now
        if delay > 0:
            self._interrupted.wait(delay)
        elif delay < -self._RESYNC_S:
            self._clock_origin = now - media_t



def open_file_source(spec: str, *, width: int | None = None, height: int | None = None, realtime: bool = True,
                     loop: bool = False, **_: Any) -> VideoFileSource:
    """A video file path (or ``file://PATH``), paced to its frame rate when ``realtime``, restarted when ``loop``."""
    path = Path(spec.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ConfigError(f"stream source {spec!r} is not an existing file: check the path, or give '-', "
                          f"tcp://HOST:PORT or /dev/videoN")
    return VideoFileSource(path, realtime=realtime, width=width, height=height, loop=loop)
