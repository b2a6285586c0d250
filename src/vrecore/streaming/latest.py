"""A reader thread plus a one-slot mailbox that always hands the consumer the newest frame."""
from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import NamedTuple

import numpy as np

from vrecore.errors import SourceError, VreError

from .sources import StreamSource

__all__ = ["FrameEntry", "LatestFrame"]

logger = logging.getLogger(__name__)


class FrameEntry(NamedTuple):
    """One received frame: its sequence number in source order (0-based) and arrival time."""

    seq: int
    frame: np.ndarray
    received_at: float
    """`time.perf_counter()` when `read()` returned it."""


class LatestFrame:
    """Pulls frames from a StreamSource on a thread and keeps only the newest one.

    The mailbox has exactly one slot: a frame that arrives while the previous one is still
    untaken overwrites it (counted in `dropped`), so memory stays flat whatever the consumer
    speed and the consumer never works on stale frames. With `drop=False` the reader waits for
    the slot to be taken instead (lossless, for offline or benchmark use).

    The LatestFrame owns the source: `start()` opens it, `close()` interrupts and closes it.
    """

    def __init__(self, source: StreamSource, *, drop: bool = True, name: str = "vre-stream-reader") -> None:
        self.source = source
        self.drop = drop
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._slot: FrameEntry | None = None
        self._received = 0
        self._taken = 0
        self._dropped = 0
        self._last_taken_seq = -1
        self._ended = False
        self._stop = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LatestFrame:
        """Open the source and start the reader thread (idempotent); returns self."""
        if self._thread is not None:
            return self
        self.source.open()
        # Daemon: a reader stuck in a blocking pipe read must not keep the process alive.
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading, wake any waiter and close the source; safe to call twice."""
        with self._cond:
            self._stop = True
            self._slot = None  # release the pending frame now, not when the object dies
            self._cond.notify_all()
        self.source.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.debug("stream reader still blocked in read(); leaving its daemon thread behind")
        try:
            self.source.close()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def __enter__(self) -> LatestFrame:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        source, cond = self.source, self._cond
        try:
            while not self._stop:
                frame = source.read()
                received_at = time.perf_counter()
                if frame is None:
                    break
                with cond:
                    if not self.drop:
                        while self._slot is not None and not self._stop:
                            cond.wait()
                    if self._stop:
                        break
                    if self._slot is not None:
                        self._dropped += 1
                    self._slot = FrameEntry(self._received, frame, received_at)
                    self._received += 1
                    cond.notify_all()
                # Drop our reference before the next blocking read so an overwritten frame
                # is freed immediately: at most one pending + one being read exist.
                del frame
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer thread
            logger.debug("stream reader failed", exc_info=True)
            self._error = exc
        finally:
            with cond:
                self._ended = True
                cond.notify_all()

    # -- consumer side ---------------------------------------------------------------------

    def get_entry(self, timeout: float | None = None) -> FrameEntry | None:
        """Block until a frame newer than the last one taken arrives and take it.

        Returns None once the stream has ended and its last frame was taken. Raises
        TimeoutError if `timeout` seconds pass first, and re-raises a reader failure (as
        SourceError unless it already was a VreError) after the pending frame was taken.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._slot
                if entry is not None:
                    self._slot = None
                    self._taken += 1
                    self._last_taken_seq = entry.seq
                    if not self.drop:
                        self._cond.notify_all()  # the lossless reader waits for the empty slot
                    return entry
                if self._ended or self._stop:
                    self._raise_reader_error()
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"no new frame within {timeout:g} s")
                    self._cond.wait(remaining)

    def get(self, timeout: float | None = None) -> tuple[int, np.ndarray] | None:
        """Like `get_entry` but returns `(seq, frame)`."""
        entry = self.get_entry(timeout)
        return None if entry is None else (entry.seq, entry.frame)

    def _raise_reader_error(self) -> None:
        err = self._error
        if err is None:
            return
        if isinstance(err, (VreError, KeyboardInterrupt)):
            raise err
        raise SourceError(f"stream source failed: {type(err).__name__}: {err}") from err

    # -- counters --------------------------------------------------------------------------

    @property
    def received(self) -> int:
        """Frames read from the source so far."""
        return self._received

    @property
    def taken(self) -> int:
        """Frames handed to the consumer so far."""
        return self._taken

    @property
    def dropped(self) -> int:
        """Frames overwritten by a newer one before anyone took them."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Frames waiting in the mailbox right now (0 or 1)."""
        return 0 if self._slot is None else 1

    @property
    def last_taken_seq(self) -> int:
        """Sequence number of the last frame taken, -1 before the first."""
        return self._last_taken_seq

    @property
    def ended(self) -> bool:
        """True once the source reported its end (or failed, or close() was called)."""
        return self._ended

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the reader thread, if any."""
        return self._error

    def stats(self) -> dict[str, int]:
        """Counters as a dict (for logs and JSON)."""
        return {
            "received": self._received,
            "taken": self._taken,
            "dropped": self._dropped,
            "pending": self.pending,
        }
