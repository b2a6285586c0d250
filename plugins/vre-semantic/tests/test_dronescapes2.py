"""The pipeline=dronescapes2 presets: composition, class names, and an end-to-end CPU run with tiny weights."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vre_semantic.labels import COCO_PANOPTIC_CLASSES, DRONESCAPES_CLASSES, MAPILLARY_VISTAS_CLASSES
from vrecore.graph.registry import get_registry

# Types of the sibling plugins the preset uses: vre-depth and vre-geometry.
OTHER_PLUGINS_TYPES = ("depth/marigold", "depth/depth-anything-v2", "normals/depth-svd", "mask/safe-landing",
                       "mask/depth-range")
MASK2FORMER = ("semantic_mask2former_swin_mapillary", "semantic_mask2former_r50_mapillary",
               "semantic_mask2former_swin_coco")
BINARY = ("vegetation", "sky-and-water", "containing", "transportation", "buildings", "buildings-nearby",
          "safe-landing-no-sseg", "safe-landing-semantics")


def compose(*overrides: str) -> dict[str, Any]:
    """The `vre export` config a command line with these overrides gives (Hydra, in process)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    from vrecore.cli.config import register_schemas

    register_schemas()
    with initialize_config_module(config_module="vrecore.cli.conf", version_base="1.3"):
        cfg = hydra_compose(config_name="export", overrides=list(overrides))
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    return config


def test_presets_compose_with_the_seed_settings():
    config = compose("pipeline=dronescapes2")
    reps = config["representations"]
    assert set(BINARY) <= set(reps) and set(MASK2FORMER) <= set(reps) and len(reps) == 18
    assert [reps[n]["parameters"]["variant"] for n in MASK2FORMER] == [
        "swin-large-mapillary-vistas-semantic", "r50-mapillary-vistas-panoptic", "swin-large-coco-panoptic"]
    assert reps["depth"]["type"] == "depth/marigold"
    assert reps["depth"]["parameters"] == {"variant": "lcm-v1-0", "denoising_steps": 4, "ensemble_size": 1,
                                           "processing_resolution": 768}
    assert config["output_size"] == [540, 960] and config["binary_format"] == "npz-compressed"
    assert reps["safe-landing-semantics"]["dependencies"] == {
        "semantic": list(MASK2FORMER[0::2] + MASK2FORMER[1:2]), "mask": "safe-landing-no-sseg"}
    assert reps["buildings-nearby"]["dependencies"] == ["depth", "buildings"]

    fast = compose("pipeline=dronescapes2_fast")
    assert fast["representations"]["depth"]["type"] == "depth/depth-anything-v2"
    assert set(fast["representations"]) == set(reps) and fast["binary_format"] == "npz"
    assert all(fast["representations"][n]["parameters"]["min_size"] == 540 for n in MASK2FORMER)
    switched = compose("pipeline=dronescapes2", "dronescapes2_depth=depth_anything_v2")
    assert switched["representations"]["depth"] == fast["representations"]["depth"]
    # Depth Anything's z-depth is proportional to depth + 0.05 (vre-depth's convention); Marigold's is the depth.
    assert switched["representations"]["normals"]["parameters"]["depth_offset"] == 0.05
    assert "depth_offset" not in reps["normals"]["parameters"]


def test_preset_class_names_exist_in_the_label_sets():
    reps = compose("pipeline=dronescapes2")["representations"]
    known = set(MAPILLARY_VISTAS_CLASSES) | set(COCO_PANOPTIC_CLASSES)
    for name, spec in reps.items():
        if spec["type"] == "mask/classes":
            classes = spec["parameters"]["classes"]
            assert set(classes) <= known, (name, set(classes) - known)
            assert set(classes) & set(MAPILLARY_VISTAS_CLASSES) and set(classes) & set(COCO_PANOPTIC_CLASSES), name


def test_the_vre_command_finds_the_preset():
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "pipeline=dronescapes2_fast", "--cfg", "job"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "type: depth/depth-anything-v2" in r.stdout and "safe-landing-semantics:" in r.stdout


