"""One engine: batch export and streaming run the same executor and give bit-identical outputs."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.graph.executor import to_stored
from vrecore.store.npz import load_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("output_dtype", [None, "float32"])
def test_export_and_stream_give_bit_identical_outputs(registry, sample_video, tmp_path, output_dtype):
    """What a stream computes, in its stored form, is what an export stores, with the run's output_dtype too
    (a float32 run stores unrounded values where a type's own disk form is float16)."""
    pytest.importorskip("vre_geometry")
    pytest.importorskip("vre_edges")
    from vrecore.streaming.graph import stream

    reps = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
            "depth": {"type": "test/grey", "output_dtype": "float16"},  # depth-like: float32 stored as float16
            "normals": {"type": "normals/depth-svd", "dependencies": ["depth"]},
            "gradient": {"type": "normals/depth-gradient", "dependencies": ["depth"]},
            "near": {"type": "mask/depth-range", "dependencies": ["depth"], "parameters": {"max_depth": 0.5}},
            "edges": {"type": "edges/canny", "dependencies": ["rgb"]},
            "boundaries": {"type": "soft-segmentation/generalized-boundaries", "dependencies": ["rgb"]}}
    graph = build_graph({"representations": reps, "batch_size": 4, "output_dtype": output_dtype})
    assert run_export(graph, sample_video, tmp_path / "out", frames="0..12").ok
    streamed = 0
    for result in stream(str(sample_video), build_graph({"representations": reps, "output_dtype": output_dtype}),
                         realtime=False, drop_frames=False, max_frames=12):
        for name in reps:
            stored = load_npz(tmp_path / "out" / name / "npz" / f"{result.seq}.npz")
            live = to_stored(graph[name], result.outputs[name][None])[0]
            assert live.dtype == stored.dtype and np.array_equal(live, stored, equal_nan=True), (name, result.seq)
        if output_dtype == "float32":  # one cast, straight from the computed values
            assert np.array_equal(to_stored(graph["normals"], result.outputs["normals"][None])[0],
                                  result.outputs["normals"].astype(np.float32), equal_nan=True)
        streamed += 1
    assert streamed == 12


def test_a_transient_out_of_memory_is_retried_in_a_stream_as_in_an_export(registry, sample_video, tmp_path):
    from vrecore.streaming.graph import stream

    reps = {"m": {"type": "test/oom-once", "parameters": {"times": 1}, "batch_size": 1}}
    results = list(stream(str(sample_video), build_graph({"representations": reps}), realtime=False,
                          drop_frames=False, max_frames=3))
    assert [r.seq for r in results] == [0, 1, 2] and all(not r.errors for r in results)
    graph = build_graph({"representations": reps})
    r = run_export(graph, sample_video, tmp_path / "o", frames="0..3")
    assert r.ok and r.stats["m"].computed == 3 and graph["m"].representation.calls == 4
    twice = build_graph({"representations": {"m": {**reps["m"], "parameters": {"times": 2}}}})
    from vrecore.graph.executor import RepresentationFailed

    with pytest.raises(RepresentationFailed, match=r"failed on frame 0: MemoryError: test: out of memory on call 2"):
        list(stream(str(sample_video), twice, realtime=False, drop_frames=False, max_frames=3))


# -- the shape of the code ----------------------------------------------------------------------------------
def _packages() -> dict[str, Path]:
    found = {"vrecore": ROOT / "src" / "vrecore"}
    for src in sorted((ROOT / "plugins").glob("vre-*/src/*")):
        if (src / "__init__.py").exists():
            found[src.name] = src
    return found


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules ``module`` imports, at import time or later inside functions (TYPE_CHECKING blocks aside):
    a lazy import that closes a cycle is still a cycle of the design."""
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for package, root in _packages().items():
        for path in root.rglob("*.py"):
            name = _module_name(package, root, path)
            graph[name] = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                if not all(c == d or c.startswith(d + ".") for c in cycle):  # a package and its own modules
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif d not in state:
                walk(d)
        stack.pop()
        state[m] = 2

    sys.setrecursionlimit(10000)
    for m in sorted(edges):
        if m not in state:
            walk(m)
    assert len(graph) > 40


def test_core_names_no_plugin():
    names = set()
    for pyproject in (ROOT / "plugins").glob("vre-*/pyproject.toml"):
        dist = pyproject.parent.name
        names |= {dist, dist.replace("-", "_")}
    offenders = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / "src").rglob("*.py") for n in names
                 if n in p.read_text()]
    assert names and offenders == []
