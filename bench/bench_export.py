"""Batch-export benchmark: rgb+hsv throughput at 540p, compressed + jpg, durable writes, and re-run planning
(with verification) at 10k frames.

    python bench/bench_export.py [--frames 100] [--plan-frames 10000]

Prints frames/s, the ratio to the targets, the cost of durable=true per frame, re-run planning time, and peak
memory. Figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from vrecore._malloc import tune_malloc_for_frames
from vrecore.export.run import run_export
from vrecore.frames.sample import make_sample_clip
from vrecore.frames.video import FrameSource
from vrecore.graph.build import build_graph

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


class SyntheticSource(FrameSource):
    """Tiny constant frames, to measure the engine's per-frame bookkeeping alone."""

    def __init__(self, n: int) -> None:
        self.path, self.num_frames, self.fps, self.height, self.width = Path("synthetic"), n, 25.0, 8, 8

    def get_batch(self, indices):  # type: ignore[no-untyped-def]
        return np.zeros((len(indices), 8, 8, 3), np.uint8)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_case(video: Path, out: Path, frames: int, durable: bool = False, **settings) -> float:
    shutil.rmtree(out, ignore_errors=True)
    graph = build_graph({"representations": RGB_HSV, **settings})
    t = time.perf_counter()
    result = run_export(graph, video, out, frames=f"0..{frames}", durable=durable)
    seconds = time.perf_counter() - t
    assert result.ok and result.stats["hsv"].computed == frames
    return frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--plan-frames", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tune_malloc_for_frames()  # as the `vre` command does
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        video = make_sample_clip(tmp_path / "clip540.mp4", width=960, height=540, frames=args.frames)
        cases = [("rgb+hsv -> npz", {}, 100.0),
                 ("rgb+hsv -> npz-compressed + jpg", {"binary_format": "npz-compressed", "image_format": "jpg"}, 15.0)]
        for label, settings, target in cases:
            fps = sorted(export_case(video, tmp_path / "out", args.frames, **settings) for _ in range(args.repeat))
            median = fps[len(fps) // 2]
            print(f"{label}: {median:.1f} frames/s (runs: {', '.join(f'{f:.1f}' for f in fps)}; "
                  f"target {target:.0f}: x{median / target:.2f}; seed tool 4-6)")
        rss_small = peak_rss_mb()
        print(f"peak RSS after {args.frames}-frame exports: {rss_small:.0f} MB")
        plain = sorted(export_case(video, tmp_path / "out", args.frames, image_format="jpg")
                       for _ in range(args.repeat))[args.repeat // 2]
        durable = sorted(export_case(video, tmp_path / "out", args.frames, image_format="jpg", durable=True)
                         for _ in range(args.repeat))[args.repeat // 2]
        print(f"rgb+hsv -> npz + jpg: {plain:.1f} frames/s; with durable=true (fsync of 4 files and their folders "
              f"per frame) {durable:.1f} frames/s: +{(1 / durable - 1 / plain) * 1000:.1f} ms per frame")

        n = args.plan_frames
        out = tmp_path / "plan"
        graph = build_graph({"representations": RGB_HSV, "batch_size": 64})
        t = time.perf_counter()
        run_export(graph, SyntheticSource(n), out)
        first = time.perf_counter() - t
        t = time.perf_counter()
        result = run_export(graph, SyntheticSource(n), out)
        rerun = time.perf_counter() - t
        assert result.stats["hsv"].skipped == n and result.stats["hsv"].computed == 0
        print(f"first export of {n} tiny frames: {first:.1f} s ({n / first:.0f} frames/s of engine overhead)")
        print(f"re-run with all {n} frames computed, each verified (size + mtime of its 2 files against its "
              f"record): {rerun:.3f} s (target 1 s: x{1 / rerun:.1f}; seed 5.4 s)")
        for name in ("rgb", "hsv"):  # a copy of the folder: every mtime differs, so every file is re-read (CRC-32)
            for p in (out / name / "npz").iterdir():
                os.utime(p)
        t = time.perf_counter()
        run_export(graph, SyntheticSource(n), out)
        touched = time.perf_counter() - t
        print(f"re-run after every file was touched (as after a copy): {touched:.2f} s (each file re-read once and "
              f"re-recorded; the next re-run is quick again)")
        print(f"peak RSS overall: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
