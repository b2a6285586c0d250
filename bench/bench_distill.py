"""Student vs teacher: ms per frame of a `vre distill` student and of its teacher, side by side, at one input size.

    python bench/bench_distill.py [--student DIR/NAME.safetensors] [--teacher hed|mediapipe-selfie]
                                  [--size 270x480] [--frames 4] [--repeats 3] [--threads N] [--device cpu]

Both run through their representation classes as the engine runs them (compute, then resize to the frame) on the
shipped clip's first frames (640x360), batch 1, alternately (teacher frame, student frame, ...) so that the
load of a shared machine weighs on both alike; the medians and their ratio are printed with the load average.
HED runs with ``input_size`` = --size, the student at --size too (its ``input_size``); MediaPipe's selfie model
has a fixed input (144x256) and is timed as it is. Without --student, a 150k student with random weights and an
edge head stands in (speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    from vre_semantic.phg_mae import PHGMAEDistilSemantic
except ImportError:  # running from a checkout without the plugins installed
    root = Path(__file__).resolve().parents[1] / "plugins"
    sys.path[:0] = [str(root / "vre-semantic" / "src"), str(root / "vre-edges" / "src")]
    from vre_semantic.phg_mae import PHGMAEDistilSemantic
from vrecore.graph.representation import Batch, Representation


def clip_frames(n: int) -> np.ndarray:
    from vrecore.frames.video import open_video

    clip = next((Path(__file__).resolve().parents[1] / "src" / "vrecore" / "frames" / "footage").glob("*.mp4"))
    source = open_video(clip)
    try:
        return source.get_batch(list(range(n)))
    finally:
        source.close()


def random_student(folder: Path, size: tuple[int, int]) -> Path:
    """A 150k student file with random weights and an edge head (what `vre distill` writes, untrained)."""
    import torch

    from vre_semantic._distill_train import save_student
    from vre_semantic._phg_mae import PHGMAEDistil

    torch.manual_seed(0)
    net = PHGMAEDistil(6, in_channels=3, out_channels=1, rgb_offset=0, semantic_offset=0, num_classes=1)
    header = {"variant": "150k", "num_filters": 6, "head": "edges", "channels": 1, "classes": None, "colors": None,
              "inputs": ["rgb"], "input_channels": [3], "mean": [128.0] * 3, "std": [64.0] * 3,
              "input_size": list(size), "teacher": "hed", "teacher_type": "edges/hed"}
    path = folder / "random_student.safetensors"
    save_student({k: v.contiguous() for k, v in net.state_dict().items()}, header, path)
    return path


def teacher_of(name: str, size: tuple[int, int]) -> Representation:
    if name == "hed":
        from vre_edges.networks import HED

        return HED(name="hed", input_size=size)
    from vre_semantic.mediapipe_selfie import MediaPipeSelfie

    return MediaPipeSelfie(name="person")


def run_once(rep: Representation, frame: np.ndarray) -> float:
    t = time.perf_counter()
    batch = Batch(indices=np.arange(1), frames=frame[None], deps={})
    rep.resize(np.asarray(rep.compute(batch)), frame.shape[:2])
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, default=None, help="a NAME.safetensors written by vre distill")
    parser.add_argument("--teacher", default="hed", choices=("hed", "mediapipe-selfie"))
    parser.add_argument("--size", default="270x480", help="HxW the teacher (HED) and the student run at")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    assert len(size) == 2
    frames = clip_frames(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.student or random_student(Path(tmp), size)  # type: ignore[arg-type]
        student: Any = PHGMAEDistilSemantic(name="student", variant="150k", weights_path=str(path),
                                            input_size=list(size))
        teacher = teacher_of(args.teacher, size)  # type: ignore[arg-type]
        student.setup(args.device)
        teacher.setup(args.device if args.teacher == "hed" else "cpu")
        times: dict[str, list[float]] = {"teacher": [], "student": []}
        run_once(teacher, frames[0]), run_once(student, frames[0])  # warm-up: kernels chosen, caches filled
        for _ in range(args.repeats):
            for frame in frames:
                times["teacher"].append(run_once(teacher, frame))
                times["student"].append(run_once(student, frame))
    t_ms, s_ms = (statistics.median(times[k]) * 1e3 for k in ("teacher", "student"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = f"{args.size}" if args.teacher == "hed" else f"student {args.size}, selfie model 144x256"
    print(f"{args.teacher} teacher: {t_ms:8.1f} ms/frame | student {path.name if args.student else '(random 150k)'}:"
          f" {s_ms:7.1f} ms/frame | {t_ms / s_ms:5.1f}x faster | input {where}, frames 640x360, batch 1, "
          f"{torch.get_num_threads()} thread(s), {args.device}, load average {load:.1f}")


if __name__ == "__main__":
    main()
