"""Two-way compatibility with the seed tool (VRE 1.18): its reader finds our frames, its loaders get its
shapes and dtypes, its type names and folder names work, and its config files translate."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from vrecore.cli.seed_config import load_seed_config, seed_types, translate_seed_config
from vrecore.errors import ConfigError, GraphError

CONFIGS = Path(__file__).parent / "seed_configs"


def seed_reader_files(root: Path) -> dict[str, list[Path]]:
    """The seed's MultiTaskDataset folder rule (examples/vre_reader in its repository), reimplemented:
    every non-hidden folder of the root is a task; if every non-hidden entry of a task folder is a folder,
    the task's files are ``<task>/<sub>/*.npz`` (all sub-folders), otherwise ``<task>/*.npz``; natural order."""
    def natural(path: Path) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]

    files = {}
    for task in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        entries = [e for e in task.iterdir() if not e.name.startswith(".")]
        if all(e.is_dir() for e in entries):
            found = [f for part in task.iterdir() for f in part.glob("*.npz")]
        else:
            found = list(task.glob("*.npz"))
        files[task.name] = sorted((f for f in found if not f.name.endswith("_extra.npz")), key=natural)
    return files


def seed_load(path: Path) -> np.ndarray:
    """The seed's loader (NpIORepresentationMixin.load_from_disk): arr_0, floats as float32."""
    data = np.load(path, allow_pickle=False)["arr_0"]
    return data.astype(np.float32) if np.issubdtype(data.dtype, np.floating) else data


@pytest.fixture(scope="module")
def seed_forms(sample_video, tmp_path_factory) -> Path:
    """An export of the types whose stored form the seed also has, with the seed's disk conventions."""
    from vre_geometry.testing import register_scene_types
    from vrecore import build_graph, run_export
    from vrecore.graph.registry import reset_registry
    from vrecore.testing import register_test_types

    reset_registry()
    register_scene_types(register_test_types())
    out = tmp_path_factory.mktemp("seed") / "export"
    graph = build_graph({"output_dtype": "float32", "image_format": "jpg", "representations": {
        "rgb": {"type": "color/rgb"},
        "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
        "edges_canny": {"type": "edges/canny", "dependencies": ["rgb"],
                        "parameters": {"color": True, "disk_layout": "seed"}},
        "halftone1": {"type": "soft-segmentation/python-halftone", "dependencies": ["rgb"]},
        "softseg_gb": {"type": "soft-segmentation/generalized-boundaries", "dependencies": ["rgb"]},
        "depth": {"type": "test/scene-depth"},
        "normals_svd(depth)": {"type": "normals/depth-svd", "dependencies": ["depth"],
                               "parameters": {"convention": "seed", "window_size": 5}},
        "scene": {"type": "test/scene-semantic", "export": False},
        "semantic_output": {"type": "semantic/map", "dependencies": ["scene"], "parameters": {
            "table": {"ground": "land", "building": "residential", "sky": "sky"},
            "target_classes": ["land", "residential", "sky"]}},
        "buildings(nearby)": {"type": "mask/classes", "dependencies": ["semantic_output"],
                              "parameters": {"classes": ["residential"]}},
    }})
    assert run_export(graph, sample_video, out, frames="0..3").ok
    reset_registry()
    return out


# What the seed tool stores for each (VRE 1.18.6, read from its code and measured; docs/reading.md's table).
SEED_STORED = {
    "rgb": ((180, 320, 3), "uint8"),
    "hsv": ((180, 320, 3), "float32"),
    "edges_canny": ((180, 320, 1), "float32"),
    "halftone1": ((180, 320, 3), "float32"),
    "softseg_gb": ((180, 320, 3), "float32"),
    "normals_svd(depth)": ((180, 320, 3), "float32"),
    "semantic_output": ((180, 320), "uint8"),
    "buildings(nearby)": ((180, 320), "bool"),
}


