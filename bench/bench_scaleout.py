"""Scale-out benchmark: one process against two workers, Ray against local workers, placement.

    python bench/bench_scaleout.py [--frames 200] [--no-ray]

A compute-bound graph (HED edges with the packaged BSDS500 weights at 270x480, on a 540p clip) over
--frames frames; every process runs with threads=1 (one core each), start-up included. Prints the
times, the scaling efficiency t1 / (2 t2) (target >= 0.90 on 2 cores), Ray's overhead against the
local workers (target <= 10%), and placement on two CPU "devices" against one process. Figures go to
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from vrecore.export.run import run_export
from vrecore.frames.sample import make_sample_clip
from vrecore.graph.build import build_graph

HED = {"rgb": {"type": "color/rgb", "export": False},
       "hed": {"type": "edges/hed", "parameters": {"input_size": [270, 480]}, "batch_size": 4}}
SPLIT = {"rgb": {"type": "color/rgb"},
         "hed": {"type": "edges/hed", "parameters": {"input_size": [270, 480]}, "batch_size": 4},
         "halftone": {"type": "soft-segmentation/halftone", "dependencies": ["rgb"], "batch_size": 4}}


def timed(video: Path, out: Path, reps: dict[str, Any], frames: int, **options: Any) -> float:
    shutil.rmtree(out, ignore_errors=True)
    graph = build_graph({"representations": reps})
    t = time.perf_counter()
    result = run_export(graph, video, out, frames=f"0..{frames}", threads=1, **options)
    seconds = time.perf_counter() - t
    assert result.ok, result.error
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        video = make_sample_clip(tmp_path / "clip540.mp4", width=960, height=540, frames=args.frames)
        timed(video, tmp_path / "warm", HED, 4)  # converts the HED weights into the cache once
        t1 = timed(video, tmp_path / "one", HED, args.frames)
        t2 = timed(video, tmp_path / "two", HED, args.frames, workers=2)
        print(f"HED {args.frames} frames at 540p (network at 270x480), threads=1 per process:")
        print(f"  workers=1: {t1:.1f} s ({t1 / args.frames * 1000:.0f} ms/frame)")
        print(f"  workers=2: {t2:.1f} s; scaling efficiency t1/(2 t2) = {t1 / (2 * t2):.2f} (target 0.90; "
              f"the paper: 0.72 at 8 GPUs)")
        if not args.no_ray:
            timed(video, tmp_path / "ray-warm", HED, 4, workers=2, runner="ray")  # starts the local Ray instance
            tr = timed(video, tmp_path / "ray", HED, args.frames, workers=2, runner="ray")
            print(f"  runner=ray, 2 actors (Ray already up): {tr:.1f} s; overhead against local workers "
                  f"{(tr / t2 - 1) * 100:+.1f}% (target <= 10%)")
        ts = timed(video, tmp_path / "split1", SPLIT, args.frames)
        tp = timed(video, tmp_path / "split2", SPLIT, args.frames, placement={"hed": "cpu", "*": "cpu:1"})
        print(f"rgb + HED + halftone, {args.frames} frames: one process {ts:.1f} s; placement HED on cpu, the rest on "
              f"cpu:1 (2 processes): {tp:.1f} s (x{ts / tp:.2f})")


if __name__ == "__main__":
    main()
