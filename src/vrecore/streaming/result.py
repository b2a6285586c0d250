"""What the streaming loop hands on: one frame's results (`FrameResult`, `StreamResult`) and a run's `StreamSummary`."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FrameResult", "GraphStreamSummary", "StreamResult", "StreamSummary"]


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """What a processor (`GraphProcessor.process`) returns for one frame."""

    seq: int
    outputs: Mapping[str, np.ndarray]
    """Memory form (H, W, C) of every representation computed (``export: false`` ones included)."""
    images: Mapping[str, np.ndarray]
    """uint8 (H, W, 3) previews of the exported representations (a `PreviewImages` makes them lazily)."""
    shapes: dict[str, tuple[int, int]]
    """(H, W) of every preview, known without making any."""
    summary: dict[str, Any]
    """JSON-able, per representation: ``ms`` (compute + resize), and ``fraction`` of true pixels
    for bool masks, or ``mean``/``min``/``max`` for single-channel floats; ``error`` if it failed."""
    compute_ms: dict[str, float]
    graph_ms: float
    errors: dict[str, str]
    """Representation name → error text, for those that failed on this frame (exception_mode="skip")."""


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One processed frame of `vrecore.stream`: the input, every output, previews and timings."""

    seq: int
    """Sequence number of the frame in source order (0-based; gaps are dropped frames)."""
    frame: np.ndarray
    """The input frame, uint8 (H, W, 3) RGB."""
    outputs: Mapping[str, np.ndarray]
    """Memory form (H, W, C) of every representation computed, resized to the frame size."""
    images: Mapping[str, np.ndarray]
    """uint8 (H, W, 3) previews of the exported representations, made on first access."""
    summary: dict[str, Any]
    """JSON-able per-representation summary (see `FrameResult.summary`)."""
    timings: dict[str, Any]
    """Milliseconds: ``compute_ms`` {name: ms}, ``graph_ms``, ``wait_ms`` (waiting for the frame)
    and ``latency_ms`` (frame received → results ready; in the push form, → sent to the targets,
    whose time is ``send_ms``)."""
    received: int
    """Frames received from the source so far."""
    dropped: int
    """Frames dropped so far (a newer one arrived before they were taken)."""
    errors: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StreamSummary:
    """Counters and timings of one streaming run (times in milliseconds unless named _s)."""

    received: int
    processed: int
    dropped: int
    duration_s: float
    fps: float
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    wait_mean_ms: float | None
    compute_mean_ms: float | None
    send_mean_ms: float | None
    stop_reason: str
    """"end" (source ended), "max_frames", "interrupted" (Ctrl-C) or "target_closed"."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        return (
            f"{self.processed} frames processed of {self.received} received ({self.dropped} dropped) "
            f"in {self.duration_s:.1f} s, {self.fps:.1f} frames/s; latency p50 {ms(self.latency_p50_ms)} "
            f"p90 {ms(self.latency_p90_ms)} p99 {ms(self.latency_p99_ms)} ms; compute {ms(self.compute_mean_ms)} "
            f"ms/frame; stopped: {self.stop_reason}"
        )


@dataclasses.dataclass(frozen=True)
class GraphStreamSummary(StreamSummary):
    """`StreamSummary` plus per-representation compute statistics (see `GraphProcessor.stats`)."""

    representations: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    table: str = ""

    def __str__(self) -> str:
        return super().__str__() + ("\n" + self.table if self.table else "")
