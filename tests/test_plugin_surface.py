"""The plugin surface: plugins import vrecore.plugin only, it stays light, and the learned-type base."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest

import vrecore.plugin
from vrecore.plugin import Batch, LearnedRepresentation, OutputSpec, WeightVariant

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted([*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("examples/*/src/**/*.py")])
ALLOWED = ("vrecore.plugin", "vrecore.testing")


def core_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every vrecore import in ``source``: top-level, in functions, under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "vrecore"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] == "vrecore":
                found.append((node.lineno, node.module))
    return found


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    """The vrecore imports a plugin's code may not make: anything but vrecore.plugin and vrecore.testing."""
    return [(line, module) for line, module in core_imports(source)
            if not any(module == ok or module.startswith(ok + ".") for ok in ALLOWED)]


def test_the_walk_finds_lazy_type_checking_and_top_level_imports():
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        import vrecore
        from vrecore.plugin import hookimpl
        from vrecore.graph.representation import Batch
        if TYPE_CHECKING:
            from vrecore.weights.variants import ResolvedWeights
        def f():
            import vrecore.graph.executor as engine
            from vrecore.testing import populate_hub_cache
            from . import sibling
        """)
    assert forbidden_imports(source) == [(3, "vrecore"), (5, "vrecore.graph.representation"), (7, "vrecore.weights.variants"),
                                         (9, "vrecore.graph.executor")]


def test_plugins_import_from_vrecore_only_the_plugin_surface():
    assert len(PLUGIN_SOURCES) > 20, "the plugins' sources were not found"
    bad = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in PLUGIN_SOURCES
           for line, module in forbidden_imports(path.read_text(encoding="utf-8"))]
    assert not bad, "plugins import vrecore internals; import these names from vrecore.plugin:\n" + "\n".join(bad)


def test_importing_the_surface_and_every_name_in_it_imports_no_torch():
    code = ("import sys, vrecore.plugin as p; [getattr(p, n) for n in p.__all__]; "
            "print([m for m in ('torch', 'transformers', 'diffusers', 'safetensors') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_surface_lists_what_it_gives():
    assert sorted(vrecore.plugin.__all__) == sorted(vrecore.plugin._LAZY)
    assert set(vrecore.plugin.__all__) <= set(dir(vrecore.plugin))
    from vrecore.graph.representation import Representation
    from vrecore.weights.representation import WeightedRepresentation

    assert vrecore.plugin.Representation is Representation
    assert issubclass(LearnedRepresentation, WeightedRepresentation)
    with pytest.raises(AttributeError, match="vrecore.plugin.*get_registry"):
        vrecore.plugin.get_registry  # noqa: B018


# -- the learned-type base ------------------------------------------------------------------------------


@attrs.define(kw_only=True, eq=False)
class Doubler(LearnedRepresentation):
    """A one-weight "network" (x * w) standing in for a plugin's model."""

    type_name = "test/doubler"
    uses_frames = True
    variants = {"two": WeightVariant(name="doubler-two", filenames=("model.safetensors",),
                                     repo_id="example/doubler", revision="0" * 40)}
    variant: str = "two"
    seen: list = attrs.field(factory=list, init=False)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float32")

    def load_model(self, device):
        import torch

        model = torch.nn.Conv2d(3, 1, 1, bias=False)
        torch.nn.init.constant_(model.weight, 2.0 / 3)
        return model.train()

    def predict(self, batch: Batch) -> np.ndarray:
        import torch

        self.seen.append(torch.is_inference_mode_enabled())
        x = torch.from_numpy(batch.frames).float().permute(0, 3, 1, 2).to(self.device)
        return self.model(x).permute(0, 2, 3, 1).numpy()


def _batch() -> Batch:
    return Batch(indices=np.arange(2), frames=np.full((2, 4, 5, 3), 6, np.uint8), deps={})


def test_learned_base_places_the_model_in_eval_mode_and_computes_in_inference_mode():
    torch = pytest.importorskip("torch")
    rep = Doubler(name="d")
    rep.setup("cpu")
    assert rep.device == torch.device("cpu") and not rep.model.training
    np.testing.assert_allclose(rep.compute(_batch()), np.full((2, 4, 5, 1), 12.0), rtol=1e-6)
    assert rep.seen == [True]


def test_learned_base_refuses_before_setup_and_after_teardown(monkeypatch):
    pytest.importorskip("torch")
    released = []
    monkeypatch.setattr("vrecore.weights.learned.release_accelerator_memory", lambda: released.append(True))
    rep = Doubler(name="d")
    for use in (lambda: rep.model, lambda: rep.device, lambda: rep.compute(_batch())):
        with pytest.raises(RuntimeError, match=r"^'test/doubler' \('d'\) used before setup\(\); call setup\(device\) "):
            use()
    rep.setup("cpu")
    rep.teardown()
    assert released == [True] and rep.seen == []
    with pytest.raises(RuntimeError, match="used before setup"):
        rep.compute(_batch())


def test_the_engine_frees_accelerator_memory_through_the_one_helper():
    import vrecore.graph.devices
    import vrecore.graph.executor
    import vrecore.weights.learned

    helper = vrecore.graph.devices.release_accelerator_memory
    assert vrecore.graph.executor.release_accelerator_memory is helper
    assert vrecore.weights.learned.release_accelerator_memory is helper


# -- the third-party example of docs/plugins.md ---------------------------------------------------------


def _example_files() -> dict[str, str]:
    """Path → text of each file of the complete plugin in docs/plugins.md (a fenced block whose first or second line,
    a comment, names it; the file is the rest of the block)."""
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    example = text[text.index("## A complete third-party plugin"):]
    files = {}
    for block in example.split("```")[1::2]:
        body = block.split("\n", 1)[1]
        for name in body.splitlines()[:2]:
            if name.startswith("# ") and name.rstrip().endswith((".toml", ".py", ".yaml")):
                files[name[2:].strip()] = body.replace(name + "\n", "", 1)
                break
    return files


def test_the_documented_third_party_plugin_is_the_example_and_imports_only_the_surface():
    """docs/plugins.md shows examples/vre-motion as it is (its own tests run it through every hook)."""
    example = ROOT / "examples" / "vre-motion"
    files = _example_files()
    assert {"pyproject.toml", "src/vre_motion/__init__.py", "src/vre_motion/difference.py"} <= set(files)
    for path, content in files.items():
        assert content == (example / path).read_text(encoding="utf-8"), f"docs/plugins.md's {path} differs from the example"

