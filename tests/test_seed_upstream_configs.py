"""Every YAML config of the seed tool's public repository (tests/seed_configs/upstream), translated: each key the
seed reads keeps its meaning in vre's graph (settings, parameters, dependencies)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vrecore.cli.seed_config import load_seed_config, seed_types, translate_seed_config
from vrecore.graph.build import build_graph

UPSTREAM = Path(__file__).parent / "seed_configs" / "upstream"
CONFIGS = sorted(UPSTREAM.glob("*.yaml"))
ENV = ("IMAGE_FORMAT", "COMPRESS", "OUTPUT_SIZE", "BATCH_SIZE", "VRE_DEVICE", "MODEL_VARIANT")
RENAMED = {"model_id": "variant", "disk_data_argmax": "disk_form"}
"""The seed's parameter names that are vre's under another name (the value mapped by `expected_parameter`)."""
AT_THE_SEEDS_DEFAULT = {"compute_backward_flow": False}
"""Parameters vre computes the seed's way only at this value (and refuses otherwise)."""


def expected_parameter(seed_type: str, key: str, value: Any) -> tuple[str, Any]:
    """The vre parameter and value that mean what the seed's ``key: value`` means."""
    if key == "disk_data_argmax":
        return "disk_form", "argmax" if value else "probabilities"
    if seed_type == "depth/marigold" and key == "variant":
        return "variant", value.removeprefix("marigold-")
    return RENAMED.get(key, key), value


def _plain(value: Any) -> Any:
    """Lists and tuples alike (vre's converters keep sizes as tuples), numbers compared by value."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def seed_settings(cfg: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What the seed's build_representation_from_cfg sets on one representation: the default blocks, then its own."""
    io = {**cfg.get("default_io_parameters", {}), **spec.get("io_parameters", {})}
    compute = {**cfg.get("default_compute_parameters", {}), **spec.get("compute_parameters", {})}
    return {**io, **compute}


@pytest.fixture
def seed_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_every_config_of_the_seed_repository_is_here():
    assert len(CONFIGS) == 11 and (UPSTREAM / "LICENSE.TXT").read_text().startswith("Copyright 2024 Meehai")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_upstream_config_translates_keeping_every_value(path, seed_env, registry):
    import os

    seed_text = path.read_text()
    for name in ENV:  # the defaults, as the seed resolves them with no environment variable set
        seed_text = seed_text.replace(f"${{oc.decode:${{oc.env:{name},", "${oc.env:" + name + ",")
    cfg = yaml.safe_load(_seed_resolve(seed_text))
    translation = translate_seed_config(load_seed_config(path))
    graph = build_graph(translation.config)
    types = seed_types()
    assert not os.environ.get("COMPRESS")
    for name, spec in cfg["representations"].items():
        node = graph[name]
        assert node.type_name == types[spec["type"]].ours
        assert set(node.dependency_names) >= set(spec["dependencies"])
        for key, value in spec["parameters"].items():
            if key in AT_THE_SEEDS_DEFAULT:
                assert value == AT_THE_SEEDS_DEFAULT[key]
                continue
            ours, wanted = expected_parameter(spec["type"], key, value)
            assert _plain(node.parameters[ours]) == _plain(wanted), (name, key)
        s = seed_settings(cfg, spec)
        if "binary_format" not in s:  # the seed would store nothing (and refuse to run); vre keeps its default
            assert node.settings.binary_format == "npz"
        elif s["binary_format"] == "not-set":
            assert node.settings.binary_format == "none"
        else:
            assert node.settings.binary_format == ("npz-compressed" if s.get("compress", True) else "npz"), name
        assert node.settings.image_format == ("none" if s.get("image_format", "not-set") == "not-set"
                                              else s["image_format"])
        if "batch_size" in s:
            assert node.settings.batch_size == s["batch_size"]
        if s.get("output_size") is not None:
            assert node.settings.output_size == tuple(s["output_size"])
        elif spec["type"] == "soft-segmentation/python-halftone" and "resolution" in spec["parameters"]:
            h, w = spec["parameters"]["resolution"]  # the seed's halftone: its resolution, at its scale
            scale = spec["parameters"].get("scale", 1)
            assert node.settings.output_size == (h * scale, w * scale), name
        else:  # the seed stores each type at its own size
            assert node.settings.output_size == "native", name
        if str(s.get("output_dtype", "")).startswith("float"):
            assert node.settings.output_dtype == s["output_dtype"]
    assert translation.config.get("device", "cpu") == "cpu"


