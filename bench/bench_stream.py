"""Streaming benchmark: a 960x540 clip through rgb+hsv as fast as possible, framework overhead, normals.

    python bench/bench_stream.py [--frames 300] [--realtime-frames 100] [--repeat 3]

Prints plain lines with the ratio to each target:
  * rgb+hsv, the clip decoded as fast as possible, the hsv preview written as raw rgb24 (to
    /dev/null): output frames/s (target >= 25), in-process and through `vre stream`;
  * the same with the frames already in memory (the graph and output alone);
  * framework overhead per frame: a graph of only rgb (its compute returns the frame), frames
    from memory, through the whole streaming loop (newest-frame mailbox, graph, summaries,
    metrics) (target <= 2 ms); with and without a raw output;
  * the clip paced at its 25 frames/s like a camera, newest-frame mode: dropped frames, latency;
  * normals/depth-svd (vre-geometry) on a depth map, with test/grey as a stand-in depth, when
    that plugin type is installed (skipped with a message otherwise).
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vrecore.frames.sample import make_sample_clip
from vrecore.graph.build import build_graph
from vrecore.graph.registry import get_registry
from vrecore.streaming import (
    GraphProcessor,
    RawStdoutTarget,
    StreamSource,
    VideoFileSource,
    run_graph_stream,
)
from vrecore.testing import register_test_types

WIDTH, HEIGHT = 960, 540
RGB = {"rgb": {"type": "color/rgb"}}
RGB_HSV = {**RGB, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}
NORMALS_TYPE = "normals/depth-svd"


class MemorySource(StreamSource):
    """``n`` frames cycled from a few decoded ones: a source that costs nothing."""

    def __init__(self, frames: list[np.ndarray], n: int) -> None:
        self.frames, self.n, self.i = frames, n, 0

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        if self.i >= self.n:
            return None
        self.i += 1
        return self.frames[(self.i - 1) % len(self.frames)]

    def close(self) -> None:
        pass

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.frames[0].shape[1], self.frames[0].shape[0]


def decode(path: Path, n: int) -> list[np.ndarray]:
    src = VideoFileSource(path, realtime=False)
    frames = []
    with src:
        while len(frames) < n and (f := src.read()) is not None:
            frames.append(f)
    return frames


def run(source: StreamSource, reps: dict, *, output: str | None, drop: bool = False,  # type: ignore[no-untyped-def]
        max_frames: int | None = None):
    targets = []
    sink = None
    if output is not None:
        sink = open(os.devnull, "wb")  # noqa: SIM115 - closed below
        targets.append(RawStdoutTarget(sink, representation=output))
    t = time.perf_counter()
    summary = run_graph_stream(source, GraphProcessor(build_graph({"representations": reps})), targets,
                               drop_frames=drop, max_frames=max_frames)
    seconds = time.perf_counter() - t
    if sink is not None:
        sink.close()
    return summary, seconds


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def runs_text(values: list[float], fmt: str = "{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per throughput run")
    parser.add_argument("--realtime-frames", type=int, default=100, help="frames of the camera-paced run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, numpy {np.__version__}; "
          f"{WIDTH}x{HEIGHT}, {args.frames} frames per run, median of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_sample_clip(Path(tmp) / "clip540.mp4", width=WIDTH, height=HEIGHT,
                                frames=max(args.frames, args.realtime_frames))
        frames = decode(clip, 50)

        # 1. rgb+hsv from the clip, decoded as fast as possible, hsv preview written raw.
        fps = []
        for _ in range(args.repeat):
            summary, seconds = run(VideoFileSource(clip, realtime=False), RGB_HSV, output="hsv")
            assert summary.processed == args.frames, summary
            fps.append(summary.processed / seconds)
        hsv_ms = summary.representations["hsv"]["mean_ms"]
        print(f"rgb+hsv, clip decoded as fast as possible -> raw hsv: {median_of(fps):.1f} output frames/s "
              f"(runs: {runs_text(fps)}; target >= 25: x{median_of(fps) / 25:.2f}); hsv compute {hsv_ms:.2f} ms/frame, "
              f"latency p50 {summary.latency_p50_ms:.1f} ms")

        # 1b. The same through the command line, as a user runs it (the stream's own fps, start-up excluded).
        fps = []
        for _ in range(args.repeat):
            with open(os.devnull, "wb") as sink:
                r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "stream", f"source={clip}", "realtime=false",
                                    "pipeline=rgb_hsv", "output=-", "output_representation=hsv"],
                                   stdout=sink, stderr=subprocess.PIPE, text=True, timeout=600)
            m = re.search(r"(\d+) frames processed .* ([\d.]+) frames/s", r.stderr)
            assert r.returncode == 0 and m and int(m[1]) == args.frames, r.stderr
            fps.append(float(m[2]))
        print(f"vre stream source=clip.mp4 realtime=false pipeline=rgb_hsv output=- > /dev/null: {median_of(fps):.1f} "
              f"output frames/s (runs: {runs_text(fps)}; target >= 25: x{median_of(fps) / 25:.2f})")

        # 2. The same graph and output with the frames in memory: what the graph + output cost alone.
        fps = []
        for _ in range(args.repeat):
            summary, seconds = run(MemorySource(frames, args.frames), RGB_HSV, output="hsv")
            fps.append(summary.processed / seconds)
        print(f"rgb+hsv, frames from memory -> raw hsv: {median_of(fps):.1f} output frames/s "
              f"(runs: {runs_text(fps)}; target >= 25: x{median_of(fps) / 25:.2f})")

        # 3. Framework overhead: only rgb (compute returns the frame), frames from memory.
        n = max(args.frames, 1000)
        for label, output in (("no output", None), ("raw rgb output to /dev/null", "rgb")):
            per_frame = []
            for _ in range(args.repeat):
                summary, seconds = run(MemorySource(frames, n), RGB, output=output)
                assert summary.processed == n
                per_frame.append(seconds / n * 1e3)
            ms = median_of(per_frame)
            print(f"framework overhead per frame, graph of only rgb, {label}: {ms:.3f} ms "
                  f"(runs: {runs_text(per_frame, '{:.3f}')}; target <= 2 ms: x{2 / ms:.1f})")
        proc = GraphProcessor(build_graph({"representations": RGB}))
        for f in frames[:10]:
            proc.process(f)
        t = time.perf_counter()
        for k in range(n):
            proc.process(frames[k % len(frames)])
        print(f"  of which GraphProcessor.process (rgb, summaries included): "
              f"{(time.perf_counter() - t) / n * 1e3:.3f} ms/frame")

        # 4. Camera-like: the clip at its own 25 frames/s, newest-frame mode.
        summary, _ = run(VideoFileSource(clip, realtime=True), RGB_HSV, output="hsv", drop=True,
                         max_frames=args.realtime_frames)
        print(f"rgb+hsv, clip paced at 25 frames/s (camera-like), newest-frame mode: {summary.processed} of "
              f"{summary.received} frames processed ({summary.dropped} dropped), {summary.fps:.1f} frames/s, latency "
              f"p50 {summary.latency_p50_ms:.1f} p90 {summary.latency_p90_ms:.1f} p99 {summary.latency_p99_ms:.1f} ms")

        # 5. Normals from a depth map (vre-geometry), test/grey standing in for a depth estimator.
        registry = get_registry()
        if NORMALS_TYPE not in registry.types:
            print(f"normals: skipped: type '{NORMALS_TYPE}' is not installed (vre-geometry does not register it "
                  f"yet; `vre list` shows the installed types)")
        else:
            register_test_types(registry)
            reps = {"rgb": {"type": "color/rgb"}, "depth": {"type": "test/grey", "export": False},
                    "normals": {"type": NORMALS_TYPE, "dependencies": ["depth"]}}
            fps = []
            for _ in range(args.repeat):
                summary, seconds = run(VideoFileSource(clip, realtime=False), reps, output="normals",
                                       max_frames=min(args.frames, 60))
                fps.append(summary.processed / seconds)
            ms = summary.representations["normals"]["mean_ms"]
            print(f"rgb + grey-as-depth + {NORMALS_TYPE} -> raw normals: {median_of(fps):.1f} output frames/s "
                  f"(runs: {runs_text(fps)}; no target set, x{median_of(fps) / 25:.2f} of a 25 frames/s camera); "
                  f"normals {ms:.1f} ms/frame")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
