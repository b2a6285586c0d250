"""The core's layout stays readable: a handful of job folders, short modules, imports that only go down."""
from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = SRC / "vrecore"

FLOORS = {"errors": 0, "_lazy": 0, "_moved": 0, "_malloc": 0, "_cache": 0, "frames": 1, "graph": 2, "_builtin": 3, "store": 3,
          "weights": 3, "plugin": 7, "export": 4, "data": 5, "visual": 5, "streaming": 6, "testing": 7, "cli": 8}
"""Each unit directly under src/vrecore and its floor: a module imports only from its own unit or lower floors
(the package's ``__init__`` is a table of lazy names and imports nothing)."""

MAX_LINES = 500
MAX_PUBLIC_ENTRIES = 12


def _modules() -> dict[str, Path]:
    out = {}
    for path in CORE.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, int]]:
    """Every vrecore module ``name`` imports, top-level, lazy (inside functions) and under TYPE_CHECKING."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            if not base.startswith("vrecore"):
                continue
            for alias in node.names:
                found.append((f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("vrecore")]
    out = []
    for target, line in found:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        if target != name:
            out.append((target, line))
    return out


def _unit(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def test_a_handful_of_public_entries_under_vrecore():
    public = sorted(p.name for p in CORE.iterdir() if not p.name.startswith(("_", ".")))
    assert len(public) <= MAX_PUBLIC_ENTRIES, public
    assert {Path(p).stem for p in public} <= set(FLOORS), f"give each new unit a floor in FLOORS: {public}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_500_lines(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(SRC)} has {lines} lines: split it by job"


def test_imports_go_down_the_floors_only():
    upward = []
    for name in MODULES:
        if name == "vrecore":
            continue
        for target, line in _imports(name):
            if target == "vrecore" or _unit(target) == _unit(name):
                continue
            if FLOORS[_unit(target)] > FLOORS[_unit(name)]:
                upward.append(f"{MODULES[name].relative_to(SRC)}:{line} imports {target} (floor {FLOORS[_unit(target)]} "
                              f"above {_unit(name)}'s {FLOORS[_unit(name)]})")
    assert not upward, "\n".join(upward)


def test_no_import_cycle_even_under_type_checking():
    graph = {name: {t for t, _ in _imports(name)} - {"vrecore"} for name in MODULES if name != "vrecore"}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, []):
            break
    assert not cycle, " -> ".join(cycle)


OLD_PATHS = {
    "vrecore.representation": "Representation", "vrecore.registry": "get_registry", "vrecore.hookspecs": "hookimpl",
    "vrecore.engine": "Executor", "vrecore.plan": "make_plan", "vrecore.chunks": "ChunkRunner",
    "vrecore.writer": "FrameWriter", "vrecore.runlog": "RunLog", "vrecore.schedule": "make_groups",
    "vrecore.workers": "run_workers", "vrecore.ray_runner": "run_on_ray", "vrecore.metadata": "regenerate_metadata",
    "vrecore.verify": "check_frames", "vrecore.npz": "load_npz", "vrecore.sample": "sample_clip",
    "vrecore.tiles": "TileRenderer", "vrecore.weights_store": "sha256_file",
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_import_path_still_imports_and_names_the_new_one(old):
    sys.modules.pop(old, None)  # an earlier test may have imported it: the warning comes with the import
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert hasattr(module, OLD_PATHS[old])
    assert module.__name__ != old
    assert [str(w.message) for w in caught] == [f"{old} moved to {module.__name__}; import it from there"]


@pytest.mark.parametrize("path", ["vrecore.store:Store", "vrecore.store:DirectoryStore", "vrecore.export:run_export",
                                  "vrecore.graph:build_graph", "vrecore.frames:open_video", "vrecore.weights:WeightVariant",
                                  "vrecore.weights:WeightedRepresentation", "vrecore.data:MultiTaskDataset",
                                  "vrecore.streaming:GraphProcessor", "vrecore.testing:RepresentationTestSuite",
                                  "vrecore.cli:main"])
def test_documented_package_names_still_import(path):
    module, _, attr = path.partition(":")
    assert getattr(importlib.import_module(module), attr) is not None
