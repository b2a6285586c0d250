"""Tiny random-weight stand-ins of vre-depth's checkpoints, for tests of vre-depth and of plugins that use it.

They have the real architectures (so they load through the same code and file layout as the published
weights) at a few thousand parameters; their outputs are meaningless but image-dependent.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["TINY_ARCHITECTURES", "byte_vocabulary", "save_in_hub_layout", "write_tiny_depth_model", "write_tiny_marigold"]

TINY_ARCHITECTURES = ("dpt", "dpt-hybrid", "da2")


def _tiny_configs() -> dict[str, object]:
    from transformers import BitConfig, DepthAnythingConfig, Dinov2Config, DPTConfig

    vit = {"hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 32,
           "image_size": 32, "patch_size": 16, "backbone_out_indices": [0, 1, 2, 3], "fusion_hidden_size": 8}
    bit = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[8, 16, 32],
                    embedding_size=8, out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True,
                    num_groups=4)
    dinov2 = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                          mlp_ratio=2, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    return {
        "dpt": DPTConfig(neck_hidden_sizes=[8, 8, 16, 16], **vit),
        "dpt-hybrid": DPTConfig(is_hybrid=True, backbone_config=bit, neck_hidden_sizes=[8, 16, 16, 16],
                                reassemble_factors=[1, 1, 1, 0.5], backbone_featmap_shape=[1, 32, 2, 2], **vit),
        "da2": DepthAnythingConfig(backbone_config=dinov2, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                                   fusion_hidden_size=8, head_hidden_size=4),
    }


def write_tiny_depth_model(name: str, folder: Path) -> Path:
    """Save a tiny random ``name`` model (one of TINY_ARCHITECTURES): config.json + model.safetensors."""
    import torch
    from transformers import AutoModelForDepthEstimation

    torch.manual_seed(0)
    model = AutoModelForDepthEstimation.from_config(_tiny_configs()[name])
    # With transformers' initialisation (std 0.02) the signal of such narrow layers dies out and the
    # disparity is a constant: He initialisation, and a positive bias before the final ReLU, keep
    # an image-dependent disparity with contrast to normalise.
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
    torch.nn.init.constant_(last.bias, 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def byte_vocabulary(root: Path, max_length: int) -> object:
    """A CLIP tokenizer over single characters, without merges (it encodes the empty prompt Marigold uses); its
    vocab.json and merges.txt are written into ``root / "vocab"``."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = {t: i for i, t in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])}
    (root / "vocab").mkdir(parents=True, exist_ok=True)
    (root / "vocab" / "vocab.json").write_text(json.dumps(vocab))
    (root / "vocab" / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(root / "vocab" / "vocab.json"), str(root / "vocab" / "merges.txt"),
                         model_max_length=max_length)


def save_in_hub_layout(pipe: object, root: Path) -> Path:
    """Save a MarigoldDepthPipeline (tokenizer from `byte_vocabulary(root)`) as the prs-eth repos lay it out:
    ``root / "pipeline"``, the tokenizer as vocab + merges rather than tokenizer.json."""
    folder = root / "pipeline"
    pipe.save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]
    tok = folder / "tokenizer"
    (tok / "tokenizer.json").unlink()
    for name in ("vocab.json", "merges.txt"):
        (tok / name).write_bytes((root / "vocab" / name).read_bytes())
    (tok / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}))
    return folder


def write_tiny_marigold(root: Path) -> Path:
    """A tiny random MarigoldDepthPipeline saved in the prs-eth repo layout (the files depth/marigold reads)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer: Any = byte_vocabulary(root, max_length=8)
    vocab = tokenizer.get_vocab()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=8,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, vocab_size=len(vocab),
        projection_dim=16, max_position_embeddings=8, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    scheduler = DDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing", clip_sample=False,
                              set_alpha_to_one=False, beta_schedule="scaled_linear")
    pipe = MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                 tokenizer=tokenizer, prediction_type="depth", scale_invariant=True,
                                 shift_invariant=True, default_denoising_steps=2, default_processing_resolution=32)
    return save_in_hub_layout(pipe, root)
