"""End to end: the shipped normals preset over an analytic depth, exported with previews, re-run, and through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from vre_geometry.testing import render_scene, write_scene_types_distribution
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

FRAMES = "0..3"


def preset() -> dict:
    """The shipped pipeline/normals.yaml, as the CLI reads it."""
    from omegaconf import OmegaConf

    text = resources.files("vre_geometry.conf").joinpath("pipeline", "normals.yaml").read_text()
    config = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    assert isinstance(config, dict)
    return config


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def one_face_windows(labels: np.ndarray, normals: np.ndarray, k: int) -> np.ndarray:
    """Pixels whose (2k + 1)^2 window lies on a single face of the scene."""
    out = np.ones(labels.shape, bool)
    for dv in range(-k, k + 1):
        for du in range(-k, k + 1):
            out &= np.roll(labels, (dv, du), axis=(0, 1)) == labels
            out &= np.all(np.roll(normals, (dv, du), axis=(0, 1)) == normals, axis=-1)
    out[:k] = out[-k:] = False
    out[:, :k] = out[:, -k:] = False
    return out


def test_preset_over_analytic_depth_exports_normals_and_masks(scene_registry, sample_video: Path,
                                                              tmp_path: Path) -> None:
    config = preset()
    config["representations"] = {
        "depth": {"type": "test/scene-depth", "image_format": "jpg"},   # vre-depth's convention, 0 = near
        **config["representations"],
        "semantic": {"type": "test/scene-semantic"},
        "safe_ground": {"type": "mask/safe-landing", "dependencies": ["normals", "depth", "semantic"],
                        "parameters": {"safe_classes": ["ground"]}, "image_format": "png"},
        "safe_nearby": {"type": "mask/depth-range", "dependencies": {"depth": "depth", "mask": "safe_landing"},
                        "parameters": {"max_depth": 0.3}, "image_format": "png"},
    }
    out = tmp_path / "out"
    result = run_export(build_graph(config), sample_video, out, frames=FRAMES)
    assert result.ok
    for name in ("depth", "normals", "safe_landing", "safe_ground", "safe_nearby"):
        assert result.stats[name].computed == 3, name
    for name, ext in (("normals", "jpg"), ("safe_landing", "jpg"), ("safe_ground", "png")):
        for i in range(3):
            assert (out / name / "npz" / f"{i}.npz").is_file() and (out / name / ext / f"{i}.{ext}").is_file()

    depth = load_npz(out / "depth" / "npz" / "1.npz")
    normals = load_npz(out / "normals" / "npz" / "1.npz")
    safe = load_npz(out / "safe_landing" / "npz" / "1.npz")
    assert normals.dtype == np.float16 and normals.shape == (*depth.shape, 3) and safe.dtype == np.bool_
    assert not np.isnan(normals).any()                  # no invalid depth in this scene

    scene = render_scene(*depth.shape)
    inside = (depth > 0) & (depth < 1)                  # not clipped by the relative depth's range
    flat = one_face_windows(scene.labels, scene.normals, 2) & inside
    for dv in range(-2, 3):
        flat &= np.roll(inside, dv, axis=0)
    assert flat.sum() > 20000
    # stored normals (float16) match the analytic ones where the window is one face of the scene
    assert angle_deg(normals[flat].astype(np.float64) * 2 - 1, scene.normals[flat]).max() <= 0.25

    up = scene.normals[..., 1] > 0.9                     # ground and box top; the box's front faces the camera
    on_box = scene.labels == 1
    assert (safe[flat & up] == (depth[flat & up] <= 0.9)).all()
    assert safe[flat & up].mean() > 0.9 and not safe[flat & ~up].any()
    assert not safe[scene.labels == 2].any()             # sky: depth 1
    safe_ground = load_npz(out / "safe_ground" / "npz" / "1.npz")
    np.testing.assert_array_equal(safe_ground, safe & ~on_box)
    assert safe[flat & up & on_box].all()                # the box top is flat and near: safe by geometry only
    nearby = load_npz(out / "safe_nearby" / "npz" / "1.npz")
    np.testing.assert_array_equal(nearby, safe & (depth <= 0.3))
    assert 0 < nearby.sum() < safe.sum()

    # previews: normals in colour (ground is greenish: y up), safe-landing green over grey
    preview = np.asarray(Image.open(out / "normals" / "jpg" / "1.jpg"))
    ground = flat & up & ~on_box
    assert preview.shape == (*depth.shape, 3)
    assert np.abs(preview[ground].mean(axis=0) - [128, 247, 171]).max() < 6
    mask_preview = np.asarray(Image.open(out / "safe_landing" / "jpg" / "1.jpg")).astype(int)
    assert np.abs(mask_preview[safe & flat].mean(axis=0) - [0, 230, 0]).max() < 12
    assert np.abs(mask_preview[~safe & flat].mean(axis=0) - [96, 96, 96]).max() < 12

    again = run_export(build_graph(config), sample_video, out, frames=FRAMES)
    assert all(s.computed == 0 and s.skipped == 3 for s in again.stats.values()), again.summary()


def test_preset_through_the_cli(tmp_path: Path, sample_video: Path) -> None:
    """`vre export pipeline=[<a depth preset>,normals]`: the plugin's Hydra config path is registered."""
    site = write_scene_types_distribution(tmp_path / "site")
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True)
    (conf / "scene.yaml").write_text("# @package _global_\nrepresentations:\n  depth: {type: test/scene-depth}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "--config-dir", str(tmp_path / "conf"),
                        f"video={sample_video}", f"output_dir={out}", "pipeline=[scene,normals]", "frames=0..2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("normals", "safe_landing"):
        assert sorted(p.name for p in (out / name / "npz").iterdir()) == ["0.npz", "1.npz"]
        assert sorted(p.name for p in (out / name / "jpg").iterdir()) == ["0.jpg", "1.jpg"]


def test_preset_has_no_depth_of_its_own() -> None:
    reps = preset()["representations"]
    assert set(reps) == {"normals", "safe_landing"}
    assert reps["normals"]["dependencies"] == ["depth"]


def test_output_dtype_float32_stores_unrounded_normals(scene_registry, sample_video: Path, tmp_path: Path) -> None:
    """output_dtype decides the stored dtype once: float32 files hold float32 values, not float16-rounded ones."""
    config = {"representations": {
        "depth": {"type": "test/scene-depth"},
        "normals": {"type": "normals/depth-svd", "dependencies": ["depth"], "output_dtype": "float32",
                    "parameters": {"sensor_fov": 75, "window_size": 5, "depth_offset": 0.05}}}}
    graph = build_graph(config)
    result = run_export(graph, sample_video, tmp_path / "out", frames="0..1")
    assert result.ok
    stored = load_npz(tmp_path / "out" / "normals" / "npz" / "0.npz")
    depth = load_npz(tmp_path / "out" / "depth" / "npz" / "0.npz")
    assert stored.dtype == np.float32
    rep = graph["normals"].representation
    from vrecore.graph.representation import Batch

    memory = rep.compute(Batch(indices=np.array([0]), frames=None, deps={"depth": depth[None, ..., None]}))[0]
    assert np.array_equal(stored, memory.astype(np.float32), equal_nan=True), "stored values are the computed float32 values"