def test_seed_folder_rule_finds_every_frame(seed_forms):
    files = seed_reader_files(seed_forms)
    assert set(files) == {*SEED_STORED, "depth"}
    for task, found in files.items():
        assert [f.name for f in found] == ["0.npz", "1.npz", "2.npz"], task
        assert {f.parent.name for f in found} == {"npz"}
        assert (seed_forms / task / ".repr_metadata.json").is_file()
        assert (seed_forms / task / "jpg" / "2.jpg").is_file()


def test_seed_folder_rule_breaks_on_a_visible_file(seed_forms, tmp_path):
    """Why metadata must stay hidden: one visible file and the seed's reader finds nothing in that folder."""
    out = tmp_path / "visible"
    shutil.copytree(seed_forms, out)
    (out / "hsv" / "frames.jsonl").write_text("{}\n")  # vre 0.1's visible records
    files = seed_reader_files(out)
    assert files["hsv"] == [] and len(files["rgb"]) == 3


@pytest.mark.parametrize("task", sorted(SEED_STORED))
def test_seed_loader_gets_the_seeds_shape_and_dtype(seed_forms, task):
    raw = np.load(seed_forms / task / "npz" / "1.npz", allow_pickle=False)["arr_0"]
    shape, dtype = SEED_STORED[task]
    assert (raw.shape, str(raw.dtype)) == (shape, dtype)
    loaded = seed_load(seed_forms / task / "npz" / "1.npz")
    assert loaded.shape == shape
    if task == "edges_canny":
        assert set(np.unique(loaded).tolist()) <= {0.0, 1.0}


def test_our_reader_reads_the_seed_layouts_through_the_types(seed_forms):
    from vrecore.data import MultiTaskDataset

    ds = MultiTaskDataset(seed_forms, ["edges_canny", "normals_svd(depth)", "buildings(nearby)"], to_tensor=False)
    data, _ = ds[0]
    assert data["edges_canny"].dtype == np.bool_ and data["edges_canny"].shape == (180, 320, 1)
    assert np.array_equal(data["edges_canny"], seed_load(seed_forms / "edges_canny" / "npz" / "0.npz") > 0.5)
    assert data["buildings(nearby)"].dtype == np.bool_


def test_canny_seed_layout_roundtrip_and_fingerprint():
    from vre_edges.canny import Canny

    vre, seed = Canny(name="c"), Canny(name="c", disk_layout="seed")
    memory = np.random.default_rng(0).random((2, 4, 5, 1)) > 0.5
    assert vre.to_disk(memory).shape == (2, 4, 5) and vre.to_disk(memory).dtype == np.bool_
    disk = seed.to_disk(memory)
    assert disk.shape == (2, 4, 5, 1) and disk.dtype == np.float32
    assert np.array_equal(seed.from_disk(disk), memory) and seed.from_disk(disk).dtype == np.bool_
    assert "disk_layout" in Canny.unfingerprinted_parameters  # the stored form is fingerprinted by dtype/shape
    with pytest.raises(ValueError, match="disk_layout"):
        Canny(name="c", disk_layout="seeds")


@pytest.mark.parametrize("type_name,memory_dtype", [("depth/dpt", np.float32), ("depth/depth-anything-v2", np.float32),
                                                     ("depth/marigold", np.float32), ("edges/hed", np.float32),
                                                     ("edges/dexined", np.float32)])
def test_learned_one_channel_types_store_the_seed_layout_on_request(type_name, memory_dtype):
    if type_name == "depth/marigold":
        pytest.importorskip("diffusers")
    from vrecore.graph.registry import get_registry

    cls = get_registry().get(type_name).load()
    memory = np.random.default_rng(0).random((2, 4, 5, 1)).astype(memory_dtype)
    ours, seeds = cls(name="x"), cls(name="x", disk_layout="seed")
    assert ours.to_disk(memory).shape == (2, 4, 5)
    disk = seeds.to_disk(memory)
    assert disk.shape == (2, 4, 5, 1) and disk.dtype == np.float32
    np.testing.assert_array_equal(seeds.from_disk(disk), memory)
    from vrecore.export.fingerprint import unfingerprinted

    # The layout is recorded by the stored dtype and shape, where the weights come from by their identity.
    assert unfingerprinted(seeds) == {"disk_layout", "weights_path"}


