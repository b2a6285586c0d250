"""Stores through the registry (issue 20): a plugin's store is chosen by ``store=NAME``, by the URL scheme of
``output_dir`` or by its suffix; a URL no store handles is refused in one line, never taken for a path."""
from __future__ import annotations

from pathlib import Path

import pytest

from vrecore import hookimpl
from vrecore.cli.app import main
from vrecore.errors import ConfigError, PluginError
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store import DirectoryStore, open_store

VIDEO = Path(__file__).parents[1] / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"
RGB = {"rgb": {"type": "color/rgb"}}


class MemStore(DirectoryStore):
    """A store for ``mem://NAME`` (or a ``.mem`` folder): npz folders below `base`, so that the test can see
    which store kept the frames."""

    base: Path
    opened: list[str]

    def __init__(self, location: str) -> None:
        type(self).opened.append(location)
        super().__init__(self.base / location.removeprefix("mem://") if location.startswith("mem://") else location)


class MemPlugin:
    @hookimpl
    def register_stores(self, register):
        register("mem", MemStore, schemes=("mem",), suffixes=(".mem",), description="npz folders of a test")


class OtherMemPlugin:
    @hookimpl
    def register_stores(self, register):
        register("other-mem", MemStore, schemes=("MEM",), description="a second store claiming mem://")


@pytest.fixture
def mem(registry, tmp_path, monkeypatch):
    """The throwaway plugin registered around one test; returns the folder its store writes below."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(MemStore, "base", tmp_path / "mem-base", raising=False)
    monkeypatch.setattr(MemStore, "opened", [], raising=False)
    registry.register_plugin(MemPlugin(), "test-dist")
    yield MemStore.base
    registry.unregister_plugin("test-dist")


def frames_in(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in (folder / "rgb" / "npz").glob("*.npz"))


def test_core_registers_the_directory_store_through_the_hook(registry):
    store = registry.extension("store", "directory")
    assert store.provider == "vrecore" and store.options["schemes"] == ("file",)
    assert store.load() is DirectoryStore


def test_an_output_url_picks_the_store_registered_with_its_scheme(mem, sample_video, tmp_path):
    result = run_export(build_graph({"representations": RGB}), sample_video, "mem://x", frames="0..2")
    assert MemStore.opened == ["mem://x"]
    assert result.output_dir == mem / "x"
    assert frames_in(mem / "x") == [0, 1]
    assert not (tmp_path / "mem:").exists(), "a URL is never taken for a path"


def test_store_key_picks_a_store_by_name(mem, sample_video, tmp_path):
    run_export(build_graph({"representations": RGB}), sample_video, "mem://y", frames="0..1", store="mem")
    run_export(build_graph({"representations": RGB}), sample_video, "plain", frames="0..1", store="mem")
    assert MemStore.opened == ["mem://y", "plain"]
    assert frames_in(mem / "y") == [0] and frames_in(tmp_path / "plain") == [0]


def test_a_suffix_picks_the_store_registered_with_it(mem, sample_video, tmp_path):
    run_export(build_graph({"representations": RGB}), sample_video, tmp_path / "clip.mem", frames="0..1")
    run_export(build_graph({"representations": RGB}), sample_video, tmp_path / "clip", frames="0..1")
    assert MemStore.opened == [str(tmp_path / "clip.mem")], "no suffix: the directory store"
    assert frames_in(tmp_path / "clip") == [0]


def test_the_cli_store_key_picks_a_store(mem, capsys):
    code = main(["export", f"video={VIDEO}", "output_dir=z", "store=mem", "frames=0..1", "pipeline=rgb_hsv"])
    assert code == 0, capsys.readouterr().err
    assert MemStore.opened == ["z"]


def test_a_file_url_is_the_directory_store(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    result = run_export(build_graph({"representations": RGB}), sample_video, f"file://{out}", frames="0..2")
    assert result.output_dir == out and frames_in(out) == [0, 1]
    assert type(open_store(f"file://{out}")) is DirectoryStore


def test_stored_export_commands_read_a_file_url(registry, sample_video, tmp_path, capsys):
    out = tmp_path / "out"
    run_export(build_graph({"representations": RGB}), sample_video, out, frames="0..2")
    assert main(["verify", f"file://{out}"]) == 0, capsys.readouterr().err


def test_the_picture_commands_open_another_stores_url(mem, capsys):
    """`vre collage` reads a registered store's export through the Store interface: an empty one is one line."""
    code = main(["collage", "mem://x"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("vre collage: error: ")] == [
        "vre collage: error: 'mem://x' holds no stored frames; give the output folder of an export"]


def test_vre_verify_and_vre_read_open_a_stores_url(mem, sample_video, capsys):
    run_export(build_graph({"representations": RGB}), sample_video, "mem://x", frames="0..2")
    assert main(["verify", "mem://x"]) == 0, capsys.readouterr().err
    assert main(["read", "mem://x", "--json"]) == 0 and '"items": 2' in capsys.readouterr().out


def test_an_unknown_scheme_is_one_line_naming_the_schemes_that_are(mem, sample_video, capsys):
    with pytest.raises(ConfigError) as e:
        run_export(build_graph({"representations": RGB}), sample_video, "nosuch://bucket/x")
    assert "\n" not in str(e.value)
    assert "no installed store handles nosuch://" in str(e.value)
    assert "file:// (directory)" in str(e.value) and "mem:// (mem)" in str(e.value)
    assert "a plugin may add one" in str(e.value)
    code = main(["export", f"video={VIDEO}", "output_dir=hdfsx://bucket/x", "frames=0..1"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vre export: error: ")]
    assert code == 2 and len(lines) == 1 and "'hdfsx://bucket/x' is a URL" in lines[0]
    assert not mem.exists() and not Path("hdfsx:").exists()


def test_a_store_given_a_url_of_another_scheme_is_refused(mem, sample_video):
    with pytest.raises(ConfigError, match="store 'directory' handles file://, not mem://"):
        run_export(build_graph({"representations": RGB}), sample_video, "mem://x", store="directory")
    with pytest.raises(ConfigError, match="unknown store 'nope'; installed: directory, (.*, )?mem"):
        run_export(build_graph({"representations": RGB}), sample_video, "out", store="nope")
    assert MemStore.opened == [] and not Path("out").exists()


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both(mem, registry, sample_video):
    registry.register_plugin(OtherMemPlugin(), "other-dist")
    try:
        with pytest.raises(PluginError) as e:
            run_export(build_graph({"representations": RGB}), sample_video, "mem://x")
    finally:
        registry.unregister_plugin("other-dist")
    assert "scheme 'mem' is registered by both store 'mem' of test-dist and store 'other-mem' of other-dist" in str(
        e.value)
    assert MemStore.opened == []


def test_a_registered_store_must_be_a_store(registry, tmp_path):
    class NotAStore:
        @hookimpl
        def register_stores(self, register):
            register("bad", dict, schemes=("bad",))

    registry.register_plugin(NotAStore(), "bad-dist")
    try:
        with pytest.raises(PluginError, match="store 'bad' from bad-dist is .*not a vrecore.store.Store subclass"):
            open_store("bad://x")
    finally:
        registry.unregister_plugin("bad-dist")