# -- end to end ----------------------------------------------------------------------------------------------
def _weights_as_a_user_gets_them(depth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tiny test-made weights for every learned expert of the preset, placed where a user's own steps put them;
    returns the command-line overrides that select them. The Hub variants go into a Hub cache at their repo and
    revision (what a download leaves there); the seed's R50 Mask2Former is converted and imported with the `vre`
    commands; Depth Anything V2 comes from a local folder through weights_path= (no Hydra `+` needed)."""
    import attrs

    from vre_depth.testing import write_tiny_depth_model, write_tiny_marigold
    from vre_depth.variants import MARIGOLD_VARIANTS
    from vre_semantic.testing import populate_mask2former_hub_cache, write_seed_mask2former_checkpoint
    from vre_semantic.variants import MASK2FORMER_VARIANTS
    from vrecore.cli.app import main
    from vrecore.testing import populate_hub_cache, use_hub_cache

    cache = use_hub_cache(monkeypatch, tmp_path / "hub", offline=True)
    populate_mask2former_hub_cache(cache, tmp_path / "weights")
    r50 = MASK2FORMER_VARIANTS["r50-mapillary-vistas-panoptic"]
    ckpt, _ = write_seed_mask2former_checkpoint(tmp_path / "49189528_1.ckpt")
    # The stand-in is not the seed's file, whose sha256 the variant declares.
    monkeypatch.setitem(MASK2FORMER_VARIANTS, "r50-mapillary-vistas-panoptic",
                        attrs.evolve(r50, convert=attrs.evolve(r50.convert, sha256=None)))
    converted = tmp_path / r50.name
    assert main(["convert-weights", str(ckpt), str(converted), "--variant", r50.name]) == 0
    assert main(["weights", "import", r50.name, str(converted)]) == 0
    if depth == "marigold":
        variant = MARIGOLD_VARIANTS["lcm-v1-0"]
        folder = write_tiny_marigold(tmp_path / "mg")
        populate_hub_cache(cache, variant.repo_id, variant.revision, {f: folder / f for f in variant.filenames})
        return ["representations.depth.parameters.processing_resolution=32"]
    folder = write_tiny_depth_model("da2", tmp_path / "da2")
    return [f"representations.depth.parameters.weights_path={folder}", "representations.depth.parameters.input_size=28"]


@pytest.mark.parametrize("depth", ["marigold", "depth_anything_v2"])
def test_dronescapes2_runs_end_to_end_with_tiny_weights(depth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]):
    missing = [t for t in OTHER_PLUGINS_TYPES if t not in get_registry().types]
    if missing:
        pytest.skip(f"pipeline=dronescapes2 needs the types {', '.join(missing)} (vre-depth, vre-geometry), "
                    f"which are not installed yet")
    if depth == "marigold":
        pytest.importorskip("diffusers", reason="depth/marigold needs vre-depth[marigold] (diffusers)")
    import torch

    from vrecore.cli.app import main
    from vrecore.export.run import run_export
    from vrecore.frames.sample import make_sample_clip
    from vrecore.graph.build import build_graph
    from vrecore.store.npz import load_npz
    from vrecore.weights.cache import Lock

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        depth_overrides = _weights_as_a_user_gets_them(depth, tmp_path, monkeypatch)
        sizes = [f"representations.{n}.parameters.{k}=64" for n in MASK2FORMER for k in ("min_size", "max_size")]
        capsys.readouterr()
        assert main(["weights", "list", "--pipeline", "dronescapes2", f"dronescapes2_depth={depth}",
                     *depth_overrides, "--json"]) == 0
        listed = {row["representation"]: row["status"] for row in json.loads(capsys.readouterr().out)}
        assert listed == {**dict.fromkeys(MASK2FORMER, "cached"),
                          "depth": "cached" if depth == "marigold" else f"local ({depth_overrides[0].split('=')[1]})"}

        video = make_sample_clip(tmp_path / "clip.mp4", width=64, height=48, frames=3)
        out = tmp_path / "out"
        config = compose("pipeline=dronescapes2", f"dronescapes2_depth={depth}", f"video={video}", f"output_dir={out}",
                         "output_size=null", "image_format=jpg", *depth_overrides, *sizes)
        graph = build_graph(config)
        identities = {n.name: n.representation.weights_identity() for n in graph if n.representation.learned}
        assert set(identities) == {*MASK2FORMER, "depth"}
        assert all(len(i["sha256"]) == 2 for n, i in identities.items() if n in MASK2FORMER)
        recorded = Lock().get("mask2former-r50-mapillary-vistas-panoptic")["files"]  # by `vre weights import`
        assert identities["semantic_mask2former_r50_mapillary"] == {
            "variant": "mask2former-r50-mapillary-vistas-panoptic", "commit": None,
            "sha256": {f: e["sha256"] for f, e in recorded.items()}}
        result = run_export(graph, str(video), out, config=config)
        assert result.ok, result.error
        assert {name: s.computed for name, s in result.stats.items()} == {name: 3 for name in graph.names}

        for name in graph.names:
            for i in range(3):
                assert (out / name / "npz" / f"{i}.npz").is_file(), (name, i)
                assert (out / name / "jpg" / f"{i}.jpg").is_file(), (name, i)
        for name in BINARY:
            mask = load_npz(out / name / "npz" / "0.npz")
            assert mask.dtype == np.bool_ and mask.shape == (48, 64), name
        for name in MASK2FORMER:
            labels = load_npz(out / name / "npz" / "1.npz")
            assert labels.dtype == np.uint8 and labels.shape == (48, 64), name
        semantic = load_npz(out / "semantic_output" / "npz" / "2.npz")
        assert semantic.dtype == np.uint8 and semantic.max() < len(DRONESCAPES_CLASSES)
        meta = json.loads((out / "semantic_output" / ".repr_metadata.json").read_text())
        assert meta["metadata"]["classes"] == list(DRONESCAPES_CLASSES)
        meta = json.loads((out / "safe-landing-semantics" / ".repr_metadata.json").read_text())
        assert meta["dependencies"] == [*MASK2FORMER[0::2], MASK2FORMER[1], "safe-landing-no-sseg"]
        # Safe with semantics is safe geometrically, by construction.
        for i in range(3):
            assert not (load_npz(out / "safe-landing-semantics" / "npz" / f"{i}.npz")
                        & ~load_npz(out / "safe-landing-no-sseg" / "npz" / f"{i}.npz")).any()

        again = run_export(build_graph(config), str(video), out, config=config)
        assert again.ok
        assert {name: (s.computed, s.skipped) for name, s in again.stats.items()} == {
            name: (0, 3) for name in graph.names}
    finally:
        torch.set_num_threads(threads)


def test_without_the_weights_every_missing_expert_is_one_line_before_any_frame(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """Offline with an empty cache, `vre export pipeline=dronescapes2_fast` names each missing weight and its fix."""
    import os
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "VRE_CACHE": str(tmp_path / "vre"), "VRE_WEIGHTS_LOCK": str(tmp_path / "vre-weights.lock")}
    from vrecore.frames.sample import make_sample_clip

    video = make_sample_clip(tmp_path / "clip.mp4", width=64, height=48, frames=2)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "pipeline=dronescapes2_fast", f"video={video}",
                        f"output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300, env=env)
    elapsed = time.monotonic() - started
    lines = [line for line in r.stderr.splitlines() if "representation '" in line and ": weights '" in line]
    assert r.returncode != 0, r.stderr
    assert sorted(line.split("representation '")[1].split("'")[0] for line in lines) == sorted(["depth", *MASK2FORMER])
    assert "convert it with `vre convert-weights 49189528_1.ckpt" in r.stderr
    assert r.stderr.count("HF_HUB_OFFLINE=1 forbids downloading") == 3
    assert not any((tmp_path / "out").glob("*/npz"))
    print(f"offline preflight of dronescapes2_fast: exit after {elapsed:.1f} s (process start included)")
