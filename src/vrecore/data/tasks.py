"""How one task's stored frames become training arrays: through its type's `from_disk`, or raw."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, VreError
from vrecore.graph.build import NATIVE
from vrecore.graph.representation import Batch, Representation

__all__ = ["TaskReader", "VirtualTask", "build_reader", "build_virtual", "subgraph_config"]


@attrs.define(eq=False)
class TaskReader:
    """Turns one task's disk-form frame into its item array (channels last).

    Class indices stay integer, int64 (H, W) (``one_hot``: float32 (H, W, C)); masks are bool (H, W, 1);
    everything else goes through the type's `from_disk` (float16 becomes float32; uint8 images stay uint8).
    Without a type (its plugin is not installed, or the export records none) the stored array is used as is.
    """

    name: str
    representation: Representation | None
    classes: tuple[str, ...] | None
    one_hot: bool = False

    @property
    def is_classification(self) -> bool:
        """Whether values are classes (never normalized)."""
        return self.classes is not None

    def plain(self, disk_dtype: np.dtype, disk_ndim: int) -> bool:
        """Whether `item` of such a stored array is only a reshape and a cast (then a reader may copy the
        stored bytes straight into a batch and cast them there)."""
        if disk_dtype.kind in "iu" and self.classes is not None and disk_ndim == 2:
            return not self.one_hot
        return self.representation is None or type(self.representation).from_disk is Representation.from_disk

    def item(self, disk: np.ndarray) -> np.ndarray:
        if disk.dtype.kind in "iu" and self.classes is not None and disk.ndim == 2:
            if self.one_hot:
                return np.eye(len(self.classes), dtype=np.float32)[disk]
            return disk.astype(np.int64)
        if self.representation is not None:
            memory = np.asarray(self.representation.from_disk(disk[None]))[0]
        else:
            memory = disk[..., None] if disk.ndim == 2 else disk
        if memory.dtype.kind == "f" and memory.dtype != np.float32:
            return memory.astype(np.float32)
        return memory


def _classes(representation: Representation | None, metadata: Mapping[str, Any]) -> tuple[str, ...] | None:
    if representation is not None:
        classes = representation.output_spec().classes
        return tuple(classes) if classes is not None else None
    names = metadata.get("classes")
    return tuple(str(c) for c in names) if isinstance(names, list) and names else None


def subgraph_config(name: str, specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A pipeline config holding ``name`` and everything it depends on (from ``specs``)."""
    wanted: dict[str, Any] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in wanted:
            continue
        if current not in specs:
            raise ConfigError(f"'{current}' (needed by '{name}') is neither stored nor described by the export's "
                              f"runs; give its spec in virtual_tasks")
        spec = dict(specs[current])
        wanted[current] = spec
        deps = spec.get("dependencies") or {}
        values = deps.values() if isinstance(deps, Mapping) else deps
        for value in values:
            todo.extend(value if isinstance(value, (list, tuple)) else [value])
    return {"representations": {n: wanted[n] for n in reversed(list(wanted))}}


def _build(config: Mapping[str, Any], cache: dict[str, Any]) -> Any:
    """The graph of ``config``, built once per distinct config (videos of one dataset share their types)."""
    from vrecore.graph.build import build_graph

    key = json.dumps(config, sort_keys=True, default=str)
    if key not in cache:
        cache[key] = build_graph(config)
    return cache[key]


