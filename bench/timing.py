"""Timing helper shared by the benchmarks: the median of repeated runs, per frame, after a warm-up."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(run: Callable[[int], object], starts: list[int], batch: int, repeats: int,
              sync: Callable[[], None] = lambda: None) -> float:
    """Median ms per frame of ``run(start)`` over batches of ``batch`` frames, after a warm-up batch;
    ``sync`` waits for an accelerator's queued work (CUDA) around each timing."""
    def timed(start: int) -> float:
        sync()
        t = time.perf_counter()
        run(start)
        sync()
        return time.perf_counter() - t

    timed(starts[0])
    return statistics.median(timed(s) / batch for _ in range(repeats) for s in starts) * 1e3
