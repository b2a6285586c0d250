"""Stores side by side (issue 23 §4): export to the directory store, to zarr on local disk and to zarr on a local
S3 server (moto's), then read the same 4-task export back from each.

    python bench/bench_stores.py [--frames 60] [--read-frames 60] [--repeat 3] [--workdir DIR]

Export: rgb+hsv of a synthetic 960x540 clip, frames/s (median of --repeat runs, each into a fresh location).
Read: rgb (uint8), hsv (float32), a float16 depth-like map and a uint8 class map, through MultiTaskDataset and a
torch DataLoader (batch 8) with 0 and 2 workers from each store, against a plain numpy.load loop over the
directory export. Every file is read once before timing (page cache; for S3, the server's memory).
zarr local is measured with the default codec (zstd) and with codec=none.
Targets: zarr on local disk exports at >= 0.8x the directory store; reading zarr with 2 workers >= 1.2x reading
the npz folder with 2 workers. The S3 server runs in a separate process on 127.0.0.1 (moto, in memory): its
figures measure the protocol's round trips, not a real network. Needs vrecore[cloud], moto[server], torch and the
vre-geometry plugin (for the class map).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reader import REPS, loader_fps, median, plain_loop, register_types, warm  # noqa: E402

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


def start_s3() -> subprocess.Popen:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/moto-api/")
            break
        except OSError:
            time.sleep(0.05)
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("bench")
    return server


def fresh(location: str, work: Path) -> None:
    if location.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        if fs.exists(location):
            fs.rm(location, recursive=True)
    else:
        shutil.rmtree(work / location, ignore_errors=True)


def export_fps(video: Path, location: str, frames: int, work: Path, reps: dict) -> float:
    from vrecore import build_graph, run_export

    fresh(location, work)
    target = location if location.startswith("s3://") else work / location
    options = {"codec": "none"} if "raw" in location else {}
    t = time.perf_counter()
    result = run_export(build_graph({"representations": reps, "batch_size": 16}), video, target,
                        frames=f"0..{frames}", store_options=options)
    seconds = time.perf_counter() - t
    assert result.ok, result.error
    return frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--read-frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    register_types()
    from vrecore.data import MultiTaskDataset
    from vrecore.frames.sample import make_sample_clip

    server = start_s3()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = args.workdir or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            n = max(args.frames, args.read_frames)
            video = work / f"clip540_{n}.mp4"
            if not video.exists():
                make_sample_clip(video, width=960, height=540, frames=n)
            stores = {"directory": "dir_out", "zarr, local disk": "out.zarr", "zarr codec=none, local": "raw_out.zarr",
                      "zarr, S3 (moto, 127.0.0.1)": "s3://bench/out"}
            print(f"export rgb+hsv, {args.frames} frames of 960x540, median of {args.repeat} (runs):")
            fps = {}
            for label, location in stores.items():
                runs = [export_fps(video, location, args.frames, work, RGB_HSV) for _ in range(args.repeat)]
                fps[label] = median(runs)
                print(f"  {label:28s} {fps[label]:7.1f} frames/s  ({', '.join(f'{r:.1f}' for r in runs)})")
            ratio = fps["zarr, local disk"] / fps["directory"]
            print(f"  zarr local / directory: x{ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")

            tasks = ["rgb", "hsv", "depth", "semantic"]
            print(f"read {tasks}, {args.read_frames} frames, DataLoader batch 8, median of {args.repeat}:")
            read: dict[tuple[str, int], float] = {}
            for label, location in stores.items():
                export_fps(video, location.replace("out", "four"), args.read_frames, work, REPS)
                where = location.replace("out", "four")
                dataset = MultiTaskDataset(where if where.startswith("s3://") else work / where, tasks)
                if label == "directory":
                    warm(work / where)
                    plain = median([plain_loop(work / where, tasks, args.read_frames) for _ in range(args.repeat)])
                    print(f"  plain numpy.load loop over the directory export: {plain:7.1f} frames/s")
                loader_fps(dataset, 0)  # warm: every object read once
                for workers in (0, 2):
                    runs = [loader_fps(dataset, workers) for _ in range(args.repeat)]
                    read[(label, workers)] = median(runs)
                    print(f"  {label:28s} {workers} workers: {read[(label, workers)]:7.1f} frames/s  "
                          f"({', '.join(f'{r:.1f}' for r in runs)})")
            for label in ("zarr, local disk", "zarr codec=none, local"):
                ratio = read[(label, 2)] / read[("directory", 2)]
                print(f"  {label}, 2 workers / npz folder, 2 workers: x{ratio:.2f} (target >= 1.2: "
                      f"{'met' if ratio >= 1.2 else 'NOT met'})")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