def build_reader(name: str, specs: Mapping[str, Mapping[str, Any]], metadata: Mapping[str, Any], *,
                 provider: str | None, one_hot: bool, warn: Callable[[str], None], cache: dict[str, Any]) -> TaskReader:
    """The reader of stored task ``name`` through its type; raw arrays (and one warning) when the type
    cannot be built here."""
    spec = specs.get(name)
    if spec is None or not spec.get("type"):
        warn(f"task '{name}': the export records no type for it; reading its stored arrays as they are "
             f"(give types={{'{name}': 'family/model'}} to read it through a type)")
        return TaskReader(name, None, _classes(None, metadata), one_hot)
    from vrecore.graph.registry import get_registry

    try:
        get_registry().get(spec["type"], wanted_by=name)
    except VreError as e:
        install = f"install {provider}, which provides it," if provider and provider != "unknown" else \
            "install the plugin that provides it"
        warn(f"task '{name}': type '{spec['type']}' is not installed here ({e}); reading its stored arrays as they "
             f"are; {install} to read it through its type")
        return TaskReader(name, None, _classes(None, metadata), one_hot)
    try:
        graph = _build(subgraph_config(name, specs), cache)
    except VreError as e:
        warn(f"task '{name}': type '{spec['type']}' cannot be built from what the export records ({e}); reading "
             f"its stored arrays as they are")
        return TaskReader(name, None, _classes(None, metadata), one_hot)
    representation = graph[name].representation
    return TaskReader(name, representation, _classes(representation, metadata), one_hot)


@attrs.define(eq=False)
class VirtualTask:
    """A procedural task computed at read time from stored tasks, as the export would have computed it."""

    name: str
    graph: Any
    read_from_disk: frozenset[str]
    """Stored representations the task is computed from."""
    computed: tuple[str, ...]
    """The representations computed, in graph order (the task last)."""
    reader: TaskReader

    def compute(self, frame: int, read: Callable[[str], np.ndarray]) -> np.ndarray:
        """The disk form of the task at ``frame``; ``read(name)`` gives a stored task's disk form."""
        memory = {name: np.asarray(self.graph[name].representation.from_disk(read(name)[None]))
                  for name in self.read_from_disk}
        for name in self.computed:
            node = self.graph[name]
            rep = node.representation
            deps = {role: (tuple(memory[d.name] for d in dep) if isinstance(dep, tuple) else memory[dep.name])
                    for role, dep in rep.dependencies.items()}
            out = np.asarray(rep.compute(Batch(indices=np.array([frame]), frames=None, deps=deps)))
            size = node.settings.output_size
            if size == NATIVE:  # its own size for its input, as the export made it
                source = node.input_node
                size = rep.native_size(memory[source.name].shape[1:3] if source is not None else out.shape[1:3])
            memory[name] = rep.resize(out, size) if size is not None else out
        return np.asarray(self.graph[self.name].representation.to_disk(memory[self.name]))[0]


def build_virtual(name: str, specs: Mapping[str, Mapping[str, Any]], stored: set[str], *, one_hot: bool,
                  cache: dict[str, Any]) -> VirtualTask:
    """A virtual task: it and every representation between it and the stored tasks it needs must be
    procedural (no model, no video frames)."""
    graph = _build(subgraph_config(name, specs), cache)
    needed = _ancestors_until_stored(name, graph, stored)
    computed = tuple(n.name for n in graph if n.name in needed and (n.name not in stored or n.name == name))
    for node_name in computed:
        rep = graph[node_name].representation
        why = ("it is learned (a model)" if rep.learned else "it reads the video's frames" if rep.uses_frames
               else "it needs neighbouring frames" if rep.frame_offsets() else None)
        if why:
            whose = "" if node_name == name else f" (needed by '{name}', and not stored)"
            raise ConfigError(f"virtual task '{node_name}'{whose} cannot be computed at read time: {why}; "
                              f"export it instead")
    reps = graph[name].representation
    return VirtualTask(name, graph, frozenset(needed - set(computed)), computed,
                       TaskReader(name, reps, _classes(reps, {}), one_hot))


def _ancestors_until_stored(name: str, graph: Any, stored: set[str]) -> set[str]:
    """``name`` and its dependencies, not looking past stored ones."""
    kept: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in kept:
            continue
        kept.add(current)
        if current not in stored or current == name:
            todo.extend(graph[current].dependency_names)
    return kept
