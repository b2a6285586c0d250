"""A target that calls Python functions with each frame and its summary."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .base import StreamTarget

__all__ = ["CallbackTarget"]


class CallbackTarget(StreamTarget):
    """Calls `fn(seq, input_frame, outputs)` for each frame (and `on_summary(seq, summary)`)."""

    def __init__(
        self,
        fn: Callable[[int, np.ndarray, Mapping[str, np.ndarray]], None],
        *,
        on_summary: Callable[[int, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self._fn = fn
        self._on_summary = on_summary
        self.wants_summary = on_summary is not None  # type: ignore[misc]

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        self._fn(seq, input_frame, outputs)

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        if self._on_summary is not None:
            self._on_summary(seq, summary)

    def close(self) -> None:
        pass
