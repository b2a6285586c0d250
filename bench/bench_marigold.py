"""Seconds per 540p frame of depth/marigold (random weights of the real Stable Diffusion 2 architecture).

The pipeline is built from the published checkpoints' component configurations (UNet with 8 input channels,
Stable Diffusion 2's VAE and OpenCLIP text encoder: ~1.3B parameters, 5 GB in float32) with random weights, since
benchmarks must not need the Hub, saved as safetensors in a temporary folder and loaded through the
representation's own path. The output is meaningless; the speed is the real one.

    python bench/bench_marigold.py                       # lcm-v1-0, 4 steps, 768 px (pipeline=dronescapes2)
    python bench/bench_marigold.py --steps 1 --resolution 384 --device cuda
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_random_pipeline(folder: Path) -> Path:
    """A MarigoldDepthPipeline of the published size with random weights, in the prs-eth repo layout."""
    from diffusers import AutoencoderKL, LCMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vre_depth.testing import byte_vocabulary, save_in_hub_layout

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=96, in_channels=8, out_channels=4, layers_per_block=2,
                                block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
                                cross_attention_dim=1024, use_linear_projection=True,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=768)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                                num_hidden_layers=23, projection_dim=512, hidden_act="gelu"))
    tokenizer = byte_vocabulary(folder, max_length=77)
    scheduler = LCMScheduler(prediction_type="v_prediction", timestep_spacing="trailing", beta_schedule="scaled_linear",
                             clip_sample=False, set_alpha_to_one=False)
    pipe = MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                 tokenizer=tokenizer, prediction_type="depth", scale_invariant=True,
                                 shift_invariant=True, default_denoising_steps=4, default_processing_resolution=768)
    out = save_in_hub_layout(pipe, folder)
    params = sum(p.numel() for m in (unet, vae, text_encoder) for p in m.parameters())
    print(f"random Marigold pipeline: {params / 1e9:.2f} B parameters", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=768, help="processing_resolution (long side)")
    parser.add_argument("--frames", type=int, default=2, help="timed frames, after one warm-up frame")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from vre_depth.marigold import Marigold
    from vrecore.graph.representation import Batch

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_random_pipeline(Path(tmp))
        rep = Marigold(name="depth", variant="lcm-v1-0", weights_path=folder, denoising_steps=args.steps,
                       processing_resolution=args.resolution)
        rep.setup(args.device)
        frames = np.random.default_rng(0).integers(0, 256, (1, 540, 960, 3), dtype=np.uint8)
        rep.compute(Batch(indices=np.arange(1), frames=frames, deps={}))  # warm-up
        times = []
        for i in range(args.frames):
            started = time.perf_counter()
            rep.compute(Batch(indices=np.array([i + 1]), frames=frames, deps={}))
            times.append(time.perf_counter() - started)
    print(f"depth/marigold lcm-v1-0, {args.steps} steps, {args.resolution} px, 540p frame, {args.device}, "
          f"{torch.get_num_threads()} thread(s): {np.median(times):.1f} s/frame (runs: "
          f"{', '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
