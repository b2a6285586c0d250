"""Binary masks from geometry: safe-landing areas (normals + depth [+ semantic classes]) and depth ranges."""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_geometry._params import boolean, check_colors, finite, to_colors
from vrecore.plugin import Batch, OutputSpec, Representation, Role

__all__ = ["DepthRange", "SafeLanding", "class_labels", "gate_of"]


def class_labels(memory: np.ndarray) -> np.ndarray:
    """Class index (B, H, W) of a semantic memory form (B, H, W, C): argmax of C > 1 scores, else the index map.

    An index map (C == 1) may be float (e.g. read back from a float disk form): it is rounded, and NaN or
    negative values become -1, which is no class.
    """
    if memory.shape[-1] > 1:
        return memory.argmax(axis=-1)
    labels = memory[..., 0]
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64, copy=False)
    with np.errstate(invalid="ignore"):
        rounded = np.rint(labels)
        return np.where(rounded >= 0, rounded, -1).astype(np.int64)


def gate_of(memory: np.ndarray) -> np.ndarray:
    """A (B, H, W, 1) mask dependency as bool (B, H, W): bools as they are, numbers > 0.5 (NaN: False)."""
    x = memory[..., 0]
    return x if x.dtype == np.bool_ else x > 0.5


def _colorize(mask: np.ndarray, colors: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    return np.asarray(colors, dtype=np.uint8)[mask.astype(np.intp)]


def _to_classes(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def _check_classes(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    ok = isinstance(value, tuple) and len(value) > 0 and all(
        isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool) and c >= 0) for c in value)
    if not ok:
        raise ValueError(f"safe_classes must be a non-empty list of class names or class indices (>= 0), "
                         f"got {value!r}")


@attrs.define(kw_only=True, eq=False)
class SafeLanding(Representation):
    """Pixels where a drone could land: a near-horizontal surface (normals), not too far (depth), of a safe class.

    The rule, with v1, v2, v3 the stored normals channels in [0, 1] (see normals/depth-svd) and the depth
    as given (vre-depth: 0 = near, 1 = far)::

        safe = (v2 > v2_min) & (v1 + v3 < v1_plus_v3_max) & (depth <= max_depth)
               [& class of the semantic dependency in safe_classes]

    NaN normals or depth are unsafe. ``flip_x`` evaluates the rule on 1 - v1: vre's normals are the seed's
    mirrored in x, so ``flip_x: true`` applies the seed's rule as the seed did. With a ``semantic``
    dependency (scores over C classes: its argmax; or a one-channel class-index map), its class must be
    one of ``safe_classes`` (names resolved through its output spec's classes when the graph is built,
    or indices). Output: bool (H, W); the preview paints ``colors`` (unsafe, safe).
    """

    type_name = "mask/safe-landing"
    roles = (Role("normals", channels=3), Role("depth", channels=1), Role("semantic", optional=True))

    v2_min: float = attrs.field(default=0.8, validator=finite)
    """v2 (the encoded y, up in the image) must exceed it: the surface faces up."""
    v1_plus_v3_max: float = attrs.field(default=1.2, validator=finite)
    """v1 + v3 must be below it (the seed's bound on the sideways and towards-the-camera components)."""
    max_depth: float = attrs.field(default=0.9, validator=finite)
    """Depth must be <= it (in the depth dependency's units; vre-depth's are relative, 1 = farthest)."""
    flip_x: bool = attrs.field(default=False, validator=boolean)
    """Use 1 - v1 for v1: the seed's x-mirrored normals convention (reproduces its masks)."""
    safe_classes: tuple[str | int, ...] | None = attrs.field(default=None, converter=_to_classes,
                                                             validator=_check_classes)
    """Class names or indices of the semantic dependency that are safe to land on (needs ``semantic``)."""
    colors: tuple[tuple[int, int, int], ...] = attrs.field(default=((96, 96, 96), (0, 230, 0)), converter=to_colors,
                                                           validator=check_colors)
    """Preview colours (unsafe, safe)."""
    _safe_lut: np.ndarray | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        semantic = self.dependencies.get("semantic")
        if semantic is None:
            if self.safe_classes is not None:
                raise ValueError("safe_classes needs a 'semantic' dependency (a class map) to check the classes "
                                 "against; add one or remove safe_classes")
            return
        if self.safe_classes is None:
            raise ValueError(f"with a 'semantic' dependency ('{semantic.name}'), safe_classes must list the "
                             f"classes that are safe to land on (names or indices)")
        spec = semantic.output_spec()
        classes = tuple(spec.classes) if spec.classes else None
        # scores over C channels: C classes; an index map (1 channel): as many as it names, if it does
        n_classes = spec.channels if spec.channels > 1 else (len(classes) if classes else None)
        indices = []
        for c in self.safe_classes:
            if isinstance(c, str):
                if classes is None:
                    raise ValueError(f"safe class {c!r} is a name but '{semantic.name}' ({semantic.type_name}) "
                                     f"declares no class names; give class indices instead")
                if c not in classes:
                    shown = ", ".join(classes[:12]) + (f", ... ({len(classes)} classes)" if len(classes) > 12 else "")
                    raise ValueError(f"unknown safe class {c!r}: '{semantic.name}' has no such class; its classes "
                                     f"are: {shown}")
                indices.append(classes.index(c))
            else:
                if n_classes is not None and c >= n_classes:
                    raise ValueError(f"safe class index {c} is out of range: '{semantic.name}' has {n_classes} "
                                     f"classes (0..{n_classes - 1})")
                indices.append(c)
        size = max(max(indices) + 1, n_classes or 0)
        lut = np.zeros(size + 1, dtype=bool)  # the extra last entry is where label -1 (no class) lands
        lut[indices] = True
        self._safe_lut = lut

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def compute(self, batch: Batch) -> np.ndarray:
        normals = np.asarray(batch.deps["normals"])
        depth = np.asarray(batch.deps["depth"])[..., 0]
        v1, v2, v3 = normals[..., 0], normals[..., 1], normals[..., 2]
        with np.errstate(invalid="ignore"):  # NaN compares False: unsafe
            if self.flip_x:
                v1 = 1.0 - v1
            safe = (v2 > self.v2_min) & (v1 + v3 < self.v1_plus_v3_max) & (depth <= self.max_depth)
        if self._safe_lut is not None:
            labels = class_labels(np.asarray(batch.deps["semantic"]))
            lut = self._safe_lut
            # labels past the table (an index map with more classes than known) are not safe
            safe &= lut[np.where((labels >= 0) & (labels < len(lut) - 1), labels, len(lut) - 1)]
        return safe[..., None]

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return _colorize(memory[..., 0], self.colors)

    def metadata(self) -> dict[str, Any]:
        rule = (f"({'1 - v1' if self.flip_x else 'v1'} + v3 < {self.v1_plus_v3_max}) & (v2 > {self.v2_min}) & "
                f"(depth <= {self.max_depth})")
        meta: dict[str, Any] = {"classes": ["unsafe", "safe"], "colors": [list(c) for c in self.colors],
                                "rule": rule}
        if self._safe_lut is not None:
            meta["safe_class_indices"] = [int(i) for i in np.flatnonzero(self._safe_lut[:-1])]
        return meta


@attrs.define(kw_only=True, eq=False)
class DepthRange(Representation):
    """Pixels whose depth lies in [min_depth, max_depth] (ends included), within an optional ``mask``.

    E.g. the seed's "buildings nearby": a buildings mask (mask/classes) as ``mask`` and max_depth 0.3 on
    vre-depth's relative depth (0 = near). NaN depth is outside every range. Output: bool (H, W); the
    preview paints ``colors`` (outside, inside).
    """

    type_name = "mask/depth-range"
    roles = (Role("depth", channels=1), Role("mask", optional=True, channels=1))

    min_depth: float | None = attrs.field(default=None, validator=finite)
    """Smallest depth kept (None: no lower bound)."""
    max_depth: float | None = attrs.field(default=None, validator=finite)
    """Largest depth kept (None: no upper bound)."""
    colors: tuple[tuple[int, int, int], ...] = attrs.field(default=((0, 0, 0), (255, 255, 255)), converter=to_colors,
                                                           validator=check_colors)
    """Preview colours (outside, inside)."""

    def __attrs_post_init__(self) -> None:
        if self.min_depth is None and self.max_depth is None:
            raise ValueError("give min_depth and/or max_depth: a depth range without bounds keeps every pixel")
        if self.min_depth is not None and self.max_depth is not None and self.min_depth > self.max_depth:
            raise ValueError(f"min_depth ({self.min_depth}) must be <= max_depth ({self.max_depth})")

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def compute(self, batch: Batch) -> np.ndarray:
        depth = np.asarray(batch.deps["depth"])[..., 0]
        # at least one bound is set (checked when built); NaN compares False: outside
        keep = depth >= self.min_depth if self.min_depth is not None else depth <= self.max_depth
        if self.min_depth is not None and self.max_depth is not None:
            keep &= depth <= self.max_depth
        mask = batch.deps.get("mask")
        if mask is not None:
            keep &= gate_of(np.asarray(mask))
        return keep[..., None]

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return _colorize(memory[..., 0], self.colors)

    def metadata(self) -> dict[str, Any]:
        return {"classes": ["outside", "inside"], "colors": [list(c) for c in self.colors],
                "range": [self.min_depth, self.max_depth]}