def _seed_resolve(text: str) -> str:
    """The seed's own textual resolution (vre/utils/yaml.py) of ``${oc.env:VAR,default}`` with VAR unset, and of
    ``${oc.decode:...}`` as Python literals (rewritten above into their plain default)."""
    import re

    text = re.sub(r"\$\{oc\.env:[A-Z_]+,([^}]*)\}\}?", lambda m: m.group(1).strip('"'), text)
    return text


def test_interpolations_are_resolved_as_the_seed_resolves_them(seed_env, monkeypatch, registry):
    path = UPSTREAM / "examples__vre_streaming__cfg_rgb_marigold.yaml"
    config = translate_seed_config(load_seed_config(path)).config
    assert (config["binary_format"], config["image_format"], config["output_size"], config["batch_size"],
            config["device"]) == ("npz", "none", [540, 960], 1, "cpu")
    monkeypatch.setenv("COMPRESS", "True")
    monkeypatch.setenv("IMAGE_FORMAT", "png")
    monkeypatch.setenv("OUTPUT_SIZE", "[240,426]")
    config = translate_seed_config(load_seed_config(path)).config
    assert (config["binary_format"], config["image_format"], config["output_size"]) == (
        "npz-compressed", "png", [240, 426])


def test_the_seeds_marigold_variants_are_accepted(registry):
    for variant, ours in (("marigold-v1-0", "v1-0"), ("marigold-lcm-v1-0", "lcm-v1-0")):
        config = translate_seed_config({"representations": {"d": {
            "type": "depth/marigold", "dependencies": [], "parameters": {"variant": variant}}}}).config
        assert build_graph(config)["d"].parameters["variant"] == ours


def test_an_unset_variable_without_default_is_one_line(seed_env):
    from vrecore.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        translate_seed_config({"representations": {"rgb": {"type": "color/rgb", "dependencies": [], "parameters": {}}},
                               "default_learned_parameters": {"device": "${oc.env:VRE_DEVICE}"}})
    assert len(str(e.value).splitlines()) == 1 and "VRE_DEVICE" in str(e.value)


@pytest.mark.parametrize("command", [["convert-config", str(UPSTREAM / "examples__vre_streaming__cfg_rgb_marigold.yaml")],
                                     ["weights", "list"]])
def test_translating_and_listing_weights_need_no_model_library(command, tmp_path):
    hide = "import sys; sys.modules.update({m: None for m in ('diffusers', 'transformers', 'timm')}); "
    run = subprocess.run([sys.executable, "-c", hide + "from vrecore.cli.app import main; "
                          f"raise SystemExit(main({command!r}))"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    if command[0] == "weights":
        assert "marigold" in run.stdout
    else:
        assert "depth/marigold" in run.stdout


def test_seed_normals_have_no_nan_where_depth_is_zero(registry):
    import numpy as np

    from vre_geometry.normals import NormalsFromDepthSVD
    from vrecore.plugin import Batch

    depth = np.full((1, 40, 60, 1), 0.5, np.float32)
    depth[:, 10:30, 20:45] = 0  # no depth: the seed fits its camera-facing normal there
    rep = NormalsFromDepthSVD(name="n", sensor_fov=75, sensor_size=[3840, 2160], window_size=11, convention="seed")
    normals = rep.compute(Batch(indices=np.array([0]), frames=None, deps={"depth": depth}))
    assert not np.isnan(normals).any()
    assert np.array_equal(normals[0, 20, 32], np.array([0.5, 0.5, 1.0], np.float32))


def test_each_type_keeps_the_seeds_own_size_and_scores(seed_env, registry):
    reps = translate_seed_config(load_seed_config(UPSTREAM / "examples__batched_experiment__cfg.yaml")).config[
        "representations"]
    assert reps["halftone1"]["output_size"] == [240, 426]  # its resolution, as the seed stores it
    assert "output_size" not in reps["rgb"]
    safeuav = translate_seed_config(load_seed_config(UPSTREAM / "examples__vre_streaming__cfg_rgb_safeuav.yaml")).config
    assert safeuav["representations"]["safeuav"]["parameters"] == {
        "disk_form": "probabilities", "scores": "logits", "variant": "model_150k"}  # logits, as the seed stores
