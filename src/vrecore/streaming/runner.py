"""The streaming loop: newest frame -> process -> targets, with per-frame timings and a summary."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from array import array
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import IO, Any

import numpy as np

from .latest import FrameEntry, LatestFrame
from .sources import StreamSource
from .targets import StreamTarget, TargetClosed

__all__ = ["ProcessFn", "ProcessResult", "StreamSummary", "run_stream", "iter_stream"]

logger = logging.getLogger(__name__)

Outputs = Mapping[str, np.ndarray]
ProcessResult = Outputs | tuple[Outputs, Mapping[str, Any]]
"""`process` returns {name: (H, W, 3) uint8 RGB}, or that plus a JSON-able summary dict."""
ProcessFn = Callable[[np.ndarray], ProcessResult]
"""`process(frame)`. An object may instead define `process_entry(entry: FrameEntry)` to also get
the frame's sequence number and arrival time, and `metrics_columns` (names) with `metrics_row()`
(the values for the frame just processed) to add columns to the metrics CSV. The outputs mapping
may compute its images lazily (only those a target asks for); when it has a `shapes` attribute
({name: (H, W)}) summaries read sizes from it instead of touching every image."""

_CSV_HEADER = "seq,received_s,wait_ms,compute_ms,send_ms,latency_ms,dropped_total\n"


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


def _caller(process: ProcessFn) -> Callable[[FrameEntry], ProcessResult]:
    by_entry = getattr(process, "process_entry", None)
    if by_entry is not None:
        return by_entry  # type: ignore[no-any-return]
    return lambda entry: process(entry.frame)


def _shapes(outputs: Outputs) -> dict[str, list[int]]:
    shapes = getattr(outputs, "shapes", None)
    if shapes is not None:
        return {k: list(v[:2]) for k, v in shapes.items()}
    return {k: list(v.shape[:2]) for k, v in outputs.items()}


def _split(result: ProcessResult) -> tuple[Outputs, Mapping[str, Any] | None]:
    if isinstance(result, tuple):
        outputs, summary = result
        return outputs, summary
    return result, None


def _mean(values: array) -> float | None:
    return float(np.frombuffer(values, dtype=np.float64).mean()) if len(values) else None


@contextlib.contextmanager
def _csv_file(dest: str | os.PathLike[str] | IO[str] | None, extra: Sequence[str] = ()) -> Iterator[IO[str] | None]:
    header = _CSV_HEADER if not extra else _CSV_HEADER[:-1] + "".join(f",{c}" for c in extra) + "\n"
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


def run_stream(
    source: StreamSource,
    process: ProcessFn,
    targets: StreamTarget | Sequence[StreamTarget] = (),
    *,
    max_frames: int | None = None,
    metrics_csv: str | os.PathLike[str] | IO[str] | None = None,
    drop_frames: bool = True,
    close_targets: bool = True,
) -> StreamSummary:
    """Process the newest frame of `source` again and again and send results to `targets`.

    Ends when the source ends, after `max_frames` processed frames, on Ctrl-C or when a target
    raises TargetClosed; always returns the summary then (other errors propagate after
    cleanup). The source is opened and closed here; targets are closed too unless
    `close_targets=False`. `drop_frames=False` processes every frame (reader waits for us).
    `metrics_csv` (path or text file) receives one row of timings per processed frame.
    """
    target_list: list[StreamTarget] = [targets] if isinstance(targets, StreamTarget) else list(targets)
    summary_targets = [t for t in target_list if t.wants_summary]
    lat, wait, comp, send = array("d"), array("d"), array("d"), array("d")
    processed = 0
    stop_reason = "end"
    t_first: float | None = None
    t_last = 0.0
    perf = time.perf_counter
    lf = LatestFrame(source, drop=drop_frames)
    call = _caller(process)
    extra_columns: Sequence[str] = tuple(getattr(process, "metrics_columns", ()) or ())
    extra_row: Callable[[], Sequence[float]] | None = getattr(process, "metrics_row", None) if extra_columns else None
    try:
        with _csv_file(metrics_csv, extra_columns) as csv:
            lf.start()
            t_start = perf()
            try:
                while max_frames is None or processed < max_frames:
                    t0 = perf()
                    entry = lf.get_entry()
                    if entry is None:
                        break
                    t1 = perf()
                    outputs, user_summary = _split(call(entry))
                    t2 = perf()
                    for target in target_list:
                        target.send(entry.seq, entry.frame, outputs)
                    t3 = perf()
                    if t_first is None:
                        t_first = entry.received_at
                    t_last = t3
                    processed += 1
                    latency_ms = (t3 - entry.received_at) * 1e3
                    wait_ms, compute_ms, send_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3
                    lat.append(latency_ms)
                    wait.append(wait_ms)
                    comp.append(compute_ms)
                    send.append(send_ms)
                    if summary_targets:
                        summary: dict[str, Any] = {
                            "seq": entry.seq,
                            "time": time.time(),
                            "received": lf.received,
                            "dropped": lf.dropped,
                            "wait_ms": round(wait_ms, 3),
                            "compute_ms": round(compute_ms, 3),
                            "send_ms": round(send_ms, 3),
                            "latency_ms": round(latency_ms, 3),
                            "outputs": _shapes(outputs),
                        }
                        if user_summary is not None:
                            summary["summary"] = user_summary
                        for target in summary_targets:
                            target.send_summary(entry.seq, summary)
                    if csv is not None:
                        csv.write(
                            f"{entry.seq},{entry.received_at - t_start:.6f},{wait_ms:.3f},{compute_ms:.3f},"
                            f"{send_ms:.3f},{latency_ms:.3f},{lf.dropped}"
                            + ("".join(f",{v:.3f}" for v in extra_row()) if extra_row is not None else "")
                            + "\n"
                        )
                else:
                    stop_reason = "max_frames"
            except KeyboardInterrupt:
                stop_reason = "interrupted"
                logger.info("interrupted: stopping the stream")
            except TargetClosed as exc:
                stop_reason = "target_closed"
                logger.info("%s: stopping the stream", exc)
    finally:
        lf.close()
        if close_targets:
            for target in target_list:
                try:
                    target.close()
                except Exception:  # noqa: BLE001 - one failing close must not hide the others
                    logger.warning("closing stream target %r failed", target, exc_info=True)

    duration = (t_last - t_first) if t_first is not None else 0.0
    lat_np = np.frombuffer(lat, dtype=np.float64)
    pct = np.percentile(lat_np, [50, 90, 99]).tolist() if len(lat_np) else [None, None, None]
    result = StreamSummary(
        received=lf.received,
        processed=processed,
        dropped=lf.dropped,
        duration_s=duration,
        fps=processed / duration if duration > 0 else 0.0,
        latency_p50_ms=pct[0],
        latency_p90_ms=pct[1],
        latency_p99_ms=pct[2],
        latency_max_ms=float(lat_np.max()) if len(lat_np) else None,
        wait_mean_ms=_mean(wait),
        compute_mean_ms=_mean(comp),
        send_mean_ms=_mean(send),
        stop_reason=stop_reason,
    )
    logger.info("stream summary: %s", result)
    return result


def iter_stream(
    source: StreamSource,
    process: ProcessFn,
    *,
    drop_frames: bool = True,
    max_frames: int | None = None,
) -> Generator[tuple[int, np.ndarray, Outputs], None, None]:
    """Yield `(seq, frame, outputs)` for the newest frame each time the caller asks for one.

    Frames that arrive while the caller is busy are dropped (unless `drop_frames=False`).
    Breaking out of the loop or closing the generator stops the reader and closes the source.
    """
    call = _caller(process)
    with LatestFrame(source, drop=drop_frames) as lf:
        n = 0
        while max_frames is None or n < max_frames:
            entry = lf.get_entry()
            if entry is None:
                return
            outputs, _ = _split(call(entry))
            n += 1
            yield entry.seq, entry.frame, outputs