def test_normals_seed_convention_mirrors_x():
    from vre_geometry.normals import NormalsFromDepthSVD
    from vre_geometry.testing import relative_depth, render_scene
    from vrecore.graph.representation import Batch

    scene = render_scene(36, 64, fov_deg=75.0, pitch_deg=20.0)
    depth = relative_depth(scene.z, 10.0, 0.05).astype(np.float32)[None, ..., None]
    batch = Batch(indices=np.array([0]), frames=None, deps={"depth": depth})
    vre = NormalsFromDepthSVD(name="n", depth_offset=0.05).compute(batch)
    seed = NormalsFromDepthSVD(name="n", depth_offset=0.05, convention="seed").compute(batch)
    assert np.abs(vre[..., 0] - 0.5).max() > 0.05  # the scene has sideways slopes
    np.testing.assert_allclose(seed[..., 0], 1.0 - vre[..., 0], atol=1e-6)
    assert np.array_equal(seed[..., 1:], vre[..., 1:])
    assert "mirrored in x" in NormalsFromDepthSVD(name="n", convention="seed").metadata()["normals"]


SEED_TOOL_TYPES = ["color/hsv", "color/rgb", "depth/dpt", "depth/marigold", "descriptor/sift", "edges/canny",
                   "edges/dexined", "normals/depth-svd", "optical-flow/raft", "optical-flow/rife",
                   "semantic-segmentation/mask2former", "semantic-segmentation/safeuav", "soft-segmentation/fastsam",
                   "soft-segmentation/generalized-boundaries", "soft-segmentation/python-halftone"]
"""Every type of the seed's repository (VRE 1.18.6)."""


def test_the_plugins_translate_every_type_of_the_seed():
    from vrecore.graph.registry import get_registry, reset_registry

    reset_registry()
    assert sorted(seed_types()) == SEED_TOOL_TYPES
    providers = {n: e.provider for n, e in get_registry().extensions("seed type").items()}
    assert providers["color/rgb"] == "vrecore" and providers["depth/dpt"] == "vre-depth"
    assert providers["semantic-segmentation/safeuav"] == "vre-semantic"


@pytest.mark.parametrize("seed_name", SEED_TOOL_TYPES)
def test_seed_type_names_resolve(seed_name, caplog):
    import logging

    from vrecore.graph.registry import get_registry, reset_registry

    reset_registry()
    ours = seed_types()[seed_name].ours
    with caplog.at_level(logging.WARNING, logger="vrecore.graph.registry"):
        entry = get_registry().get(seed_name)
    assert entry.type_name == ours
    notes = [r.getMessage() for r in caplog.records]
    if seed_name != ours:
        assert notes == [f"type '{seed_name}' is another name of '{ours}' ({entry.provider}); vre uses '{ours}'"]
    else:
        assert notes == []


@pytest.mark.parametrize("name", ["buildings(nearby)", "normals_svd(depth_marigold)", "fastsam(s)",
                                  "safe-landing+semantics", "a.b_c-d"])
def test_seed_representation_names_are_accepted(registry, name):
    from vrecore.graph.build import build_graph

    assert build_graph({"representations": {name: {"type": "color/rgb"}}}).names == [name]


@pytest.mark.parametrize("name", ["../x", "..", ".hidden", "a/b", "a\\b", "a\x00b", "a b", "(x)", "x=1", "a'b"])
def test_names_that_could_escape_or_hide_stay_refused(registry, name):
    from vrecore.graph.build import build_graph

    with pytest.raises(GraphError, match="is not safe as a folder name"):
        build_graph({"representations": {name: {"type": "color/rgb"}}})


