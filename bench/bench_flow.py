"""Flow and SIFT benchmark: ms per 960x540 frame of the vre-flow types (and Canny on colour), through their classes.

    python bench/bench_flow.py [--frames 6] [--repeats 2] [--device cpu|cuda] [--threads N] [--large]

DIS (three presets), Farneback and SIFT run on the CPU, batch 1, median over the frames; RAFT-small (12 and 4
iterations) and RIFE run on --device with weights made here (random init: speed does not depend on them), batch 1
and 4; --large adds RAFT-large. Every flow is timed as the engine runs it: pairs of frames t, t + 1, compute, then
resize to the frame. Canny on colour (the seed's way) is compared with Canny on grey. Frames come from the
project's synthetic landscape clip (a camera flying over a map). Prints plain lines with ratios and the load
average, on which the figures of a shared machine depend.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from vre_flow.testing import make_test_weights, neighbour_batch
except ImportError:  # running from a checkout without the plugin installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vre-flow" / "src"))
    from vre_flow.testing import make_test_weights, neighbour_batch
from timing import median_ms

from vre_flow.classical import DISFlow, FarnebackFlow
from vre_flow.learned import RAFTFlow, RIFEFlow
from vre_flow.sift import SIFT
from vrecore.graph.representation import Batch, Representation

WIDTH, HEIGHT = 960, 540
SEED_SIFT_MS = (800.0, 1100.0)  # the seed tool (VRE 1.18.6, numpy SIFT) on this machine, per 960x540 frame


def sample_frames(n: int) -> np.ndarray:
    from vrecore.frames.sample import make_sample_clip
    from vrecore.frames.video import open_video

    with tempfile.TemporaryDirectory() as tmp:
        with open_video(make_sample_clip(Path(tmp) / "clip.mp4", width=WIDTH, height=HEIGHT, frames=n)) as source:
            return source.get_batch(list(range(n)))


def per_frame_ms(rep: Representation, frames: np.ndarray, batch: int, repeats: int,
                 sync: Callable[[], None] = lambda: None) -> float:
    """Median ms per frame of compute + resize over batches of ``batch`` frames (after a warm-up batch)."""
    offsets = rep.frame_offsets()

    def run(start: int) -> None:
        indices = np.arange(start, start + batch)
        b = (neighbour_batch(offsets, frames, indices) if offsets else
             Batch(indices=indices, frames=frames[indices], deps={"rgb": frames[indices]}))
        rep.resize(np.asarray(rep.compute(b)), frames.shape[1:3])

    # Batches of frames that all have a frame after them: forward flow only, as for every frame but the last.
    starts = list(range(0, len(frames) - batch, batch))

    return median_ms(run, starts, batch, repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="passes over the frames for the learned types")
    parser.add_argument("--device", default="cpu", help="where RAFT and RIFE run: cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: theirs)")
    parser.add_argument("--large", action="store_true", help="also RAFT-large (about 5x RAFT-small's time)")
    args = parser.parse_args()

    import cv2
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    frames = sample_frames(args.frames)
    print(f"{len(frames)} frames {WIDTH}x{HEIGHT} from the synthetic landscape clip; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; learned types on {args.device}")

    classical: list[tuple[str, Representation]] = [
        *((f"DIS {p}", DISFlow(name="dis", preset=p)) for p in ("ultrafast", "fast", "medium")),
        ("Farneback", FarnebackFlow(name="farneback")),
    ]
    for label, rep in classical:
        print(f"{label}: {per_frame_ms(rep, frames, 1, 1):.1f} ms/frame (cpu, batch 1)")

    sift_ms = per_frame_ms(SIFT(name="sift"), frames, 1, 1)
    lo, hi = SEED_SIFT_MS
    print(f"SIFT: {sift_ms:.1f} ms/frame (cpu, batch 1); seed {lo:g}-{hi:g} ms, speed-up x{lo / sift_ms:.0f}-"
          f"{hi / sift_ms:.0f}")
    half = per_frame_ms(SIFT(name="sift", process_scale=0.5), frames, 1, 1)
    print(f"SIFT process_scale 0.5: {half:.1f} ms/frame (cpu, batch 1); x{sift_ms / half:.1f} faster")

    from vre_edges.canny import Canny

    grey, colour = (per_frame_ms(Canny(name="canny", color=c), frames, 1, 3) for c in (False, True))
    print(f"Canny on grey / on colour: {grey:.1f} / {colour:.1f} ms/frame; colour x{colour / grey:.1f} slower")

    with tempfile.TemporaryDirectory() as tmp:
        learned: list[tuple[str, Any, str]] = [("RAFT-small, 12 iterations", RAFTFlow(name="raft", variant="small"),
                                                "raft-small"),
                                               ("RAFT-small, 4 iterations",
                                                RAFTFlow(name="raft", variant="small", iters=4), "raft-small"),
                                               ("RIFE HDv2", RIFEFlow(name="rife"), "rife")]
        if args.large:
            learned.append(("RAFT-large, 12 iterations", RAFTFlow(name="raft"), "raft-large"))
        for label, rep, kind in learned:
            rep.weights_path = str(make_test_weights(kind, Path(tmp) / f"{kind}.safetensors"))
            rep.setup(args.device)
            one = per_frame_ms(rep, frames, 1, args.repeats, sync)
            four = per_frame_ms(rep, frames, 4, args.repeats, sync) if len(frames) > 4 else float("nan")
            print(f"{label}: {one:.0f} ms/frame ({args.device}, batch 1), {four:.0f} (batch 4)")
            rep.teardown()


if __name__ == "__main__":
    main()
