"""Benchmark of the camera-normals-from-depth kernels (vre_geometry._normals) and of the normals representations
on 960x540 frames, one thread.

Run from the repository root: python bench/bench_normals.py [--runs N] [--representation]
(--representation: only the representations, batches of 4 frames, with the reference SVD beside them)
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

try:
    import vre_geometry  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vre-geometry" / "src"))
from vre_geometry._normals import (  # noqa: E402
    intrinsics_from_fov,
    normals_from_depth_gradient,
    normals_from_depth_svd,
    normals_from_depth_svd_reference,
)

WIDTH, HEIGHT, FOV = 960, 540, 70.0
REFERENCE_FULL_FRAME_LIMIT_S = 30.0


def smooth_depth(height: int, width: int) -> np.ndarray:
    """A smooth synthetic scene: a tilted plane plus low-frequency sines, depth in [~3, ~9] (float32)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    d = 5.0 + 1.5 * (u / width) + 1.0 * (v / height)
    d += 0.6 * np.sin(u / 90.0) * np.cos(v / 70.0) + 0.3 * np.sin((u + 2.0 * v) / 45.0 + 1.0)
    return d.astype(np.float32)


def time_ms(fn, runs: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def reference_ms(depth: np.ndarray, intr: tuple[float, float, float, float], window: int) -> tuple[float, str]:
    """Reference time per full frame: measured on the full frame when a crop predicts it under the limit."""
    crop_rows = 32
    t0 = time.perf_counter()
    normals_from_depth_svd_reference(depth[:crop_rows], *intr, window)
    crop_s = time.perf_counter() - t0
    predicted_s = crop_s * depth.shape[0] / crop_rows
    if predicted_s < REFERENCE_FULL_FRAME_LIMIT_S:
        t0 = time.perf_counter()
        normals_from_depth_svd_reference(depth, *intr, window)
        return (time.perf_counter() - t0) * 1e3, "full 960x540 frame, timed once"
    return predicted_s * 1e3, (f"extrapolated from a {depth.shape[1]}x{crop_rows} crop "
                               f"(a full frame would take > ~{REFERENCE_FULL_FRAME_LIMIT_S:.0f} s)")


def cpu_and_wall_ms(fn, runs: int) -> tuple[list[float], list[float]]:
    """Per-call process CPU time and wall time in ms: on a shared machine the CPU time is the steadier figure."""
    fn()  # warm-up
    cpu, wall = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - t0) * 1e3)
    return cpu, wall


def bench_representations(depth: np.ndarray, runs: int, batch_size: int = 4,
                          reference: tuple[float, str] | None = None) -> None:
    """ms per frame of the normals representations' compute() on batches of ``batch_size`` 540p frames.

    ``reference``: the window-5 reference time already measured on the same frame (ms, how), if any.
    """
    from vre_geometry.normals import NormalsFromDepthGradient, NormalsFromDepthSVD
    from vrecore.graph.representation import Batch

    # a batch as the engine hands it over: (B, H, W, 1) float32, frames slightly different from each other
    frames = np.stack([depth * np.float32(1.0 + 0.01 * i) for i in range(batch_size)])[..., None]
    batch = Batch(indices=np.arange(batch_size), frames=None, deps={"depth": frames})
    svd = NormalsFromDepthSVD(name="n", sensor_fov=FOV, fov_axis="horizontal")
    intr = svd.intrinsics(HEIGHT, WIDTH)
    ref, how = reference or reference_ms(depth, intr, 5)
    print(f"reference normals_from_depth_svd_reference window=5: {ref:.0f} ms/frame ({how})")
    # the kernel alone on the same batch is timed too: the difference is the representation's own work
    # (depth preparation, invalid pixels, encoding), whatever the machine's load
    offset = NormalsFromDepthSVD(name="n", sensor_fov=FOV, fov_axis="horizontal", depth_offset=0.05)
    gradient = NormalsFromDepthGradient(name="n", sensor_fov=FOV, fov_axis="horizontal")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("kernel normals_from_depth_svd window=5 (for comparison)",
         lambda: normals_from_depth_svd(frames[..., 0], *intr, 5)),
        ("representation normals/depth-svd window=5", lambda: svd.compute(batch)),
        ("representation normals/depth-svd window=5 depth_offset=0.05", lambda: offset.compute(batch)),
        ("representation normals/depth-gradient", lambda: gradient.compute(batch)),
    ]
    n = max(5, runs // 2)
    for label, fn in cases:
        cpu, wall = cpu_and_wall_ms(fn, n)
        per_frame = statistics.median(wall) / batch_size
        print(f"{label}, batch of {batch_size}: {per_frame:.1f} ms/frame wall, "
              f"{statistics.median(cpu) / batch_size:.1f} ms/frame CPU (medians of {n} batches; min wall "
              f"{min(wall) / batch_size:.1f}); reference SVD {ref:.0f} ms/frame = {ref / per_frame:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per figure (median reported)")
    parser.add_argument("--representation", action="store_true",
                        help="time only the normals representations (batches of 4) and the reference")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    try:
        import torch  # not used by the kernels; pinned so that nothing in the process uses more threads
        torch.set_num_threads(1)
        torch_note = f"torch {torch.__version__} threads=1"
    except ImportError:
        torch_note = "torch not installed"
    depth = smooth_depth(HEIGHT, WIDTH)
    intr = intrinsics_from_fov(FOV, WIDTH, HEIGHT)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus visible, "
          f"python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}, {torch_note}")
    print(f"threads: numpy/BLAS 1 (env), opencv {cv2.getNumThreads()}")
    print(f"frame: {WIDTH}x{HEIGHT} float32 smooth depth, fov {FOV} deg, fx={intr[0]:.2f}")
    if args.representation:
        bench_representations(depth, args.runs)
        return

    references = {}
    for window in (5, 11):
        times = time_ms(lambda w=window: normals_from_depth_svd(depth, *intr, w), args.runs)
        fast = statistics.median(times)
        print(f"fast normals_from_depth_svd window={window}: {fast:.1f} ms/frame "
              f"(median of {args.runs}, min {min(times):.1f}, max {max(times):.1f})")
        ref, how = references[window] = reference_ms(depth, intr, window)
        print(f"reference normals_from_depth_svd_reference window={window}: {ref:.0f} ms/frame ({how})")
        print(f"speed-up window={window}: {ref / fast:.0f}x")
        crop = depth[200:264, 300:428]
        err = angle_deg(normals_from_depth_svd(crop, *intr, window), normals_from_depth_svd_reference(crop, *intr, window))
        print(f"max angle fast vs reference window={window} (64x128 crop): {np.nanmax(err):.2e} deg")

    batch = np.stack([depth] * 4)
    times = time_ms(lambda: normals_from_depth_svd(batch, *intr, 5), max(3, args.runs // 3))
    print(f"fast window=5 batch of 4: {statistics.median(times) / 4:.1f} ms/frame (median)")
    times = time_ms(lambda: normals_from_depth_gradient(depth, *intr), args.runs)
    print(f"gradient variant normals_from_depth_gradient: {statistics.median(times):.1f} ms/frame (median)")
    bench_representations(depth, args.runs, reference=references[5])


if __name__ == "__main__":
    main()
