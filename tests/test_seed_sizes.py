"""A seed config without ``output_size`` stores each type at the seed's own size for it (the seed's repository configs,
exported with random-weight stand-ins of the learned models): DPT at its inference size, which follows the frame's
aspect, the normals computed from it at that size, SafeUAV (vre's phg-mae-distil) at the network's size."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from vrecore.cli.seed_config import translate_seed_config
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph

UPSTREAM = Path(__file__).parent / "seed_configs" / "upstream"


def seed_dpt_size(height: int, width: int) -> tuple[int, int]:
    """VRE 1.18.6's DepthDpt: ``get_size(384, 384, h, w, multiple_of=32)`` of vre_repository/depth/dpt/dpt_impl/utils.py,
    written out: the side whose scale to 384 is nearest 1 sets the scale, sides rounded (half to even) to 32."""
    scale_h, scale_w = 384 / height, 384 / width
    if abs(1 - scale_w) < abs(1 - scale_h):
        scale_h = scale_w
    else:
        scale_w = scale_h
    return int(np.round(scale_h * height / 32) * 32), int(np.round(scale_w * width / 32) * 32)


def stored(out: Path, name: str, frame: int) -> np.ndarray:
    return np.load(out / name / "npz" / f"{frame}.npz", allow_pickle=False)["arr_0"]


def upstream(name: str, keep: tuple[str, ...]) -> dict[str, Any]:
    cfg = yaml.safe_load((UPSTREAM / name).read_text())
    cfg["representations"] = {k: v for k, v in cfg["representations"].items() if k in keep}
    cfg["default_io_parameters"] = {"binary_format": "npz", "image_format": "not-set", "compress": False}
    cfg.pop("default_learned_parameters", None)
    return cfg


def test_seed_dpt_and_its_normals_at_the_dpt_inference_size(tmp_path: Path, sample_video: Path) -> None:
    pytest.importorskip("transformers")
    from vre_depth.testing import write_tiny_depth_model

    assert seed_dpt_size(180, 320) == (224, 384) and seed_dpt_size(540, 960) == (384, 672)
    assert seed_dpt_size(720, 540) == (512, 384)
    cfg = upstream("examples__vre_manual_representation_run__cfg.yaml", ("depth_dpt", "normals_svd(depth_dpt)"))
    config = translate_seed_config(cfg).config
    assert config["output_size"] == "native"  # no output_size in the seed's config: each type at its own size
    assert config["representations"]["depth_dpt"]["parameters"]["variant"] == "large"  # the seed's is DPT-Large
    weights = write_tiny_depth_model("dpt", tmp_path / "dpt")
    config["representations"]["depth_dpt"]["parameters"]["weights_path"] = str(weights)
    out = tmp_path / "out"
    run_export(build_graph(config), sample_video, out, frames=[0, 1], progress=False)
    depth, normals = stored(out, "depth_dpt", 1), stored(out, "normals_svd(depth_dpt)", 1)
    assert (depth.shape, depth.dtype) == ((224, 384, 1), np.float32)  # the seed's shape and dtype
    assert (normals.shape, normals.dtype) == ((224, 384, 3), np.float32)
    assert np.isfinite(depth).all() and depth.std() > 0 and not np.isnan(normals).any()


def test_seed_safeuav_logits_at_the_networks_size(tmp_path: Path, sample_video: Path) -> None:
    from vre_semantic.testing import write_phg_mae_weights

    cfg = upstream("examples__vre_streaming__cfg_rgb_safeuav.yaml", ("rgb", "safeuav"))
    cfg["representations"]["safeuav"]["parameters"]["variant"] = "model_150k"
    config = translate_seed_config(cfg).config
    config["representations"]["safeuav"]["parameters"]["weights_path"] = str(
        write_phg_mae_weights(tmp_path / "phg.safetensors", "150k"))
    out = tmp_path / "out"
    run_export(build_graph(config), sample_video, out, frames=[0], progress=False)
    logits, rgb = stored(out, "safeuav", 0), stored(out, "rgb", 0)
    # the seed's SafeUAV: the checkpoint's data_shape (540x960 for its published models), 8 classes, float16 logits
    assert (logits.shape, logits.dtype) == ((540, 960, 8), np.float16)
    assert (rgb.shape, rgb.dtype) == ((180, 320, 3), np.uint8)  # rgb stays at the frame's size
    assert not np.allclose(logits.astype(np.float32).sum(-1), 1.0, atol=1e-2)  # raw scores, not softmax
