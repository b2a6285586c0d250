"""Raw rgb24 frames written to a binary file or pipe (stdout by default)."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

from .base import StreamTarget, TargetClosed
from .frames import FramePicker, flat

__all__ = ["RawStdoutTarget", "open_pipe_target"]


class RawStdoutTarget(StreamTarget):
    """Writes raw rgb24 frames of one representation (or a horizontal mosaic) to a binary file.

    Every frame has the size of the first one. A closed pipe (reader gone) raises TargetClosed,
    which run_stream treats as a clean end.
    """

    def __init__(
        self,
        file: BinaryIO | None = None,
        *,
        representation: str | None = None,
        mosaic: bool = False,
        include_input: bool = False,
        flush: bool = True,
    ) -> None:
        self._file = sys.stdout.buffer if file is None else file
        self._picker = FramePicker(representation, mosaic, include_input)
        self._flush = flush
        self._closed = False
        self.frames_written = 0

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames written, known after the first one."""
        return self._picker.size

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        if self._closed:
            return
        img = self._picker.pick(input_frame, outputs)
        try:
            self._file.write(flat(img))
            if self._flush:
                self._file.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._closed = True
            raise TargetClosed("raw output pipe was closed by its reader") from exc
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._file.flush()
        except (OSError, ValueError):
            pass


def open_pipe_target(spec: str, *, representation: str | None = None, mosaic: bool | None = None,
                     include_input: bool | None = None, **_: Any) -> RawStdoutTarget:
    """`-`: raw rgb24 frames of one representation (or a mosaic) on stdout."""
    return RawStdoutTarget(sys.stdout.buffer, representation=representation, mosaic=bool(mosaic),
                           include_input=bool(include_input))
