"""Frames per second of vre-depth's transformers experts on 540p frames (random weights, real architectures).

Each expert is built from the architecture of its published checkpoint (same layers and widths, so the
same parameter count and cost) with random weights, since benchmarks must not need the Hub, and runs
through the representation's own path: batched preprocessing in torch, the model, disparity → depth.
The output quality is meaningless; the speed is the real one.

    python bench/bench_depth.py                      # CPU, batch 1 and 4, every expert
    python bench/bench_depth.py --device cuda --batch-sizes 1 4 16
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from vre_depth._models import DepthNet, model_input_size
from vre_depth.variants import DA2_VARIANTS, DPT_VARIANTS
from vrecore.plugin import WeightVariant


def _dpt_hybrid() -> object:
    from transformers import DPTConfig

    # DPTConfig's hybrid default backbone is the ResNet-50 (BiT) of the checkpoint.
    return DPTConfig(is_hybrid=True, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[256, 512, 768, 768],
                     reassemble_factors=[1, 1, 1, 0.5], backbone_featmap_shape=[1, 1024, 24, 24])


def _dpt_large() -> object:
    from transformers import DPTConfig

    return DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                     backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024])


def _da2(hidden: int, heads: int, neck: list[int], fusion: int) -> Callable[[], object]:
    def config() -> object:
        from transformers import DepthAnythingConfig, Dinov2Config

        backbone = Dinov2Config(hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=12, image_size=518,
                                patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False,
                                layerscale_value=1.0)
        return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=hidden, neck_hidden_sizes=neck,
                                   fusion_hidden_size=fusion)
    return config


# (type, variant, default input size, architecture); the parameter counts match the variants' num_params.
EXPERTS: list[tuple[str, WeightVariant, int, Callable[[], object]]] = [
    ("depth/dpt", DPT_VARIANTS["hybrid-midas"], 384, _dpt_hybrid),
    ("depth/dpt", DPT_VARIANTS["large"], 384, _dpt_large),
    ("depth/depth-anything-v2", DA2_VARIANTS["small"], 518, _da2(384, 6, [48, 96, 192, 384], 64)),
    ("depth/depth-anything-v2", DA2_VARIANTS["base"], 518, _da2(768, 12, [96, 192, 384, 768], 128)),
]


def _frames(batch: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


def bench(net: DepthNet, input_size: int, batch: int, height: int, width: int, seconds: float) -> tuple[float, int, float]:
    """(frames/s, batches timed, seconds timed) after one warm-up batch; measures for about ``seconds``."""
    frames = _frames(batch, height, width)
    net.predict(frames, input_size, (2.0, 98.0), 0.05)
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        net.predict(frames, input_size, (2.0, 98.0), 0.05)  # ends with a copy to the CPU: no sync needed
        done += 1
    elapsed = time.perf_counter() - start
    return done * batch / elapsed, done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per expert and batch size")
    parser.add_argument("--max-batch-seconds", type=float, default=60.0,
                        help="skip the larger batch sizes of an expert whose warm-up batch took longer than this")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = parser.parse_args()

    device = torch.device(args.device)
    threads = f", {torch.get_num_threads()} torch threads" if device.type == "cpu" else ""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"vre-depth benchmark: {args.height}x{args.width} uint8 frames, device {name}{threads}, "
          f"torch {torch.__version__}, random weights")
    torch.manual_seed(0)
    for type_name, variant, input_size, architecture in EXPERTS:
        if args.only and variant.name not in args.only:
            continue
        from transformers import AutoModelForDepthEstimation

        model = AutoModelForDepthEstimation.from_config(architecture()).eval().to(device)
        params = sum(p.numel() for p in model.parameters())
        pre = variant.meta["preprocess"]
        net = DepthNet(model, pre, device)
        h, w = model_input_size(args.height, args.width, input_size, keep_aspect_ratio=pre["keep_aspect_ratio"],
                                multiple_of=pre["multiple_of"])
        label = f"{type_name} variant={variant.name} params={params / 1e6:.1f}M input={h}x{w}"
        slow_batch = None
        for batch in sorted(args.batch_sizes):
            if slow_batch is not None:
                print(f"{label} batch={batch}: skipped (a batch of {slow_batch} took over "
                      f"{args.max_batch_seconds:.0f} s)")
                continue
            fps, batches, elapsed = bench(net, input_size, batch, args.height, args.width, args.seconds)
            print(f"{label} batch={batch}: {fps:.2f} frames/s ({batches} batches in {elapsed:.1f} s)", flush=True)
            if elapsed / batches > args.max_batch_seconds:
                slow_batch = batch
        net.close()


if __name__ == "__main__":
    main()
