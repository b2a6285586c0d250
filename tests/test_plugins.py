"""Plugin discovery through entry points: third-party types, conflicts, switches, light imports."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
from vrecore import hookimpl

@hookimpl
def register_representations(register):
    register("thirdparty/invert", "{module}.reprs:Invert", description="255 minus the frame")

@hookimpl
def register_config_paths(register):
    register("pkg://{module}.conf")
'''

REPRS_MODULE = '''
import attrs, numpy as np
from vrecore import Representation, OutputSpec, Role

@attrs.define(kw_only=True, eq=False)
class Invert(Representation):
    roles = (Role("rgb", channels=3),)
    def output_spec(self):
        return OutputSpec(channels=3, disk_dtype="uint8")
    def compute(self, batch):
        return 255 - batch.deps["rgb"]
    def make_images(self, memory):
        return memory
'''


def make_distribution(site: Path, dist: str, module: str, requires: str = "vrecore>=0.1",
                      type_name: str | None = None) -> None:
    """A throwaway installed distribution: a package plus a dist-info with a `vre` entry point."""
    pkg = site / module
    (pkg / "conf" / "pipeline").mkdir(parents=True)
    code = PLUGIN_MODULE.format(module=module)
    if type_name:
        code = code.replace("thirdparty/invert", type_name)
    (pkg / "__init__.py").write_text(code)
    (pkg / "reprs.py").write_text(REPRS_MODULE)
    (pkg / "conf" / "__init__.py").write_text("")
    (pkg / "conf" / "pipeline" / "__init__.py").write_text("")
    (pkg / "conf" / "pipeline" / "invert.yaml").write_text(textwrap.dedent("""\
        # @package _global_
        representations:
          rgb: {type: color/rgb}
          inverted: {type: thirdparty/invert, dependencies: [rgb]}
        """))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\nRequires-Dist: {requires}\n")
    (info / "entry_points.txt").write_text(f"[vre]\n{dist} = {module}\n")


def vre(*args: str, site: Path | None = None, env: dict | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(site), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def test_core_lists_rgb_and_hsv():
    r = vre("list")
    assert r.returncode == 0
    assert "color/rgb  [vrecore]" in r.stdout and "color/hsv  [vrecore]" in r.stdout
    assert "dependencies: rgb" in r.stdout


def test_third_party_plugin_adds_a_type_and_a_pipeline(tmp_path, sample_video):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre")
    r = vre("list", site=site)
    assert "thirdparty/invert  [thirdparty-vre]  255 minus the frame" in r.stdout
    assert "thirdparty-vre 1.0" in vre("plugins", site=site).stdout
    out = tmp_path / "out"
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "pipeline=invert", "frames=0..3", site=site)
    assert r.returncode == 0, r.stderr
    import numpy as np

    from vrecore.store.npz import load_npz

    np.testing.assert_array_equal(load_npz(out / "inverted" / "npz" / "1.npz"),
                                  255 - load_npz(out / "rgb" / "npz" / "1.npz"))


def test_duplicate_type_names_both_distributions(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre")
    make_distribution(site, "other-vre", "other_vre", type_name="thirdparty/invert")
    r = vre("list", site=site)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "vre list: error: representation type 'thirdparty/invert' is registered by both other-vre and "
        "thirdparty-vre; uninstall one of them or disable it with VRE_DISABLED_PLUGINS"]


def test_incompatible_plugin_is_skipped_with_one_line(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre", requires="vrecore>=99")
    r = vre("list", site=site)
    assert r.returncode == 0 and "thirdparty/invert" not in r.stdout
    assert r.stderr.strip().splitlines() == [
        "vre: skipping plugin thirdparty-vre 1.0: it requires vrecore>=99 but vrecore 0.1.0 is installed; "
        "upgrade the plugin or vrecore"]


def test_broken_plugin_is_skipped(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre")
    (site / "thirdparty_vre" / "__init__.py").write_text("raise ImportError('boom')\n")
    r = vre("list", site=site)
    assert r.returncode == 0 and "color/rgb" in r.stdout
    assert "skipping plugin thirdparty-vre 1.0: it failed to import (ImportError: boom)" in r.stderr


@pytest.mark.parametrize("env", [{"VRE_DISABLE_PLUGIN_AUTOLOAD": "1"}, {"VRE_DISABLED_PLUGINS": "thirdparty-vre"}])
def test_switches_turn_plugins_off(tmp_path, env):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre")
    r = vre("list", site=site, env=env)
    assert r.returncode == 0 and "thirdparty/invert" not in r.stdout and "color/hsv" in r.stdout


def test_trace_prints_registrations(tmp_path):
    r = vre("list", env={"VRE_TRACE_PLUGINS": "1"})
    assert "vre: vrecore registers color/hsv -> vrecore._builtin.color:HSV" in r.stderr


def test_plugin_object_registered_around_one_test(registry):
    from vrecore.graph.build import build_graph

    g = build_graph({"representations": {"g": {"type": "test/grey"}}})
    assert g["g"].type_name == "test/grey" and registry.types["test/grey"].provider == "vrecore-testing"


def test_discovery_imports_no_torch():
    code = ("import sys, vrecore; from vrecore.graph.registry import get_registry; from vrecore.graph.build import build_graph;"
            "r = get_registry(); [e.load() for e in r.types.values()];"
            "build_graph({'representations': {'rgb': {'type': 'color/rgb'},"
            "                                 'hsv': {'type': 'color/hsv', 'dependencies': ['rgb']}}});"
            "bad = [m for m in ('torch', 'transformers', 'diffusers', 'decord') if m in sys.modules]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_a_hook_name_with_a_typo_is_an_error_naming_the_plugin(registry):
    """pm.check_pending(): an implementation of a hook vre does not have is refused, not silently ignored."""
    from vrecore.errors import PluginError
    from vrecore.graph.hookspecs import hookimpl

    class Typo:
        @hookimpl
        def register_representation(self, register):  # the hook is register_representations
            register("typo/type", "nowhere:Nothing")

    registry.register_plugin(Typo(), "vre-typo")
    try:
        with pytest.raises(PluginError, match=r"vre-typo: .*register_representation.*vre's hooks are .*register_representations"):
            registry.check_hooks()
    finally:
        registry.unregister_plugin("vre-typo")


def _installed_a_while_ago(site: Path) -> None:
    """Date the site's distributions back a minute: vre keeps no record of metadata changed in the last seconds."""
    old = time.time() - 60
    for entry in site.iterdir():
        os.utime(entry, (old, old))


