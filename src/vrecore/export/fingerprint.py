"""Fingerprints: what produced a representation's stored frames, so that a re-run never mixes outputs.

A representation's fingerprint holds the identity of the video (its content, not its path: a moved
or copied video is the same video), the type and its parameters, the fingerprints of its
dependencies (so a changed upstream makes every dependent differ too), the output size, the stored
dtype and formats, the weights it computed with, and the providing plugin's version. It is stored
in the representation's metadata and its short digest in every frame record.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vrecore.graph.build import disk_form

if TYPE_CHECKING:
    from vrecore.frames.video import FrameSource
    from vrecore.graph.build import Graph

__all__ = ["describe_changes", "digest", "graph_fingerprints", "video_identity"]

_EDGE_BYTES = 1 << 20


def video_identity(source: FrameSource) -> dict[str, Any]:
    """Size, frame count, resolution, fps and a hash of the first and last MB of a video (or of an
    image folder's file names, sizes and first and last image)."""
    path = Path(source.path)
    ident: dict[str, Any] = {"frames": int(source.num_frames), "width": int(source.width),
                             "height": int(source.height),
                             "fps": None if source.fps is None else round(float(source.fps), 6)}
    h = hashlib.sha256()
    files = list(getattr(source, "files", ()))
    if path.is_dir() and files:
        for f in files:
            h.update(f"{f.name}\0{f.stat().st_size}\n".encode())
        ident["size"] = sum(f.stat().st_size for f in files)
        edges = [files[0], files[-1]]
    elif path.is_file():
        ident["size"] = path.stat().st_size
        edges = [path]
    else:  # a source without files (e.g. made in memory): its decoded first and last frames
        ident["size"] = None
        edges = []
        for frame in source.get_batch([0, source.num_frames - 1]):
            h.update(np.ascontiguousarray(frame).data)
    for f in edges:
        with open(f, "rb") as fh:
            h.update(fh.read(_EDGE_BYTES))
            size = os.fstat(fh.fileno()).st_size
            if size > _EDGE_BYTES:
                fh.seek(max(size - _EDGE_BYTES, _EDGE_BYTES))
                h.update(fh.read(_EDGE_BYTES))
    ident["sha256_edges"] = h.hexdigest()
    return ident


def _plain(value: Any) -> Any:
    """A JSON-able, order-stable copy of parameter values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def digest(fingerprint: Mapping[str, Any]) -> str:
    """A short, stable digest of a fingerprint (16 hex digits of its canonical JSON's sha256)."""
    text = json.dumps(_plain(fingerprint), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def graph_fingerprints(graph: Graph, video: Mapping[str, Any], frame_shape: tuple[int, int],
                       plugin_versions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The fingerprint of every representation of ``graph`` (in topological order)."""
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    prints: dict[str, dict[str, Any]] = {}
    for node in graph:
        rep = node.representation
        entry = registry.types.get(node.type_name)
        provider = entry.provider if entry is not None else "unknown"
        deps: dict[str, Any] = {}
        for role, dep in rep.dependencies.items():
            names = [d.name for d in dep] if isinstance(dep, tuple) else [dep.name]
            digests = [digest(prints[n]) for n in names]
            deps[role] = digests if isinstance(dep, tuple) else digests[0]
        shape, dtype = disk_form(node, frame_shape)
        params = {k: v for k, v in node.parameters.items() if k not in unfingerprinted(rep)}
        prints[node.name] = {
            "video": dict(video), "type": node.type_name, "parameters": _plain(params), "dependencies": deps,
            "output_size": _plain(node.settings.output_size),
            "stored": {"dtype": dtype, "shape": list(shape), "binary_format": node.settings.binary_format,
                       "image_format": node.settings.image_format},
            "weights": _plain(rep.weights_identity()),
            "plugin": {"name": provider, "version": plugin_versions.get(provider, "unknown")},
        }
    return prints


def unfingerprinted(rep: Any) -> set[str]:
    """Parameters left out of ``rep``'s fingerprint: those every class of its type (mixins too) declares."""
    return {p for cls in type(rep).__mro__ for p in vars(cls).get("unfingerprinted_parameters", ())}


def describe_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, names: Mapping[str, str] | None = None,
                     limit: int = 4) -> str:
    """What differs between two fingerprints, as ``field: old → new`` items (the most telling first)."""
    if not old:
        return "no fingerprint recorded (frames from vre 0.1 or another tool)"
    changes: list[str] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                walk(f"{prefix}.{key}" if prefix else str(key), a.get(key), b.get(key))
        elif _plain(a) != _plain(b):
            changes.append(f"{prefix}: {_short(a)} → {_short(b)}")

    walk("", old, new)
    if names:  # name the dependency whose fingerprint changed instead of printing digests
        changes = [_dependency_note(c, names) for c in changes]
    extra = f" (and {len(changes) - limit} more)" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + extra


def _dependency_note(change: str, names: Mapping[str, str]) -> str:
    if change.startswith("dependencies."):
        role = change.split(":", 1)[0][len("dependencies."):]
        return f"dependency {names.get(role, role)!r} changed"
    return change


def _short(value: Any) -> str:
    text = json.dumps(_plain(value), separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
