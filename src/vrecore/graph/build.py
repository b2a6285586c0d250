"""The representation graph: built from a config, validated, topologically sorted.

Every error names the representation, what it asked for and how to fix it.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from vrecore.errors import GraphError
from vrecore.graph.registry import Registry, get_registry
from vrecore.graph.representation import Representation, Role, parameter_names, stored_dtype

__all__ = ["BINARY_FORMATS", "IMAGE_FORMATS", "NATIVE", "ExportSettings", "Graph", "Node", "build_graph", "disk_form",
           "output_shape"]

log = logging.getLogger(__name__)

BINARY_FORMATS = ("none", "npz", "npz-compressed")
IMAGE_FORMATS = ("none", "jpg", "png")
NATIVE = "native"
"""``output_size: native``: store a representation at its own size (`Representation.native_size`), not the frame's."""
MAX_OUTPUT_SIDE = 16384
"""Largest ``output_size`` side (a 16384x16384 float32 frame is 3 GiB a channel)."""
OUTPUT_DTYPES = ("float16", "float32", "float64")
"""``output_dtype`` casts floating-point disk forms only (class indices, masks and images keep their type)."""
DEFAULTS: dict[str, Any] = {"batch_size": 8, "binary_format": "npz", "image_format": "none",
                            "output_dtype": None, "output_size": None}
_SPEC_KEYS = ("type", "dependencies", "parameters", "export", *DEFAULTS)
# A representation's name is its output folder: nothing that could leave the output folder ('/', '\\', '..'
# alone), hide it (a leading '.') or break a Hydra override (spaces, '=', quotes). Parentheses and '+' are
# allowed because the seed tool's names use them ("buildings(nearby)", "normals_svd(depth_marigold)"); a shell
# needs such names quoted.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+()-]{0,127}$")


@attrs.frozen
class ExportSettings:
    """How the engine batches and stores one representation (global defaults + overrides)."""

    batch_size: int
    binary_format: str
    image_format: str
    output_dtype: str | None
    output_size: tuple[int, int] | str | None
    """[height, width]; `NATIVE` (its own size); None: the frame's size."""
    export: bool = True

    @property
    def writes(self) -> bool:
        """Whether anything of this representation goes to disk."""
        return self.export and (self.binary_format != "none" or self.image_format != "none")


@attrs.frozen(eq=False)
class Node:
    """One representation of the graph with its settings and the names it depends on."""

    name: str
    type_name: str
    representation: Representation
    settings: ExportSettings
    dependency_names: tuple[str, ...]
    parameters: Mapping[str, Any]
    input_node: Node | None = None
    """The dependency whose output size is this representation's input size (its first one), for a type that does
    not read the frames; None: its input size is the frame's."""


