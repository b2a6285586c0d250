"""vre-edges as installed: discovery without torch, `vre list`, the Hydra presets, and an export of the demo preset."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

TYPES = ("edges/canny", "edges/hed", "edges/dexined", "soft-segmentation/halftone",
         "soft-segmentation/generalized-boundaries", "soft-segmentation/fastsam")


def _vre(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True, timeout=120)


def test_vre_list_shows_the_types() -> None:
    r = _vre("list")
    assert r.returncode == 0, r.stderr
    for type_name in TYPES:
        assert f"{type_name}  [vre-edges]" in r.stdout
    assert "parameters: threshold1=100.0, threshold2=200.0, aperture_size=3, l2_gradient=False" in r.stdout


def test_discovery_and_the_classes_import_no_torch() -> None:
    code = ("import sys; from vrecore.graph.registry import get_registry; types = get_registry().types; "
            f"[types[t].load() for t in {TYPES!r}]; "
            "print(sorted(m for m in ('torch', 'h5py', 'safetensors', 'vre_edges._hed', 'vre_edges._dexined', "
            "'vre_edges._fastsam', 'vre_edges._yolov8_seg') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _composed(*overrides: str) -> dict[str, Any]:
    """The config `vre export` composes (Hydra, through the plugin's registered config path)."""
    from omegaconf import OmegaConf

    r = _vre("export", "--cfg", "job", *overrides)
    assert r.returncode == 0, r.stderr
    config = OmegaConf.to_container(OmegaConf.create(r.stdout))
    assert isinstance(config, dict)
    return {str(k): v for k, v in config.items()}


def test_presets() -> None:
    from vrecore.cli.app import demo_presets

    assert "edges_demo" in demo_presets()
    everything = _composed("pipeline=edges")["representations"]
    assert sorted(spec["type"] for name, spec in everything.items() if name != "rgb") == sorted(TYPES)


def test_export_of_the_demo_preset(sample_video: Path, tmp_path: Path, hed_h5: Path) -> None:
    from vrecore import build_graph, load_npz, run_export

    config = _composed("pipeline=edges_demo", "image_format=png")
    assert config["representations"]["hed"]["parameters"] == {"input_size": [180, 320]}
    out = tmp_path / "export"
    result = run_export(build_graph(config), sample_video, out, frames="0..3")
    assert result.ok and sorted(result.stats) == ["canny", "generalized_boundaries", "halftone", "hed", "rgb"]
    forms = {"canny": ("bool", (180, 320)), "hed": ("float16", (180, 320)),
             "halftone": ("float16", (180, 320, 4)), "generalized_boundaries": ("float16", (180, 320, 3))}
    for name, (dtype, shape) in forms.items():
        assert result.stats[name].computed == 3
        for i in range(3):
            arr = load_npz(out / name / "npz" / f"{i}.npz")
            assert arr.dtype == np.dtype(dtype) and arr.shape == shape, name
            assert (out / name / "png" / f"{i}.png").is_file()
    hed = load_npz(out / "hed" / "npz" / "0.npz").astype(np.float32)
    # The sample landscape's edge map: mostly dark (median 0.014), boundaries bright (max 0.99; 21% of pixels > 0.5).
    assert hed.min() >= 0 and hed.max() > 0.9 and np.median(hed) < 0.05 and 0.05 < np.mean(hed > 0.5) < 0.4
