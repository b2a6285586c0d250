"""`vre` sub-commands come from the `register_commands` hook: core's own and a plugin's, run, listed and refused alike."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vrecore.cli import main
from vrecore.errors import ConfigError, PluginError
from vrecore.graph.registry import get_registry, reset_registry
from vrecore.plugin import hookimpl

CALLS: list[list[str]] = []


def hello(argv: list[str]) -> int:
    """`vre hello NAME`: greets NAME; ``boom`` is a user mistake."""
    if argv == ["boom"]:
        raise ConfigError("hello cannot greet 'boom'; give another name")
    CALLS.append(argv)
    print(f"hello {' '.join(argv)}")
    return 0


class HelloPlugin:
    @hookimpl
    def register_commands(self, cli):
        cli.command("hello", hello, help="NAME  say hello")


class ClashingPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command("export", help="an export of its own")
        def export(argv: list[str]) -> int:
            return 0


@pytest.fixture
def plugin():
    """Registers a plugin object under ``test-dist`` for one test, and forgets it after."""
    reset_registry()
    registered: list[str] = []

    def register(obj: object) -> None:
        get_registry().register_plugin(obj, "test-dist")
        registered.append("test-dist")

    yield register
    for name in registered:
        get_registry().unregister_plugin(name)
    reset_registry()


def test_a_plugin_command_runs_and_is_listed(plugin, capsys):
    plugin(HelloPlugin())
    CALLS.clear()
    assert main(["hello", "x"]) == 0
    assert CALLS == [["x"]] and capsys.readouterr().out == "hello x\n"
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    core, _, added = text.partition("commands added by plugins:")
    assert "  export " in core and "hello" not in core
    listed = [line.split() for line in added.split("\n\nexamples:")[0].strip().splitlines()]
    assert ["hello", "NAME", "say", "hello", "[test-dist]"] in listed  # with the installed plugins' (vre distill)


def test_a_plugin_command_error_is_one_line(plugin, capsys):
    plugin(HelloPlugin())
    assert main(["hello", "boom"]) == 2
    assert capsys.readouterr().err.splitlines() == ["vre hello: error: hello cannot greet 'boom'; give another name"]


def test_a_command_named_like_a_core_one_is_refused_naming_both(plugin, capsys):
    plugin(ClashingPlugin())
    with pytest.raises(PluginError, match="command 'export' is registered by both test-dist and vrecore"):
        get_registry().extensions("command")
    assert main(["export"]) == PluginError.exit_code
    assert capsys.readouterr().err.splitlines() == [
        "vre export: error: command 'export' is registered by both test-dist and vrecore; uninstall one of them or "
        "disable it with VRE_DISABLED_PLUGINS"]


def test_an_unknown_command_names_the_nearest(capsys):
    assert main(["exprot"]) == 2
    assert capsys.readouterr().err.splitlines() == ["vre: error: unknown command 'exprot'; did you mean `vre export`?"]
    assert main(["zzzz"]) == 2
    assert "run `vre --help` for the commands" in capsys.readouterr().err


def test_every_core_command_is_registered_through_the_hook():
    reset_registry()
    commands = get_registry().extensions("command")
    core = sorted(name for name, c in commands.items() if c.provider == "vrecore")
    assert core == sorted(["export", "stream", "demo", "list", "plugins", "metadata", "verify", "convert-weights",
                           "weights", "collage", "video", "report", "read", "pack", "convert-config"])
    for name in core:  # each target names a function that exists (imports only the cli modules, no model code)
        assert callable(commands[name].load()), name


def test_help_imports_no_torch_and_no_command_module():
    code = ("import sys; from vrecore.cli import main; assert main(['--help']) == 0; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hydra', 'diffusers', 'transformers') "
            "or m in ('vrecore.cli.export', 'vrecore.cli.stream', 'vrecore.cli.weights')); "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "commands:" in r.stdout and "  export " in r.stdout


def test_listing_types_and_translating_a_seed_config_import_no_model_library(tmp_path):
    seed = Path(__file__).parent / "seed_configs" / "dronescapes2.yaml"  # marigold (diffusers), mask2former (transformers)
    code = (f"import sys; from vrecore.cli import main; assert main(['list']) == 0; "
            f"assert main(['convert-config', {str(seed)!r}, '-o', {str(tmp_path / 'p.yaml')!r}]) == 0; "
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers')); "
            f"assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "semantic/mask2former" in (tmp_path / "p.yaml").read_text()