class Graph:
    """Representations in topological order (every dependency before its dependents)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)
        self._by_name = {n.name: n for n in self.nodes}

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def dependents(self, name: str) -> list[str]:
        """Names of the representations that take ``name`` as a dependency."""
        return [n.name for n in self.nodes if name in n.dependency_names]

    def to_config(self) -> dict[str, Any]:
        """A config that rebuilds this graph (stored in run metadata)."""
        reps = {}
        for n in self.nodes:
            deps = {role: (list(v) if isinstance(v, tuple) else v)
                    for role, v in _dependency_names_by_role(n.representation).items()}
            reps[n.name] = {"type": n.type_name, "dependencies": deps, "parameters": dict(n.parameters),
                            **{k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in attrs.asdict(n.settings).items()}}
        return {"representations": reps}


def build_graph(config: Mapping[str, Any], *, registry: Registry | None = None) -> Graph:
    """Build a graph from ``{"representations": {name: spec}, <global defaults>...}``."""
    registry = registry or get_registry()
    reps = config.get("representations")
    if isinstance(reps, (list, tuple)):
        reps = _from_list(reps)
    if not isinstance(reps, Mapping) or not reps:
        raise GraphError("the config has no representations; add a 'representations:' mapping "
                         "(e.g. pipeline=rgb_hsv) with at least one entry")
    defaults = {k: config.get(k, v) if config.get(k) is not None else v for k, v in DEFAULTS.items()}
    defaults["output_dtype"] = config.get("output_dtype")
    defaults["output_size"] = config.get("output_size")
    _check_settings("the global config", defaults)

    specs: dict[str, dict[str, Any]] = {}
    for name, spec in reps.items():
        name = str(name)
        _check_name(name)
        if spec is None or not isinstance(spec, Mapping):
            raise GraphError(f"representation '{name}' must be a mapping with at least 'type'; "
                             f"got {spec!r}")
        unknown = sorted(set(spec) - set(_SPEC_KEYS))
        if unknown:
            raise GraphError(f"representation '{name}' has unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(_SPEC_KEYS)}")
        if not spec.get("type"):
            raise GraphError(f"representation '{name}' has no 'type'; set e.g. type: color/rgb "
                             f"(see `vre list`)")
        specs[name] = dict(spec)

    classes = {name: _load_class(registry, name, spec["type"]) for name, spec in specs.items()}
    for spec in specs.values():
        spec["type"] = registry.resolve(spec["type"])  # an alias (e.g. the seed tool's name) becomes ours
    role_deps = {name: _assign_roles(name, classes[name], specs[name].get("dependencies"), specs)
                 for name in specs}
    order = _toposort({name: _flatten(d) for name, d in role_deps.items()})

    built: dict[str, Representation] = {}
    nodes: list[Node] = []
    for name in order:
        spec, cls = specs[name], classes[name]
        deps: dict[str, Any] = {}
        for role in cls.roles:
            value = role_deps[name].get(role.name)
            if value is None:
                continue
            deps[role.name] = tuple(built[v] for v in value) if role.many else built[value]
            for dep_name in (value if role.many else (value,)):
                _check_channels(name, spec["type"], role, dep_name, built[dep_name])
        params = dict(spec.get("parameters") or {})
        _move_parameters(name, cls, params, spec)
        representation = _instantiate(name, spec["type"], cls, deps, params)
        settings = dict(defaults)
        settings.update({k: spec[k] for k in DEFAULTS if spec.get(k) is not None})
        _check_settings(f"representation '{name}'", settings)
        size = settings["output_size"]
        first = next(iter(_flatten(role_deps[name])), None)
        nodes.append(Node(
            name=name, type_name=spec["type"], representation=representation,
            settings=ExportSettings(
                batch_size=int(settings["batch_size"]), binary_format=settings["binary_format"],
                image_format=settings["image_format"], output_dtype=settings["output_dtype"],
                output_size=size if size is None or size == NATIVE else (int(size[0]), int(size[1])),
                export=bool(spec.get("export", True))),
            dependency_names=tuple(_flatten(role_deps[name])), parameters=representation.parameters(),
            input_node=None if cls.uses_frames or first is None else next(n for n in nodes if n.name == first)))
        built[name] = representation
    return Graph(nodes)


def disk_form(node: Node, frame_shape: tuple[int, int]) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of one stored frame of ``node`` (what verification checks a file against)."""
    rep = node.representation
    probe = np.asarray(rep.to_disk(np.zeros((1, 2, 3, rep.output_spec().channels), np.float32)))
    h, w = output_shape(node, frame_shape)
    return (int(h), int(w), *probe.shape[3:]), stored_dtype(str(probe.dtype), node.settings.output_dtype)


