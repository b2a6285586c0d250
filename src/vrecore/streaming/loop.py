"""The one streaming loop: source -> newest-frame mailbox -> processor -> targets, with timings and a summary."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
import weakref
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Protocol

import numpy as np

from vrecore.errors import ConfigError

from .latest import FrameEntry, LatestFrame
from .result import FrameResult, StreamResult, StreamSummary
from .sources import StreamSource
from .targets import StreamTarget, TargetClosed

__all__ = ["FrameProcessor", "FunctionProcessor", "ProcessFn", "StreamLoop", "run_stream"]

logger = logging.getLogger(__name__)

_CSV_HEADER = "seq,received_s,wait_ms,compute_ms,send_ms,latency_ms,dropped_total"


class FrameProcessor(Protocol):
    """What the loop runs on each frame (`GraphProcessor`, or `FunctionProcessor` around a function)."""

    def setup(self) -> Any:
        """Get ready for the first frame (called once, before the source opens)."""

    def process(self, frame: np.ndarray, seq: int = -1) -> FrameResult:
        """Compute the results of frame ``seq``."""

    def teardown(self) -> None:
        """Release what `setup` acquired (idempotent)."""


Outputs = Mapping[str, np.ndarray]
ProcessFn = Callable[[np.ndarray], Outputs | tuple[Outputs, Mapping[str, Any]]]
"""``process(frame)`` returns {name: (H, W, 3) uint8 RGB}, or that plus a JSON-able summary dict."""


class FunctionProcessor:
    """A `ProcessFn` as a `FrameProcessor`: its outputs are both the results and the previews."""

    def __init__(self, process: ProcessFn) -> None:
        self._process = process

    def setup(self) -> FunctionProcessor:
        return self

    def process(self, frame: np.ndarray, seq: int = -1) -> FrameResult:
        t0 = time.perf_counter()
        result = self._process(frame)
        outputs, summary = result if isinstance(result, tuple) else (result, {})
        return FrameResult(seq=seq, outputs=outputs, images=outputs,
                           shapes={k: (int(v.shape[0]), int(v.shape[1])) for k, v in outputs.items()},
                           summary=dict(summary), compute_ms={}, graph_ms=(time.perf_counter() - t0) * 1e3, errors={})

    def teardown(self) -> None:
        pass


def _close_quietly(mailbox: LatestFrame, processor: FrameProcessor) -> None:
    try:
        mailbox.close()
    finally:
        processor.teardown()


@contextlib.contextmanager
def _csv_file(dest: str | os.PathLike[str] | IO[str] | None, columns: Sequence[str]) -> Iterator[IO[str] | None]:
    header = ",".join([_CSV_HEADER, *(f"{c}_ms" for c in columns)]) + "\n"
    if dest is None:
        yield None
    elif isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8", newline="") as f:
            f.write(header)
            yield f
    else:
        dest.write(header)
        yield dest
        dest.flush()


def _mean(values: array) -> float | None:
    return float(np.frombuffer(values, dtype=np.float64).mean()) if len(values) else None


@dataclasses.dataclass(frozen=True)
class _Step:
    """One turn of the loop: the frame taken, its results and when each stage ended (perf_counter)."""

    entry: FrameEntry
    frame: FrameResult
    result: StreamResult
    asked: float
    taken: float
    computed: float


class StreamLoop(Iterator[StreamResult]):
    """Frames from ``source`` through ``processor``: an iterator of `StreamResult`, or pushed to targets (`run`).

    Each step takes the newest frame that arrived (older untaken ones are dropped unless
    ``drop_frames=False``) and processes it. The loop ends with the source or after
    ``max_frames``; ``close()`` (or leaving a ``with`` block, or dropping the iterator) stops
    the reader, closes the source and tears the processor down. The processor is set up before
    the source opens.
    """

    def __init__(self, source: StreamSource, processor: FrameProcessor, *, drop_frames: bool = True,
                 max_frames: int | None = None) -> None:
        if max_frames is not None and max_frames < 0:
            raise ConfigError(f"max_frames must be >= 0, got {max_frames}")
        self.source = source
        self.processor = processor
        self.max_frames = max_frames
        self.processed = 0
        self.stop_reason = "end"
        """Why the loop ended: "end", "max_frames", "interrupted" or "target_closed"."""
        self._mailbox = LatestFrame(source, drop=drop_frames)
        self._started = False
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_quietly, self._mailbox, processor)

    @property
    def received(self) -> int:
        """Frames received from the source so far."""
        return self._mailbox.received

    @property
    def dropped(self) -> int:
        """Frames dropped so far."""
        return self._mailbox.dropped

    def start(self) -> StreamLoop:
        """Set the processor up, then open the source and start reading (idempotent)."""
        if not self._started and not self._closed:
            self._started = True
            try:
                self.processor.setup()
                self._mailbox.start()
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Stop reading, close the source and tear the processor down (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> StreamLoop:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> StreamLoop:
        return self

    def __next__(self) -> StreamResult:
        step = self._step()
        if step is None:
            raise StopIteration
        return step.result

    def _step(self) -> _Step | None:
        """Take the newest frame and process it; None (the loop closed) once the stream is over."""
        if self._closed:
            return None
        if self.max_frames is not None and self.processed >= self.max_frames:
            self.stop_reason = "max_frames"
            self.close()
            return None
        try:
            self.start()
            asked = time.perf_counter()
            entry = self._mailbox.get_entry()
            if entry is None:
                self.close()
                return None
            taken = time.perf_counter()
            r = self.processor.process(entry.frame, entry.seq)
        except BaseException:
            self.close()
            raise
        self.processed += 1
        computed = time.perf_counter()
        result = StreamResult(
            seq=entry.seq, frame=entry.frame, outputs=r.outputs, images=r.images, summary=r.summary,
            timings={"compute_ms": r.compute_ms, "graph_ms": r.graph_ms, "wait_ms": (taken - asked) * 1e3,
                     "latency_ms": (computed - entry.received_at) * 1e3},
            received=self._mailbox.received, dropped=self._mailbox.dropped, errors=r.errors)
        return _Step(entry, r, result, asked, taken, computed)

    def run(self, targets: StreamTarget | Sequence[StreamTarget] = (), *,
            on_result: Callable[[StreamResult], Any] | None = None,
            metrics_csv: str | os.PathLike[str] | IO[str] | None = None, metrics_columns: Sequence[str] = (),
            close_targets: bool = True) -> StreamSummary:
        """Push every result to ``targets`` (previews, then the JSON-able summary) and ``on_result``.

        Ends when the source ends, after ``max_frames``, on Ctrl-C or when a target raises
        TargetClosed, and returns the summary then (other errors propagate after cleanup). The
        loop is closed at the end, and the targets too unless ``close_targets=False``.
        ``metrics_csv`` (path or text file) receives one row of timings per frame, plus one
        ``<name>_ms`` column per name of ``metrics_columns`` (from ``timings["compute_ms"]``).
        """
        target_list: list[StreamTarget] = [targets] if isinstance(targets, StreamTarget) else list(targets)
        summary_targets = [t for t in target_list if t.wants_summary]
        lat, wait, comp, send = array("d"), array("d"), array("d"), array("d")
        t_first: float | None = None
        t_last = 0.0
        try:
            with _csv_file(metrics_csv, metrics_columns) as csv:
                self.start()
                t_start = time.perf_counter()
                try:
                    while (step := self._step()) is not None:
                        result = step.result
                        for target in target_list:
                            target.send(result.seq, result.frame, result.images)
                        sent = time.perf_counter()
                        if t_first is None:
                            t_first = step.entry.received_at
                        t_last = sent
                        latency_ms = (sent - step.entry.received_at) * 1e3
                        wait_ms = (step.taken - step.asked) * 1e3
                        compute_ms, send_ms = (step.computed - step.taken) * 1e3, (sent - step.computed) * 1e3
                        for values, v in ((lat, latency_ms), (wait, wait_ms), (comp, compute_ms), (send, send_ms)):
                            values.append(v)
                        if summary_targets:
                            summary = self._summary(step, wait_ms, compute_ms, send_ms, latency_ms)
                            for target in summary_targets:
                                target.send_summary(result.seq, summary)
                        if on_result is not None:
                            on_result(dataclasses.replace(result, timings={
                                **result.timings, "send_ms": send_ms, "latency_ms": latency_ms}))
                        if csv is not None:
                            per_name = result.timings["compute_ms"]
                            csv.write(
                                f"{result.seq},{step.entry.received_at - t_start:.6f},{wait_ms:.3f},"
                                f"{compute_ms:.3f},{send_ms:.3f},{latency_ms:.3f},{self.dropped}"
                                + "".join(f",{per_name.get(c, math.nan):.3f}" for c in metrics_columns) + "\n")
                except KeyboardInterrupt:
                    self.stop_reason = "interrupted"
                    logger.info("interrupted: stopping the stream")
                except TargetClosed as exc:
                    self.stop_reason = "target_closed"
                    logger.info("%s: stopping the stream", exc)
        finally:
            self.close()
            if close_targets:
                for target in target_list:
                    try:
                        target.close()
                    except Exception:  # noqa: BLE001 - one failing close must not hide the others
                        logger.warning("closing stream target %r failed", target, exc_info=True)

        duration = (t_last - t_first) if t_first is not None else 0.0
        lat_np = np.frombuffer(lat, dtype=np.float64)
        pct = np.percentile(lat_np, [50, 90, 99]).tolist() if len(lat_np) else [None, None, None]
        totals = StreamSummary(
            received=self.received, processed=self.processed, dropped=self.dropped, duration_s=duration,
            fps=self.processed / duration if duration > 0 else 0.0, latency_p50_ms=pct[0], latency_p90_ms=pct[1],
            latency_p99_ms=pct[2], latency_max_ms=float(lat_np.max()) if len(lat_np) else None,
            wait_mean_ms=_mean(wait), compute_mean_ms=_mean(comp), send_mean_ms=_mean(send),
            stop_reason=self.stop_reason)
        logger.info("stream summary: %s", totals)
        return totals

    def _summary(self, step: _Step, wait_ms: float, compute_ms: float, send_ms: float,
                 latency_ms: float) -> dict[str, Any]:
        """The JSON-able record of one frame that summary targets (JSON lines, the web viewer) get."""
        summary: dict[str, Any] = {
            "seq": step.entry.seq, "time": time.time(), "received": self.received, "dropped": self.dropped,
            "wait_ms": round(wait_ms, 3), "compute_ms": round(compute_ms, 3), "send_ms": round(send_ms, 3),
            "latency_ms": round(latency_ms, 3), "outputs": {k: list(v) for k, v in step.frame.shapes.items()},
        }
        if step.frame.summary:
            summary["summary"] = step.frame.summary
        return summary


def run_stream(source: StreamSource, process: ProcessFn, targets: StreamTarget | Sequence[StreamTarget] = (), *,
               max_frames: int | None = None, metrics_csv: str | os.PathLike[str] | IO[str] | None = None,
               drop_frames: bool = True, close_targets: bool = True) -> StreamSummary:
    """`StreamLoop.run` with a plain function ``process(frame)`` as the processor (see `ProcessFn`)."""
    loop = StreamLoop(source, FunctionProcessor(process), drop_frames=drop_frames, max_frames=max_frames)
    return loop.run(targets, metrics_csv=metrics_csv, close_targets=close_targets)