def test_a_parenthesised_name_exports_into_its_folder(registry, sample_video, tmp_path):
    from vrecore import build_graph, run_export

    graph = build_graph({"representations": {"rgb": {"type": "color/rgb"},
                                             "hsv(rgb)": {"type": "color/hsv", "dependencies": ["rgb"]}}})
    assert run_export(graph, sample_video, tmp_path / "out", frames="0..2").ok
    assert sorted(p.name for p in (tmp_path / "out" / "hsv(rgb)" / "npz").iterdir()) == ["0.npz", "1.npz"]


# -- seed configs ----------------------------------------------------------------------------------------------

def test_paper_listing():
    seed = load_seed_config(CONFIGS / "paper_listing.yaml")
    translation = translate_seed_config(seed)
    assert translation.config == {
        "batch_size": 10, "output_dtype": "float32", "output_size": "native",
        "representations": {"rgb": {"type": "color/rgb"},
                            "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "batch_size": 5}}}
    assert translation.notes == []


def test_dronescapes2_config(monkeypatch):
    monkeypatch.delenv("VRE_DEVICE", raising=False)
    translation = translate_seed_config(load_seed_config(CONFIGS / "dronescapes2.yaml"))
    m2f = {"type": "semantic/mask2former", "batch_size": 1}
    assert translation.config == {
        "batch_size": 15, "binary_format": "npz-compressed", "image_format": "none", "output_size": [540, 960],
        "device": "cpu", "output_dtype": "float32",
        "representations": {
            "rgb": {"type": "color/rgb"},
            "semantic_mask2former_coco_47429163_0": {
                **m2f, "parameters": {"variant": "47429163_0", "disk_form": "argmax"}},
            "semantic_mask2former_mapillary_49189528_0": {
                **m2f, "parameters": {"variant": "49189528_0", "disk_form": "argmax"}},
            "semantic_mask2former_mapillary_49189528_1": {
                **m2f, "parameters": {"variant": "49189528_1", "disk_form": "argmax"}},
            "depth_marigold": {"type": "depth/marigold", "batch_size": 5, "parameters": {
                "variant": "lcm-v1-0", "denoising_steps": 4, "ensemble_size": 1, "processing_resolution": 768,
                "disk_layout": "seed"}},
            "normals_svd(depth_marigold)": {
                "type": "normals/depth-svd", "dependencies": ["depth_marigold"], "output_dtype": "float16",
                "parameters": {"convention": "seed", "sensor_fov": 75, "sensor_size": [3840, 2160],
                               "window_size": 11}},
        }}
    assert translation.notes == [], "every type of this config stores what the seed stores"


def test_seed_fastsam_translates():
    translation = translate_seed_config(yaml.safe_load("""
representations:
  fastsam(s): {type: soft-segmentation/fastsam, dependencies: [], parameters: {variant: fastsam-s, iou: 0.9, conf: 0.4}}
"""))
    assert translation.config["representations"]["fastsam(s)"] == {
        "type": "soft-segmentation/fastsam", "parameters": {"variant": "fastsam-s", "iou": 0.9, "conf": 0.4}}
    assert translation.notes == ["'fastsam(s)' (soft-segmentation/fastsam): FastSAM stores one instance map (uint16) "
                                 "where the seed stores its 32 mask prototypes and boxes"]


def test_seed_config_maps_frame_readers_to_an_rgb_dependency():
    translation = translate_seed_config(yaml.safe_load("""
representations:
  edges_canny: {type: edges/canny, dependencies: [], parameters: {threshold1: 100, threshold2: 200,
                aperture_size: 3, l2_gradient: true}}
  halftone1: {type: soft-segmentation/python-halftone, dependencies: [],
              parameters: {sample: 3, scale: 1, percentage: 91, angles: [0, 15, 30, 45], antialias: false,
                           resolution: [240, 426]}}
  flow: {type: optical-flow/raft, dependencies: [], parameters: {inference_height: 720, inference_width: 1280,
         iters: 5, small: false}}
"""))
    reps = translation.config["representations"]
    assert list(reps) == ["rgb", "edges_canny", "halftone1", "flow"]
    assert reps["rgb"] == {"type": "color/rgb", "export": False}
    assert reps["edges_canny"] == {"type": "edges/canny", "dependencies": ["rgb"], "parameters": {
        "color": True, "disk_layout": "seed", "threshold1": 100, "threshold2": 200, "aperture_size": 3,
        "l2_gradient": True}}
    assert reps["halftone1"]["type"] == "soft-segmentation/halftone" and reps["halftone1"]["dependencies"] == ["rgb"]
    assert reps["flow"] == {"type": "optical-flow/raft", "parameters": {
        "units": "seed", "input_size": [720, 1280], "iters": 5, "variant": "things"}}
    assert translation.notes[0].startswith("added 'rgb' (color/rgb, not exported, at the frame's size)")


BASE = {"representations": {"rgb": {"type": "color/rgb", "dependencies": [], "parameters": {}},
                            "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "parameters": {}}}}


def with_(path: str, value: object) -> dict:
    import copy

    cfg = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return cfg


@pytest.mark.parametrize("cfg,message", [
    (with_("video_path", "x.mp4"), "top-level key 'video_path' is not part of the seed's format"),
    (with_("default_io_parameters.compression", True), "'default_io_parameters.compression' is not supported; "
                                                         "nearest: compress"),
    (with_("representations.hsv.io_parameters", {"binary_format": "npy"}),
     "representation 'hsv': binary_format 'npy' is not supported; nearest: npz"),
    (with_("representations.hsv.depends", ["rgb"]), "representation 'hsv': key 'depends' is not part of the seed's "
                                                     "format; nearest: dependencies"),
    (with_("representations.hsv.parameters", {"gamma": 2}), "representation 'hsv' (color/hsv): parameter 'gamma' is "
                                                             "not supported"),
    (with_("representations.x", {"type": "optical-flow/rife", "dependencies": [],
                                 "parameters": {"uhd": False, "compute_backward_flow": True}}),
     "representation 'x' (optical-flow/rife): parameter 'compute_backward_flow': only False is supported"),
    (with_("representations.x", {"type": "optical-flow/raft", "dependencies": [],
                                 "parameters": {"inference_width": 640, "iters": 5, "small": True}}),
     "representation 'x' (optical-flow/raft): parameter 'inference_width': needs 'inference_height' too"),
    (with_("representations.hsv.compute_parameters", {"batchsize": 2}),
     "representation 'hsv': 'compute_parameters.batchsize' is not supported; nearest: batch_size"),
    (with_("representations.hsv.io_parameters", {"output_dtype": "uint8"}),
     "representation 'hsv': output_dtype 'uint8' is not supported for it: vre stores float32"),
    (with_("representations.hsv.learned_parameters", {"device": "cuda:1"}),
     "representation 'hsv': learned_parameters.device 'cuda:1' differs from the default None"),
    (with_("representations.x", {"type": "default/rgb", "dependencies": [], "parameters": {}}),
     "the translated config does not build: representation 'x' has unknown type 'default/rgb'"),
])
def test_unsupported_seed_keys_are_errors_naming_them(cfg, message):
    with pytest.raises(ConfigError) as e:
        translate_seed_config(cfg)
    assert message in str(e.value)


def test_every_problem_is_one_line_of_one_error():
    cfg = with_("representations.hsv.parameters", {"gamma": 2, "beta": 1})
    cfg["extra"] = 1
    with pytest.raises(ConfigError) as e:
        translate_seed_config(cfg)
    assert len(str(e.value).splitlines()) == 3


def test_rgb_output_dtype_uint8_is_what_vre_stores():
    cfg = with_("representations.rgb.io_parameters", {"output_dtype": "uint8"})
    translation = translate_seed_config(cfg)
    assert "stored_dtype" not in translation.config["representations"]["rgb"]
    assert translation.notes == ["'rgb': output_dtype uint8 is what vre stores for it already"]


def test_convert_config_cli_writes_a_pipeline_that_builds(tmp_path, capsys):
    from vrecore.cli.app import main
    from vrecore.graph.build import build_graph

    assert main(["convert-config", str(CONFIGS / "dronescapes2.yaml")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# @package _global_\n# Translated by `vre convert-config` from the seed tool's config "
                           "dronescapes2.yaml.\nbatch_size:")
    config = yaml.safe_load(text)
    config["device"] = "cpu"
    assert build_graph(config).names[-1] == "normals_svd(depth_marigold)"
    assert main(["convert-config", str(tmp_path / "missing.yaml")]) == 2
    assert "vre convert-config: error: seed config" in capsys.readouterr().err


def vre(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `vre` command in a process of its own (Hydra reconfigures logging in the process it runs in)."""
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_export_with_a_seed_config(sample_video, tmp_path, capsys):
    from vrecore.cli.app import main

    run = vre("export", "--seed-config", str(CONFIGS / "paper_listing.yaml"), f"video={sample_video}",
              "output_dir=out", "frames=0..3", "binary_format=npz", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    files = seed_reader_files(tmp_path / "out")
    assert {t: len(f) for t, f in files.items()} == {"rgb": 3, "hsv": 3}
    assert np.load(files["hsv"][0])["arr_0"].dtype == np.float32
    seed_cfg = tmp_path / "cfg.yaml"
    seed_cfg.write_text("""
default_io_parameters: {binary_format: npz, compress: False, image_format: jpg}
default_learned_parameters: {device: "${oc.env:VRE_TEST_DEVICE,cpu}"}
representations:
  rgb: {type: color/rgb, dependencies: [], parameters: {}}
  hsv(rgb): {type: color/hsv, dependencies: [rgb], parameters: {}}
  edges_canny: {type: edges/canny, dependencies: [],
                parameters: {threshold1: 100, threshold2: 200, aperture_size: 3, l2_gradient: true}}
""")
    run = vre("export", "--seed-config", str(seed_cfg), f"video={sample_video}", "output_dir=out2", "frames=0..2",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    files = seed_reader_files(tmp_path / "out2")
    assert sorted(files) == ["edges_canny", "hsv(rgb)", "rgb"]
    edges = np.load(files["edges_canny"][1])["arr_0"]
    assert edges.shape == (180, 320, 1) and edges.dtype == np.float32
    assert (tmp_path / "out2" / "hsv(rgb)" / "jpg" / "1.jpg").is_file()
    # refused before Hydra starts, so in this process
    assert main(["export", "--seed-config", str(CONFIGS / "paper_listing.yaml"), "pipeline=rgb_hsv"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("vre export: error: --seed-config gives the pipeline; leave out "
                                                   "pipeline=rgb_hsv")


def test_io_keys_combine_with_the_defaults():
    cfg = with_("default_io_parameters", {"binary_format": "npz", "image_format": "png"})
    cfg["representations"]["hsv"]["io_parameters"] = {"compress": False, "image_format": "not-set"}
    translation = translate_seed_config(cfg)
    assert translation.config["binary_format"] == "npz-compressed"  # the seed compresses unless told not to
    assert translation.config["image_format"] == "png"
    assert translation.config["representations"]["hsv"] == {
        "type": "color/hsv", "dependencies": ["rgb"], "binary_format": "npz", "image_format": "none"}
    assert translation.config["representations"]["rgb"] == {"type": "color/rgb"}