def output_shape(node: Node, frame_shape: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of ``node``'s frames for a video of ``frame_shape``: its ``output_size``; with ``native``, its
    type's own size (`Representation.native_size`) for its input (the frame, or the output of its first dependency);
    else the frame's size."""
    size = node.settings.output_size
    if size == NATIVE:
        source = frame_shape if node.input_node is None else output_shape(node.input_node, frame_shape)
        h, w = node.representation.native_size((int(source[0]), int(source[1])))
        return int(h), int(w)
    if isinstance(size, tuple):
        return size
    return int(frame_shape[0]), int(frame_shape[1])


def _move_parameters(name: str, cls: type[Representation], params: dict[str, Any], spec: dict[str, Any]) -> None:
    """A parameter that became a setting (``cls.moved_parameters``) sets that setting, with one warning."""
    for old, setting in cls.moved_parameters.items():
        if old not in params:
            continue
        value = params.pop(old)
        if spec.get(setting) is not None and spec[setting] != value:
            raise GraphError(f"representation '{name}': parameter {old}={value} and {setting}={spec[setting]} disagree; "
                             f"{old} is now the setting {setting}: give only representations.{name}.{setting}")
        spec[setting] = value
        log.warning("representation '%s': parameter %s is now the setting %s; write representations.%s.%s=%s "
                    "(the parameter still works)", name, old, setting, name, setting, value)


def _from_list(items: Sequence[Any]) -> dict[str, Any]:
    """The list form of ``representations`` (each item has a ``name``) as a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item:
            raise GraphError(f"each item of a representations list needs a 'name'; got {item!r}")
        name = str(item["name"])
        if name in out:
            raise GraphError(f"representation name '{name}' is defined twice; names must be unique (rename one)")
        out[name] = {k: v for k, v in item.items() if k != "name"}
    return out


def _check_name(name: str) -> None:
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise GraphError(
            f"representation name {name!r} is not safe as a folder name; use letters, digits, '_', '-', '.', "
            f"'+' and parentheses, starting with a letter or digit (no '/', '..', spaces or empty names)")


def _load_class(registry: Registry, name: str, type_name: Any) -> type[Representation]:
    if not isinstance(type_name, str):
        raise GraphError(f"representation '{name}' has type {type_name!r}; it must be a string like 'color/hsv'")
    cls = registry.get(type_name, wanted_by=name).load()
    if not (isinstance(cls, type) and issubclass(cls, Representation)):
        raise GraphError(f"type '{type_name}' of representation '{name}' is not a Representation subclass; "
                         f"fix the plugin that registers it")
    return cls


def _assign_roles(name: str, cls: type[Representation], deps: Any,
                  specs: Mapping[str, Any]) -> dict[str, Any]:
    """Map the config's dependencies (a list in role order, or a role → name mapping) to roles."""
    roles = cls.roles
    role_names = [r.name for r in roles]
    described = ", ".join(f"{r.name}{'?' if r.optional else ''}{'...' if r.many else ''}" for r in roles) or "none"
    assigned: dict[str, Any] = {}
    if deps is None or deps == [] or deps == {}:
        pass
    elif isinstance(deps, Mapping):
        for role, value in deps.items():
            if role not in role_names:
                raise GraphError(f"representation '{name}' ({cls.type_name}) has no dependency role '{role}'; "
                                 f"its roles are: {described}")
            many = roles[role_names.index(role)].many
            if isinstance(value, (list, tuple)):
                if not many:
                    raise GraphError(f"representation '{name}': role '{role}' takes one representation, "
                                     f"got {list(value)}")
                assigned[role] = tuple(str(v) for v in value)
            else:
                assigned[role] = (str(value),) if many else str(value)
    elif isinstance(deps, (list, tuple)):
        values = [str(v) for v in deps]
        consumed = 0
        for role in roles:
            if consumed == len(values):
                break
            if role.many:
                assigned[role.name] = tuple(values[consumed:])
                consumed = len(values)
                break
            assigned[role.name] = values[consumed]
            consumed += 1
        if consumed < len(values):
            raise GraphError(f"representation '{name}' ({cls.type_name}) got {len(deps)} dependencies "
                             f"({', '.join(map(str, deps))}) but takes: {described}")
    else:
        raise GraphError(f"representation '{name}': dependencies must be a list of names or a "
                         f"role → name mapping, got {deps!r}")
    for role in roles:
        if role.name not in assigned and not role.optional:
            raise GraphError(f"representation '{name}' ({cls.type_name}) needs a '{role.name}' dependency; "
                             f"add it, e.g. dependencies: [<name of a {role.name} representation>] "
                             f"(roles: {described})")
    for value in _flatten(assigned):
        if value not in specs:
            others = ", ".join(sorted(specs)) or "none"
            raise GraphError(f"representation '{name}' depends on '{value}', which is not in the config; "
                             f"add a representation named '{value}' or fix the name (defined: {others})")
        if value == name:
            raise GraphError(f"representation '{name}' depends on itself; remove '{name}' from its dependencies")
    return assigned


def _flatten(role_deps: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for v in role_deps.values():
        out.extend(v if isinstance(v, tuple) else (v,))
    return out


def _dependency_names_by_role(rep: Representation) -> dict[str, Any]:
    return {role: (tuple(r.name for r in v) if isinstance(v, tuple) else v.name)
            for role, v in rep.dependencies.items()}


def _toposort(deps: Mapping[str, list[str]]) -> list[str]:
    """Kahn's algorithm keeping config order among ready nodes; a cycle is printed in the error."""
    pending = {n: set(d) for n, d in deps.items()}
    order: list[str] = []
    while pending:
        ready = [n for n, d in pending.items() if not d]
        if not ready:
            raise GraphError(f"the representations form a cycle: {_find_cycle(pending)}; "
                             f"remove one of these dependencies")
        for n in ready:
            order.append(n)
            del pending[n]
        for d in pending.values():
            d.difference_update(ready)
    return order


def _find_cycle(pending: Mapping[str, set[str]]) -> str:
    start = next(iter(pending))
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = sorted(pending[node])[0]
    cycle = path[path.index(node):] + [node]
    return " -> ".join(cycle)


def _check_channels(name: str, type_name: str, role: Role, dep_name: str, dep: Representation) -> None:
    if role.channels is None:
        return
    channels = dep.output_spec().channels
    if channels != role.channels:
        raise GraphError(f"representation '{name}' ({type_name}) needs a {role.channels}-channel '{role.name}' "
                         f"dependency but '{dep_name}' outputs {channels} channels; give it a "
                         f"{role.channels}-channel representation")


def _instantiate(name: str, type_name: str, cls: type[Representation], deps: dict[str, Any],
                 params: dict[str, Any]) -> Representation:
    accepted = parameter_names(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise GraphError(f"representation '{name}' ({type_name}) has unknown parameter(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(accepted) or 'none'}")
    try:
        return cls(name=name, dependencies=deps, **params)
    except (ValueError, TypeError) as e:
        raise GraphError(f"representation '{name}' ({type_name}): invalid parameter: {_validator_message(e)}") from e


def _validator_message(error: Exception) -> str:
    """One readable line: attrs validators raise (message, attribute, expected, value); keep the message."""
    text = error.args[0] if len(error.args) > 1 and isinstance(error.args[0], str) else str(error)
    return " ".join(text.split())


def _check_settings(where: str, s: Mapping[str, Any]) -> None:
    bs = s["batch_size"]
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise GraphError(f"{where}: batch_size must be a positive integer, got {bs!r}")
    if s["binary_format"] not in BINARY_FORMATS:
        raise GraphError(f"{where}: binary_format {s['binary_format']!r} is not one of {', '.join(BINARY_FORMATS)}")
    if s["image_format"] not in IMAGE_FORMATS:
        raise GraphError(f"{where}: image_format {s['image_format']!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if s["output_dtype"] is not None and s["output_dtype"] not in OUTPUT_DTYPES:
        raise GraphError(f"{where}: output_dtype {s['output_dtype']!r} is not one of {', '.join(OUTPUT_DTYPES)} "
                         f"(it applies to floating-point outputs; class indices, masks and images keep their type)")
    size = s["output_size"]
    if size is None or size == NATIVE:
        return
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise GraphError(f"{where}: output_size must be [height, width] in pixels or {NATIVE} (each representation "
                         f"at its own size), got {size!r}")
    if max(size) > MAX_OUTPUT_SIDE:
        raise GraphError(f"{where}: output_size {list(size)} is larger than {MAX_OUTPUT_SIDE} pixels on a side; "
                         f"choose a smaller output_size")
