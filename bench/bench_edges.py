"""Edge benchmark: ms per 960x540 frame of every vre-edges type, through the representation classes.

    python bench/bench_edges.py [--frames 8] [--repeats 3] [--device cpu|cuda] [--threads N] [--skip-full-hed]

Canny, halftone and generalized boundaries run on the CPU (batch 1, median over the frames) and are compared
with the seed tool's figures and the 50 ms target. HED runs at full size and at input_size 270x480, with batches
of 1 and 4; DexiNed at 270x480 (random weights made here: speed does not depend on them). The learned types run
on --device over the first 4 frames, --repeats times, and are timed as the engine runs them: compute, then
resize to the frame. Frames come from the
project's synthetic landscape clip. Prints plain lines with ratios; the load average is printed because the
figures of a shared machine depend on it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from vre_edges.canny import Canny
except ImportError:  # running from a checkout without the plugin installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vre-edges" / "src"))
    from vre_edges.canny import Canny
from vre_edges.networks import HED, DexiNed
from vre_edges.soft_segmentation import GeneralizedBoundaries, Halftone
from vrecore.graph.representation import Batch, Representation

WIDTH, HEIGHT = 960, 540
TARGET_MS = 50.0
# The seed tool (VRE 1.18.6) on this machine, ms per 960x540 frame (Canny: OpenCV on the grey image).
SEED_MS = {"canny": (2.3, 2.3), "halftone": (3800.0, 4700.0), "generalized boundaries": (2200.0, 2200.0)}


def sample_frames(n: int) -> np.ndarray:
    from vrecore.frames.sample import make_sample_clip
    from vrecore.frames.video import open_video

    with tempfile.TemporaryDirectory() as tmp:
        source = open_video(make_sample_clip(Path(tmp) / "clip.mp4", width=WIDTH, height=HEIGHT, frames=n))
        try:
            return source.get_batch(list(range(n)))
        finally:
            source.close()


def timed(run: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    t = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - t


def per_frame_ms(rep: Representation, frames: np.ndarray, batch: int, repeats: int,
                 sync: Callable[[], None] = lambda: None) -> float:
    """Median ms per frame of compute + resize to the frame over batches of ``batch`` frames (after a warm-up)."""
    def run(chunk: np.ndarray) -> None:
        b = Batch(indices=np.arange(len(chunk)), frames=chunk, deps={"rgb": chunk})
        rep.resize(np.asarray(rep.compute(b)), chunk.shape[1:3])

    chunks = [frames[k:k + batch] for k in range(0, len(frames) - batch + 1, batch)]
    timed(lambda: run(chunks[0]), sync)
    times = [timed(lambda c=c: run(c), sync) / batch for _ in range(repeats) for c in chunks]  # type: ignore[misc]
    return statistics.median(times) * 1e3


def dexined_test_weights(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    from vre_edges._dexined import DexiNed as Network

    torch.manual_seed(0)
    path = folder / "dexined_biped.safetensors"
    save_file(Network().state_dict(), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames for the learned types")
    parser.add_argument("--device", default="cpu", help="where HED and DexiNed run: cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-full-hed", action="store_true", help="skip HED at 540x960 (slow on a CPU)")
    args = parser.parse_args()

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    frames = sample_frames(args.frames)
    print(f"{len(frames)} frames {WIDTH}x{HEIGHT} from the synthetic landscape clip; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"learned types on {args.device}")

    procedural: list[tuple[str, Representation]] = [
        ("canny", Canny(name="canny")),
        ("halftone", Halftone(name="halftone")),
        ("generalized boundaries", GeneralizedBoundaries(name="gb")),
    ]
    for label, rep in procedural:
        ms = per_frame_ms(rep, frames, 1, 1)
        lo, hi = SEED_MS[label]
        seed = f"{lo:g} ms" if lo == hi else f"{lo:g}-{hi:g} ms"
        ratio = f"x{lo / ms:.1f}" if lo == hi else f"x{lo / ms:.0f}-{hi / ms:.0f}"
        print(f"{label}: {ms:.1f} ms/frame (cpu, batch 1); target {TARGET_MS:g} ms: "
              f"{'met' if ms <= TARGET_MS else 'MISSED'}; seed {seed}, speed-up {ratio}")

    few = frames[:4]
    hed_ms: dict[tuple[str, int], float] = {}
    sizes = [("270x480", [270, 480])] if args.skip_full_hed else [("540x960", None), ("270x480", [270, 480])]
    for label, size in sizes:
        rep = HED(name="hed", input_size=size)
        rep.setup(args.device)
        for batch in (1, 4):
            hed_ms[label, batch] = per_frame_ms(rep, few, batch, args.repeats, sync)
            batching = f"; batch 4 vs 1: x{hed_ms[label, 1] / hed_ms[label, 4]:.2f}" if batch == 4 else ""
            print(f"HED at {label}: {hed_ms[label, batch]:.0f} ms/frame ({args.device}, batch {batch}){batching}")
        rep.teardown()
    if not args.skip_full_hed:
        for batch in (1, 4):
            print(f"HED 270x480 vs 540x960, batch {batch}: x{hed_ms['540x960', batch] / hed_ms['270x480', batch]:.2f}"
                  " faster")

    with tempfile.TemporaryDirectory() as tmp:
        rep = DexiNed(name="dexined", input_size=[270, 480], weights_path=dexined_test_weights(Path(tmp)))
        rep.setup(args.device)
        for batch in (1, 4):
            ms = per_frame_ms(rep, few, batch, args.repeats, sync)
            print(f"DexiNed at 270x480: {ms:.0f} ms/frame ({args.device}, batch {batch}); "
                  f"vs HED at 270x480: x{ms / hed_ms['270x480', batch]:.2f} the time")
        rep.teardown()


if __name__ == "__main__":
    main()
