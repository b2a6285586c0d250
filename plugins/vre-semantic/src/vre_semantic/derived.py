"""Semantic modalities derived from other semantic maps: label mapping, majority vote, binary class masks."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from vre_semantic.base import SemanticMapRepresentation, colorize, labels_of, one_hot
from vre_semantic.labels import load_table, palette
from vrecore.plugin import Batch, OutputSpec, Representation, Role

__all__ = ["ClassMask", "SemanticMap", "SemanticVote"]

TIE_BREAKS = ("first-class", "first-dependency")
MASK_MODES = ("majority", "all", "any")


def _few(items: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def _one_of(choices: Sequence[str]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")
    return check


def _check_colors(colors: Any, n: int, what: str) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(colors, Sequence) or len(colors) != n:
        raise ValueError(f"{what} must list {n} RGB colours, got {colors!r}")
    out = []
    for c in colors:
        if not (isinstance(c, Sequence) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)):
            raise ValueError(f"{what}: {c!r} is not an RGB colour [r, g, b] with values 0..255")
        out.append((int(c[0]), int(c[1]), int(c[2])))
    return tuple(out)


def _classes_of(rep: Representation, owner: str) -> tuple[str, ...]:
    classes = rep.output_spec().classes
    if not classes:
        raise ValueError(f"its dependency '{rep.name}' ({rep.type_name}) declares no class names; "
                         f"'{owner}' needs a semantic map (semantic/... type)")
    return tuple(classes)


def _semantic_deps(rep: Representation) -> tuple[Representation, ...]:
    deps = rep.dependencies.get("semantic", ())
    deps = deps if isinstance(deps, tuple) else (deps,)
    if not deps:
        raise ValueError("it needs at least one 'semantic' dependency")
    return deps


@attrs.define(kw_only=True, eq=False)
class SemanticMap(SemanticMapRepresentation):
    """A semantic map relabelled into another label set (argmax, then a class-name table).

    ``table`` is a shipped table name (``mapillary_vistas_to_dronescapes``, ``coco_panoptic_to_dronescapes``)
    or a mapping source class -> target class; with a mapping, ``target_classes`` lists the target label
    set (in channel order) and ``target_colors`` optionally their colours. Every source class must be
    mapped, unless ``default_target`` names the class for the unmapped ones. Output: the one-hot map.
    """

    type_name = "semantic/map"
    roles = (Role("semantic"),)

    table: str | dict[str, str] = "mapillary_vistas_to_dronescapes"
    target_classes: list[str] | None = None
    target_colors: list[list[int]] | None = None
    default_target: str | None = None
    _targets: tuple[str, ...] = attrs.field(init=False, factory=tuple)
    _colors: tuple[tuple[int, int, int], ...] = attrs.field(init=False, factory=tuple)
    _lookup: np.ndarray = attrs.field(init=False, factory=lambda: np.zeros(0, np.int64))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.table, str):
            shipped = load_table(self.table)
            mapping: Mapping[str, str] = shipped["mapping"]
            targets = tuple(self.target_classes or shipped["target_classes"])
            colors = self.target_colors or (shipped["target_colors"] if targets == tuple(shipped["target_classes"])
                                            else None)
        elif isinstance(self.table, Mapping):
            mapping = {str(k): str(v) for k, v in self.table.items()}
            if not self.target_classes:
                raise ValueError("table is a mapping, so target_classes must list the target classes in channel order")
            targets = tuple(str(c) for c in self.target_classes)
            colors = self.target_colors
        else:
            raise ValueError(f"table must be a shipped table name or a mapping source class -> target class, "
                             f"got {self.table!r}")
        if len(set(targets)) != len(targets):
            duplicates = sorted({c for c in targets if targets.count(c) > 1})
            raise ValueError(f"target_classes has duplicates: {_few(duplicates)}")
        self._targets = targets
        self._colors = palette(len(targets)) if colors is None else _check_colors(colors, len(targets), "target_colors")
        unknown_targets = sorted({t for t in mapping.values() if t not in targets})
        if unknown_targets:
            raise ValueError(f"the table maps to {_few(unknown_targets)}, not in target_classes {list(targets)}")
        if self.default_target is not None and self.default_target not in targets:
            raise ValueError(f"default_target {self.default_target!r} is not one of target_classes {list(targets)}")

        dep = self.dependencies.get("semantic")
        if dep is None:
            raise ValueError("it needs a 'semantic' dependency")
        source = _classes_of(dep, self.name)
        unknown = [c for c in mapping if c not in source]
        if unknown:
            raise ValueError(f"the table names {len(unknown)} class(es) that '{dep.name}' does not have: "
                             f"{_few(unknown)}; its classes are {_few(source, 8)}")
        unmapped = [c for c in source if c not in mapping]
        if unmapped and self.default_target is None:
            raise ValueError(f"{len(unmapped)} class(es) of '{dep.name}' are not in the table: {_few(unmapped)}; "
                             f"map them or set default_target")
        index = {t: i for i, t in enumerate(targets)}
        # Every source class is mapped, or default_target is set (checked above).
        self._lookup = np.array([index[mapping[c] if c in mapping else str(self.default_target)] for c in source],
                                dtype=np.int64)

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        return self._targets, self._colors

    def compute(self, batch: Batch) -> np.ndarray:
        return one_hot(self._lookup[labels_of(batch.deps["semantic"])], len(self._targets))


@attrs.define(kw_only=True, eq=False)
class SemanticVote(SemanticMapRepresentation):
    """The per-pixel majority class of several semantic maps of one label set.

    Each map votes for its argmax. Ties go to the lowest class index (``tie_break="first-class"``, the
    seed's behaviour) or to the earliest listed dependency among the tied ones (``"first-dependency"``).
    Output: the one-hot map.
    """

    type_name = "semantic/vote"
    roles = (Role("semantic", many=True),)

    tie_break: str = attrs.field(default="first-class", validator=_one_of(TIE_BREAKS))
    _classes: tuple[str, ...] = attrs.field(init=False, factory=tuple)
    _colors: tuple[tuple[int, int, int], ...] = attrs.field(init=False, factory=tuple)

    def __attrs_post_init__(self) -> None:
        deps = _semantic_deps(self)
        first = _classes_of(deps[0], self.name)
        for dep in deps[1:]:
            other = _classes_of(dep, self.name)
            if other != first:
                diff = next((i for i, (a, b) in enumerate(zip(first, other, strict=False)) if a != b),
                            min(len(first), len(other)))
                raise ValueError(f"'{dep.name}' has another label set than '{deps[0].name}' ({len(other)} vs "
                                 f"{len(first)} classes, first difference at index {diff}); map them to one label "
                                 f"set first (semantic/map)")
        self._classes = first
        colors = deps[0].output_spec().colors
        self._colors = tuple(colors) if colors else palette(len(first))

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        return self._classes, self._colors

    def compute(self, batch: Batch) -> np.ndarray:
        votes = [labels_of(m) for m in batch.deps["semantic"]]
        n_classes = len(self._classes)
        counts = np.zeros((*votes[0].shape, n_classes), dtype=np.int32)
        flat, pixels = counts.reshape(-1, n_classes), np.arange(votes[0].size)
        for v in votes:  # one vote per pixel and voter, so plain fancy-index increments do not collide
            flat[pixels, v.ravel()] += 1
        winner = counts.argmax(axis=-1)
        if self.tie_break == "first-dependency":
            best = counts.max(axis=-1)
            # Walk the voters backwards so that the earliest one whose class is tied for first wins.
            for v in reversed(votes):
                tied = np.take_along_axis(counts, v[..., None], axis=-1)[..., 0] == best
                winner = np.where(tied, v, winner)
        return one_hot(winner, n_classes)


@attrs.define(kw_only=True, eq=False)
class ClassMask(Representation):
    """A binary mask of the pixels whose class is in a set, voted over one or more semantic maps.

    ``classes`` is a list of class names (each map uses the names it has; every name must exist in
    at least one map and every map must have at least one) or a mapping dependency name -> its
    class names. ``mode``: ``majority`` (more than half the maps agree), ``all`` or ``any``. An
    optional ``mask`` dependency is ANDed in (e.g. a geometric safe-landing mask). Output: bool
    (H, W) on disk; previews paint the mask with ``colors`` (off, on).
    """

    type_name = "mask/classes"
    roles = (Role("semantic", many=True), Role("mask", optional=True, channels=1))

    classes: list[str] | dict[str, list[str]] = attrs.field()
    mode: str = attrs.field(default="majority", validator=_one_of(MASK_MODES))
    colors: list[list[int]] = attrs.field(factory=lambda: [[0, 0, 0], [255, 255, 255]])
    _lookups: tuple[np.ndarray, ...] = attrs.field(init=False, factory=tuple)
    _selected: dict[str, list[str]] = attrs.field(init=False, factory=dict)
    _colors: tuple[tuple[int, int, int], ...] = attrs.field(init=False, factory=tuple)

    def __attrs_post_init__(self) -> None:
        self._colors = _check_colors(self.colors, 2, "colors (off, on)")
        deps = _semantic_deps(self)
        label_sets = {dep.name: _classes_of(dep, self.name) for dep in deps}
        if isinstance(self.classes, Mapping):
            wanted = {str(k): [str(c) for c in v] for k, v in self.classes.items()}
            missing, extra = [d.name for d in deps if d.name not in wanted], sorted(set(wanted) - set(label_sets))
            if missing or extra:
                raise ValueError(f"classes is a mapping by dependency name: it must have exactly the keys "
                                 f"{[d.name for d in deps]} (missing: {missing or 'none'}, unknown: {extra or 'none'})")
            for dep_name, names in wanted.items():
                unknown = [c for c in names if c not in label_sets[dep_name]]
                if unknown:
                    raise ValueError(f"'{dep_name}' has no class(es) {_few(unknown)}; its classes are "
                                     f"{_few(label_sets[dep_name], 8)}")
        elif isinstance(self.classes, Sequence) and not isinstance(self.classes, str) and self.classes:
            names = [str(c) for c in self.classes]
            nowhere = [c for c in names if not any(c in s for s in label_sets.values())]
            if nowhere:
                raise ValueError(f"class(es) {_few(nowhere)} are in none of the semantic maps "
                                 f"({', '.join(label_sets)})")
            wanted = {d: [c for c in names if c in s] for d, s in label_sets.items()}
            empty = [d for d, v in wanted.items() if not v]
            if empty:
                raise ValueError(f"semantic map '{empty[0]}' has none of the classes {_few(names)}; its classes are "
                                 f"{_few(label_sets[empty[0]], 8)} (give its class names too, or a mapping by "
                                 f"dependency name)")
        else:
            raise ValueError(f"classes must be a non-empty list of class names or a mapping dependency name -> "
                             f"class names, got {self.classes!r}")
        self._selected = wanted
        lookups = []
        for dep in deps:
            lut = np.zeros(len(label_sets[dep.name]), dtype=bool)
            lut[[label_sets[dep.name].index(c) for c in wanted[dep.name]]] = True
            lookups.append(lut)
        self._lookups = tuple(lookups)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def compute(self, batch: Batch) -> np.ndarray:
        maps = batch.deps["semantic"]
        votes = np.zeros(maps[0].shape[:-1], dtype=np.int32)
        for lut, m in zip(self._lookups, maps, strict=True):
            votes += lut[labels_of(m)]
        n = len(maps)
        if self.mode == "majority":
            out = votes > n // 2
        elif self.mode == "all":
            out = votes == n
        else:
            out = votes > 0
        gate = batch.deps.get("mask")
        if gate is not None:
            out &= (gate[..., 0] if gate.dtype == np.bool_ else gate[..., 0] > 0.5)
        return out[..., None]

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return colorize(memory[..., 0].astype(np.int64), self._colors)

    def metadata(self) -> dict[str, Any]:
        return {"classes": ["others", self.name], "colors": [list(c) for c in self._colors], "mode": self.mode,
                "selected_classes": self._selected}
