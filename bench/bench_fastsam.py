"""FastSAM benchmark: ms per 960x540 frame of soft-segmentation/fastsam (FastSAM-s and -x), and where the time goes.

    python bench/bench_fastsam.py [--frames 4] [--repeats 1] [--device cpu|cuda] [--threads N] [--no-x]
                                  [--input-size 1024]

Weights are made here (random init; `vre_edges._yolov8_seg.YoloV8Seg` initialises the DFL bins as every checkpoint
has them): the network's time does not depend on them, but the post-processing's does, through the number of masks
and the size of their boxes. An untrained network keeps the 300 masks it may (every class probability is near 0.5,
above ``conf`` 0.4) with boxes of about 15 strides a side, a heavy case: the masks kept are printed with the times.
Each frame is timed as the engine runs it: compute (resize to the network's size, network, NMS, full-frame rule,
masks, instance map) then resize to the frame; the network and the post-processing are also timed apart. Frames come
from the project's synthetic landscape clip. Prints plain lines with the load average, on which the figures of a
shared machine depend.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    from vre_edges.fastsam import FastSAM
except ImportError:  # running from a checkout without the plugin installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vre-edges" / "src"))
    from vre_edges.fastsam import FastSAM
from timing import median_ms

from vrecore.graph.representation import Batch

WIDTH, HEIGHT = 960, 540


def sample_frames(n: int) -> np.ndarray:
    from vrecore.frames.sample import make_sample_clip
    from vrecore.frames.video import open_video

    with tempfile.TemporaryDirectory() as tmp:
        with open_video(make_sample_clip(Path(tmp) / "clip.mp4", width=WIDTH, height=HEIGHT, frames=n)) as source:
            return source.get_batch(list(range(n)))


def bench(variant: str, frames: np.ndarray, args: argparse.Namespace, weights: Path,
          sync: Callable[[], None]) -> None:
    import torch

    from vre_edges import _fastsam

    rep = FastSAM(name="fastsam", variant=variant, weights_path=str(weights), input_size=args.input_size)
    rep.setup(args.device)
    size = _fastsam.network_size(HEIGHT, WIDTH, args.input_size)
    for batch in (1, 2) if len(frames) >= 3 else (1,):
        starts = list(range(0, len(frames) - batch + 1, batch))

        def whole(start: int, batch: int = batch) -> None:
            ix = np.arange(start, start + batch)
            rep.resize(rep.compute(Batch(indices=ix, frames=frames[ix], deps={})), (HEIGHT, WIDTH))

        total = median_ms(whole, starts, batch, args.repeats, sync)
        print(f"FastSAM-{variant} at {size[1]}x{size[0]}: {total:.0f} ms/frame ({args.device}, batch {batch})")
    with torch.inference_mode():
        x = _fastsam.preprocess(frames[:1], size, rep._device)
        network = median_ms(lambda _: rep._model(x), [0], 1, max(args.repeats, 2), sync)
        pred, proto = rep._model(x)
        rows = _fastsam.full_frame_rule(_fastsam.detections(pred[0], rep.conf, rep.iou, 1), *size)
        masks = median_ms(lambda _: _fastsam.instance_maps(pred, proto, rep.conf, rep.iou, 1), [0], 1,
                          max(args.repeats, 2), sync)
    print(f"  network {network:.0f} ms; post-processing {masks:.0f} ms for {len(rows)} masks (boxes "
          f"{float((rows[:, 2] - rows[:, 0]).mean()):.0f} x {float((rows[:, 3] - rows[:, 1]).mean()):.0f} px on "
          "average)")
    rep.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1, help="passes over the frames")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--input-size", type=int, default=1024, help="the network's longer side (the seed: 1024)")
    parser.add_argument("--no-x", action="store_true", help="skip FastSAM-x (about 6x FastSAM-s's time)")
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from vre_edges._yolov8_seg import YoloArch, YoloV8Seg

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    frames = sample_frames(args.frames)
    print(f"{len(frames)} frames {WIDTH}x{HEIGHT} from the synthetic landscape clip; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"on {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        for variant, reg_max in (("s", 16), ("x", 26))[: 1 if args.no_x else 2]:
            torch.manual_seed(0)
            weights = Path(tmp) / f"fastsam-{variant}.safetensors"
            save_file(YoloV8Seg(YoloArch(variant, reg_max=reg_max)).state_dict(), str(weights))
            bench(variant, frames, args, weights, sync)


if __name__ == "__main__":
    main()
