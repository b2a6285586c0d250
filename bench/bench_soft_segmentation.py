"""Soft-segmentation benchmark: halftone and generalized boundaries, ms per 960x540 frame on one thread.

    python bench/bench_soft_segmentation.py [--frames 12] [--video PATH]

Frames come from PATH (resized to 960x540) or, by default, from the project's synthetic landscape clip.
Prints the median wall and CPU time per frame beside the seed tool's figures on this machine.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads its BLAS

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

try:
    from vre_edges._generalized_boundaries import generalized_boundaries
    from vre_edges._halftone import halftone
except ImportError:  # running from a checkout without the plugin installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vre-edges" / "src"))
    from vre_edges._generalized_boundaries import generalized_boundaries
    from vre_edges._halftone import halftone

WIDTH, HEIGHT = 960, 540
# The seed tool (VRE 1.18.6) measured on this machine, seconds per 960x540 frame.
SEED_SECONDS = {"halftone": (3.8, 4.7), "generalized boundaries": (2.2, 2.2)}


def video_frames(path: Path, n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frames.append(cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"no frames could be read from {path}")
    return np.stack(frames)


def sample_frames(n: int) -> np.ndarray:
    from vrecore.frames.sample import make_sample_clip

    with tempfile.TemporaryDirectory() as tmp:
        return video_frames(make_sample_clip(Path(tmp) / "clip.mp4", width=WIDTH, height=HEIGHT, frames=n), n)


def measure(fn: Callable[..., np.ndarray], frames: np.ndarray, **params: object) -> tuple[float, float, float]:
    """Median wall and CPU ms of one-frame calls, and wall ms per frame of one batched call."""
    fn(frames[:1], **params)  # warm the per-size caches
    wall, cpu = [], []
    for i in range(len(frames)):
        t, c = time.perf_counter(), time.thread_time()
        fn(frames[i : i + 1], **params)
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    fn(frames, **params)
    batched = (time.perf_counter() - t) * 1e3 / len(frames)
    return statistics.median(wall), statistics.median(cpu), batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--video", type=Path, default=None, help="a clip to take frames from")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = video_frames(args.video, args.frames) if args.video else sample_frames(args.frames)
    source = args.video.name if args.video else "synthetic landscape clip"
    print(f"{len(frames)} frames {WIDTH}x{HEIGHT} from {source}; one thread (numpy/BLAS/OpenCV)")
    cases: list[tuple[str, Callable[..., np.ndarray], dict[str, object]]] = [
        ("halftone", halftone, {}),
        ("halftone", halftone, {"antialias": True}),
        ("generalized boundaries", generalized_boundaries, {}),
        ("generalized boundaries", generalized_boundaries,
         {"adjust_to_rgb": False, "use_median_filtering": False, "max_channels": 8}),
    ]
    for name, fn, params in cases:
        wall, cpu, batched = measure(fn, frames, **params)
        lo, hi = SEED_SECONDS[name]
        seed = f"{lo:.1f} s" if lo == hi else f"{lo:.1f}-{hi:.1f} s"
        ratio = f"x{lo * 1e3 / wall:.0f}" if lo == hi else f"x{lo * 1e3 / wall:.0f}-{hi * 1e3 / wall:.0f}"
        label = name + (f" {params}" if params else " (defaults)")
        print(f"{label}: {wall:.1f} ms/frame median wall, {cpu:.1f} ms CPU, {batched:.1f} ms/frame batched "
              f"({len(frames)}); seed {seed}; speed-up {ratio}; target 50 ms: "
              f"{'met' if wall <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
