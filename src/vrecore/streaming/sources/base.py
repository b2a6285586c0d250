"""The stream source interface, and the frame-size and buffer helpers the built-in sources share."""
from __future__ import annotations

import abc
from types import TracebackType

import numpy as np

from vrecore.errors import ConfigError

__all__ = ["POLL_S", "StreamSource", "check_size", "new_frame"]

# Blocking calls wake up this often to notice interrupt(); short enough for a snappy Ctrl-C,
# long enough that idle polling costs nothing measurable.
POLL_S = 0.2


class StreamSource(abc.ABC):
    """A live source of RGB frames; `read()` returns a NEW (H, W, 3) uint8 array or None at the end.

    Contract for implementations: `open()` and `close()` are idempotent; `read()` never reuses a
    returned buffer (consumers keep frames without copying); `interrupt()` may be called from
    another thread and must make a blocked `read()` return None soon.
    """

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the underlying resource (idempotent)."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """Block until the next frame and return it, or return None at end of stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the underlying resource (idempotent)."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook, most sources need nothing
        """Ask a `read()` blocked in another thread to return None soon (thread-safe)."""

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames when known before the first frame, else None."""
        return None

    @property
    def fps(self) -> float | None:
        """Nominal frame rate when the source knows it, else None."""
        return None

    def __enter__(self) -> StreamSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_size(width: int | None, height: int | None, what: str) -> tuple[int, int]:
    """(width, height) of raw frames, or a one-line error when the size is missing or invalid."""
    if width is None or height is None:
        raise ConfigError(
            f"{what} carries raw rgb24 frames without a header: give the frame size "
            "(e.g. width=960 height=540)"
        )
    if int(width) <= 0 or int(height) <= 0:
        raise ConfigError(f"frame size {width}x{height} is invalid: width and height must be > 0")
    return int(width), int(height)


def new_frame(width: int, height: int) -> tuple[np.ndarray, memoryview]:
    """A new (height, width, 3) uint8 frame and a flat byte view to read into."""
    # np.empty: every byte is overwritten by the read, so zero-filling would be wasted work.
    frame = np.empty((height, width, 3), dtype=np.uint8)
    return frame, frame.reshape(-1).data

