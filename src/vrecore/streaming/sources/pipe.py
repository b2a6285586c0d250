"""Raw rgb24 frames from a pipe or file descriptor (`-`: stdin)."""
from __future__ import annotations

import errno
import io
import logging
import os
import select
import sys
import threading
import time
from typing import IO, Any

import numpy as np

from .base import POLL_S, StreamSource, check_size, new_frame

__all__ = ["RawPipeSource", "open_pipe_source"]

logger = logging.getLogger(__name__)


class RawPipeSource(StreamSource):
    """Raw rgb24 frames, back to back, from a file descriptor or binary file object.

    Given an int fd, `sys.stdin.buffer` (read as fd 0: do not read from it beforehand) or an
    unbuffered raw file, it reads the descriptor directly after a poll(), so `interrupt()`
    works even while the writer stalls and no Python-level lock is held during the wait (a
    daemon thread stuck inside a buffered stdin read aborts interpreter shutdown with "Fatal
    Python error: could not acquire lock"). Other file objects (`io.BytesIO`, buffered pipes)
    are read with `readinto`. A short final frame is logged as a warning and ends the stream.
    The file is closed on `close()` only if `close_file=True`.
    """

    def __init__(
        self,
        file: IO[bytes] | int,
        width: int,
        height: int,
        *,
        fps: float | None = None,
        close_file: bool = False,
    ) -> None:
        self._width, self._height = check_size(width, height, "raw pipe input")
        self._file = file
        self._fd: int | None = file if isinstance(file, int) else None
        if self._fd is None and file is getattr(sys.stdin, "buffer", None):
            # The common case; reading fd 0 past the buffer assumes nobody read stdin before.
            self._fd = 0
        elif self._fd is None and isinstance(file, io.RawIOBase):
            # Unbuffered: no bytes can hide in a Python-side buffer, so fd reads are safe.
            try:
                self._fd = file.fileno()
            except (OSError, ValueError):
                self._fd = None
        self._fps = fps
        self._close_file = close_file
        self._frame_bytes = self._width * self._height * 3
        self._interrupted = threading.Event()
        self._ended = False
        self.short_final_frame_bytes: int | None = None
        """Bytes of the incomplete last frame when the stream ended mid-frame, else None."""

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._width, self._height

    @property
    def fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        pass

    def interrupt(self) -> None:
        # fd mode notices this within one poll; a buffered file object only between chunks,
        # and LatestFrame then leaves its daemon reader thread behind if the writer stalls.
        self._interrupted.set()

    def read(self) -> np.ndarray | None:
        if self._ended or self._interrupted.is_set():
            return None
        frame, view = new_frame(self._width, self._height)
        got = self._read_fd(view) if self._fd is not None else self._read_file(view)
        if got == self._frame_bytes:
            return frame
        self._ended = True
        if got and not self._interrupted.is_set():
            self.short_final_frame_bytes = got
            logger.warning(
                "raw input ended in the middle of a frame (%d of %d bytes, %dx%d rgb24): "
                "last partial frame dropped; check that width and height match the sender",
                got, self._frame_bytes, self._width, self._height,
            )
        return None

    def _read_fd(self, view: memoryview) -> int:
        fd, want, got = self._fd, len(view), 0
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        while got < want:
            if self._interrupted.is_set():
                return got
            if not poller.poll(POLL_S * 1000):
                continue
            try:
                n = os.readv(fd, [view[got:]])  # straight into the frame: no intermediate bytes
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF and self._interrupted.is_set():
                    return got
                raise
            if n == 0:
                return got
            got += n
        return got

    def _read_file(self, view: memoryview) -> int:
        file, want, got = self._file, len(view), 0
        assert not isinstance(file, int)
        readinto = getattr(file, "readinto", None)
        while got < want:
            if self._interrupted.is_set():
                return got
            if readinto is not None:
                n = readinto(view[got:])
                if n is None:  # non-blocking file with no data yet
                    time.sleep(0.001)
                    continue
            else:
                data = file.read(want - got)
                n = len(data)
                view[got:got + n] = data
            if n == 0:
                return got
            got += n
        return got

    def close(self) -> None:
        self._ended = True
        self._interrupted.set()
        if self._close_file:
            try:
                if isinstance(self._file, int):
                    os.close(self._file)
                else:
                    self._file.close()
            except OSError:
                pass



def open_pipe_source(spec: str, *, width: int | None = None, height: int | None = None, fps: float | None = None,
                     **_: Any) -> RawPipeSource:
    """`-`: raw rgb24 frames of ``width`` x ``height`` on stdin."""
    w, h = check_size(width, height, "raw stdin input '-'")
    # fd 0 rather than sys.stdin.buffer: see RawPipeSource on interrupts and shutdown.
    return RawPipeSource(0, w, h, fps=fps)
