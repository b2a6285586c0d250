"""The target interface: what the processing loop hands each processed frame to."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from vrecore.errors import VreError

__all__ = ["INPUT_NAME", "StreamTarget", "TargetClosed"]

INPUT_NAME = "input"
"""Stream name under which targets show the input frame next to the representations."""


class TargetClosed(VreError):
    """The consumer of a target went away for good (e.g. the stdout pipe closed): stop cleanly."""

    exit_code = 0


class StreamTarget(abc.ABC):
    """Receives each processed frame. `send()` runs on the processing thread, so it must be fast
    and must never wait on a slow consumer: a target drops for that consumer instead.

    Arrays passed to `send()` are read-only for the target and may be kept (no copy); the
    producer must hand over new arrays each frame rather than mutate old ones.
    """

    wants_summary: ClassVar[bool] = False
    """True if `send_summary()` does something (lets the runner skip building summaries)."""

    @abc.abstractmethod
    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        """Deliver frame `seq`: the input and {representation name: (H, W, 3) uint8 RGB}."""

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Deliver the JSON-able per-frame summary of frame `seq` (default: ignored)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets/threads; idempotent."""

    def __enter__(self) -> StreamTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
