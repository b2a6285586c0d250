"""Reader benchmark: MultiTaskDataset frames/s over a 4-task 540p export against a plain numpy.load loop.

    python bench/bench_reader.py [--frames 300] [--stats-frames 1000] [--repeat 3] [--workdir DIR]

The export holds rgb (uint8, 3 channels), hsv (float32, 3), a depth-like float16 one-channel map and a
semantic map (uint8 class indices): 9.2 MB a frame. Everything is read once before timing, so the files come
from the page cache (what a training epoch after the first sees). The plain loop, numpy.load of every task's
file of every frame, is the limit; MultiTaskDataset goes through a torch DataLoader (batch 8, its collate_fn)
with 0 and 2 workers. Targets: >= 80% of the plain loop with 0 workers, faster with 2 workers than with 0.
Statistics: one pass over --stats-frames frames of rgb and depth (no cache), 0 and 2 workers.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

REPS = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "depth": {"type": "test/grey", "output_dtype": "float16"},
    "scene": {"type": "test/scene-semantic", "export": False},
    "semantic": {"type": "semantic/map", "dependencies": ["scene"],
                 "parameters": {"table": {"ground": "land", "building": "houses", "sky": "sky"},
                                "target_classes": ["land", "houses", "sky"]}},
}


def register_types() -> None:
    from vre_geometry.testing import register_scene_types
    from vrecore.testing import register_test_types

    register_scene_types(register_test_types())


def make_export(work: Path, frames: int, reps: dict, name: str, binary_format: str = "npz") -> Path:
    from vrecore import build_graph, run_export
    from vrecore.frames.sample import make_sample_clip

    out = work / f"{name}_{frames}"
    if (out / "rgb" / "npz" / f"{frames - 1}.npz").exists():
        return out
    video = work / f"clip540_{frames}.mp4"
    if not video.exists():
        make_sample_clip(video, width=960, height=540, frames=frames)
    shutil.rmtree(out, ignore_errors=True)
    assert run_export(build_graph({"representations": reps, "batch_size": 16, "binary_format": binary_format}),
                      video, out).ok
    return out


def warm(out: Path) -> int:
    total = 0
    for f in out.glob("*/npz/*.npz"):
        total += len(f.read_bytes())
    return total


def plain_loop(out: Path, tasks: list[str], frames: int) -> float:
    paths = [[out / t / "npz" / f"{i}.npz" for t in tasks] for i in range(frames)]
    t0 = time.perf_counter()
    for row in paths:
        for p in row:
            with np.load(p, allow_pickle=False) as z:
                z["arr_0"]
    return frames / (time.perf_counter() - t0)


class PlainDataset:
    """The reference: numpy.load of each task's file as tensors, batched by torch's default_collate."""

    def __init__(self, out: Path, tasks: list[str], frames: int) -> None:
        self.paths = [{t: out / t / "npz" / f"{i}.npz" for t in tasks} for i in range(frames)]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        import torch

        out = {}
        for task, path in self.paths[i].items():
            with np.load(path, allow_pickle=False) as z:
                out[task] = torch.from_numpy(z["arr_0"])
        return out


def loader_fps(dataset, workers: int) -> float:
    from torch.utils.data import DataLoader

    collate = getattr(dataset, "collate_fn", None)
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, persistent_workers=False,
                        **({"collate_fn": collate} if collate else {}))
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch[1]) if isinstance(batch, (tuple, list)) else len(next(iter(batch.values())))
    assert n == len(dataset)
    return n / (time.perf_counter() - t0)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def measure(out: Path, frames: int, repeat: int, label: str) -> None:
    from vrecore.data import MultiTaskDataset

    tasks = ["rgb", "hsv", "depth", "semantic"]
    size = warm(out)
    print(f"{label}: {frames} frames x {len(tasks)} tasks at 960x540, {size / frames / 1e6:.1f} MB a frame on disk")
    dataset = MultiTaskDataset(out, tasks)
    if label == "npz":
        print("  item:", {t: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for t, v in dataset[0][0].items()})
    plain, zero, two, direct, ref0, ref2 = [], [], [], [], [], []
    reference = PlainDataset(out, tasks, frames)
    for _ in range(repeat):
        plain.append(plain_loop(out, tasks, frames))
        ref0.append(loader_fps(reference, 0))
        ref2.append(loader_fps(reference, 2))
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        direct.append(len(dataset) / (time.perf_counter() - t0))
        zero.append(loader_fps(dataset, 0))
        two.append(loader_fps(dataset, 2))
    p, z, w, d = median(plain), median(zero), median(two), median(direct)
    print(f"  plain numpy.load loop:          {p:7.1f} frames/s  (runs {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"  dataset[i] loop:                {d:7.1f} frames/s  ({d / p:.0%} of the plain loop)")
    print(f"  DataLoader, 0 workers, batch 8: {z:7.1f} frames/s  ({z / p:.0%} of the plain loop; target >= 80%: "
          f"{'met' if z >= 0.8 * p else 'NOT met'})  (runs {', '.join(f'{v:.0f}' for v in zero)})")
    print(f"  DataLoader, 2 workers, batch 8: {w:7.1f} frames/s  (x{w / z:.2f} of 0 workers; target > x1: "
          f"{'met' if w > z else 'NOT met'})  (runs {', '.join(f'{v:.0f}' for v in two)})")
    r0, r2 = median(ref0), median(ref2)
    print(f"  reference, numpy.load items + torch's default_collate: 0 workers {r0:.1f}, 2 workers {r2:.1f} frames/s "
          f"(x{r2 / r0:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--stats-frames", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the clips and exports here (default: a temporary folder)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    register_types()
    from vrecore.data import MultiTaskDataset

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for binary_format in ("npz", "npz-compressed"):
            out = make_export(work, args.frames, REPS, f"four_tasks_{binary_format}", binary_format)
            measure(out, args.frames, args.repeat, binary_format)

        if args.stats_frames:
            stats_out = make_export(work, args.stats_frames, {k: REPS[k] for k in ("rgb", "depth")}, "stats")
            warm(stats_out)
            for workers in (0, 2):
                ds = MultiTaskDataset(stats_out, ["rgb", "depth"], cache_statistics=False, stats_workers=workers,
                                      progress=False)
                t0 = time.perf_counter()
                ds.compute_statistics()
                seconds = time.perf_counter() - t0
                print(f"statistics of rgb + depth over {args.stats_frames} frames, {workers} workers: {seconds:.1f} s "
                      f"({args.stats_frames / seconds:.0f} frames/s)")


if __name__ == "__main__":
    main()
