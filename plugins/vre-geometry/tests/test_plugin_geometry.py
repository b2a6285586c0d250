"""The plugin as installed: its types in `vre list`, the off switch, light imports, core independence, the wheel."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

TYPES = ("normals/depth-svd", "normals/depth-gradient", "mask/safe-landing", "mask/depth-range")
PLUGIN_ROOT = Path(__file__).resolve().parents[1]
CORE_SRC = PLUGIN_ROOT.parents[1] / "src" / "vrecore"


def vre(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_vre_list_shows_the_types_with_roles_and_parameters() -> None:
    r = vre("list")
    assert r.returncode == 0, r.stderr
    for type_name in TYPES:
        assert f"{type_name}  [vre-geometry]" in r.stdout
    assert "dependencies: normals, depth, semantic?" in r.stdout
    assert "dependencies: depth, mask?" in r.stdout
    assert "window_size=5" in r.stdout and "sensor_fov=None" in r.stdout
    assert "vre-geometry 0.1.0" in vre("plugins").stdout


def test_disabled_plugin_removes_the_types() -> None:
    r = vre("list", env={"VRE_DISABLED_PLUGINS": "vre-geometry"})
    assert r.returncode == 0 and "color/rgb" in r.stdout
    assert not any(t in r.stdout for t in TYPES)


def test_discovery_and_graph_building_import_neither_torch_nor_opencv() -> None:
    code = ("import sys; from vrecore.graph.registry import get_registry; from vrecore.graph.build import build_graph; "
            "from vrecore.testing import register_test_types; r = register_test_types(get_registry()); "
            f"[r.types[t].load() for t in {TYPES!r}]; "
            "build_graph({'representations': {'d': {'type': 'test/grey'}, "
            "'n': {'type': 'normals/depth-svd', 'dependencies': ['d']}, "
            "'s': {'type': 'mask/safe-landing', 'dependencies': ['n', 'd']}, "
            "'g': {'type': 'normals/depth-gradient', 'dependencies': ['d']}, "
            "'r': {'type': 'mask/depth-range', 'dependencies': ['d', 's'], 'parameters': {'max_depth': 0.3}}}}); "
            "print([m for m in ('torch', 'cv2', 'transformers') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_core_never_imports_vre_geometry() -> None:
    sources = sorted(CORE_SRC.rglob("*.py"))
    assert len(sources) > 10
    offenders = [str(p.relative_to(CORE_SRC)) for p in sources if re.search(r"\bvre_geometry\b", p.read_text())]
    assert offenders == []


def test_config_path_and_preset_are_registered() -> None:
    from vrecore.graph.registry import get_registry

    assert ("vre-geometry", "pkg://vre_geometry.conf") in get_registry().config_paths
    assert resources.files("vre_geometry.conf").joinpath("pipeline", "normals.yaml").is_file()


def test_wheel_ships_the_presets_and_declares_the_entry_point(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel", reason="hatchling (the build backend) is not installed")
    wheel = Path(next(iter(builders.WheelBuilder(str(PLUGIN_ROOT)).build(directory=str(tmp_path),
                                                                          versions=["standard"]))))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(f"{info}/METADATA").decode()
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    assert {"vre_geometry/__init__.py", "vre_geometry/normals.py", "vre_geometry/masks.py", "vre_geometry/_normals.py",
            "vre_geometry/conf/__init__.py", "vre_geometry/conf/pipeline/__init__.py",
            "vre_geometry/conf/pipeline/normals.yaml"} <= names
    assert not any(n.startswith("tests/") for n in names)
    assert "[vre]\nvre-geometry = vre_geometry" in entry_points
    assert "Requires-Dist: opencv-python-headless" in metadata


def test_readme_dronescapes_example_builds() -> None:
    """The README's Dronescapes config is a valid graph (with vre-depth and vre-semantic installed; no weights needed)."""
    from omegaconf import OmegaConf

    from vrecore.graph.build import build_graph
    from vrecore.graph.registry import get_registry

    needed = ("depth/marigold", "semantic/mask2former", "semantic/phg-mae-distil", "mask/classes")
    if not all(t in get_registry().types for t in needed):
        pytest.skip("vre-depth and vre-semantic are not installed")
    text = (PLUGIN_ROOT / "README.md").read_text().split("```yaml\n")[1].split("```")[0]
    config = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    graph = build_graph(config)  # type: ignore[arg-type]
    assert graph["safe-landing-semantics"].parameters["safe_classes"] == (1,)
    assert graph["normals_svd_depth_marigold"].representation.intrinsics(540, 960)[0] == pytest.approx(
        (3840 ** 2 + 2160 ** 2) ** 0.5 / 2 / 0.7673269879789604 / 4)