def test_installing_and_removing_a_plugin_is_seen_by_the_next_command(tmp_path):
    """The entry points are read from a record while no distribution's metadata changed; an install or a removal
    changes it."""
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre")
    _installed_a_while_ago(site)
    env = {"VRE_CACHE": str(tmp_path / "cache")}
    assert "thirdparty/invert" in vre("list", site=site, env=env).stdout
    assert len(list((tmp_path / "cache" / "plugins").glob("*.json"))) == 1
    check = ("import sys; from vrecore.graph.registry import get_registry; get_registry(); "
             "print(sorted(get_registry().types), 'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, **env,
                              "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}).stdout
    assert "thirdparty/invert" in out and out.strip().endswith("False")  # from the record: no metadata scan
    make_distribution(site, "other-vre", "other_vre", type_name="other/invert")
    assert "other/invert  [other-vre]" in vre("list", site=site, env=env).stdout
    shutil.rmtree(site / "thirdparty_vre-1.0.dist-info")
    listed = vre("list", site=site, env=env).stdout
    assert "thirdparty/invert" not in listed and "other/invert" in listed


def test_an_incompatible_plugin_read_from_the_record_is_still_skipped_with_its_line(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "thirdparty-vre", "thirdparty_vre", requires="vrecore>=99")
    _installed_a_while_ago(site)
    env = {"VRE_CACHE": str(tmp_path / "cache")}
    first, second = vre("list", site=site, env=env), vre("list", site=site, env=env)
    assert list((tmp_path / "cache" / "plugins").glob("*.json"))
    assert first.stderr == second.stderr and "it requires vrecore>=99 but vrecore 0.1.0 is installed" in second.stderr
    assert "thirdparty/invert" not in second.stdout
