"""Export planning: which frames each representation computes, stores and reads back, before any compute.

For every representation that stores frames, the plan compares the fingerprint of what this run
would produce with the one recorded in its folder (a difference stops the run before anything is
computed, unless ``overwrite`` or ``on_mismatch=keep``), verifies the stored frames it is asked for
(`vrecore.verify`, quick level), moves corrupt files into ``<out>/.quarantine`` and recomputes
them, and reads verified frames of dependencies back instead of recomputing them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from vrecore.errors import ConfigError
from vrecore.fingerprint import describe_changes, digest, disk_form
from vrecore.graph import Graph, Node
from vrecore.store import Store, required_folders
from vrecore.verify import DiskForm, RepresentationCheck, check_frames, quarantine

__all__ = ["ON_MISMATCH", "ExportPlan", "FingerprintMismatch", "apply_plan", "make_plan", "representation_header"]

log = logging.getLogger("vrecore.plan")
ON_MISMATCH = ("error", "keep")


class FingerprintMismatch(ConfigError):
    """Stored frames were made differently from what this run would make."""


@attrs.define
class ExportPlan:
    """What a run does per representation (frame indices)."""

    selected: list[int]
    fingerprints: dict[str, dict[str, Any]]
    digests: dict[str, str]
    disk: dict[str, DiskForm]
    todo: dict[str, set[int]]
    """Frames computed and stored."""
    need: dict[str, set[int]]
    """Frames computed (stored or only handed to dependents)."""
    load: dict[str, set[int]]
    """Frames read back from the store for dependents."""
    skipped: dict[str, int]
    """Selected frames already stored and verified."""
    checks: dict[str, RepresentationCheck]
    quarantined: dict[str, list[str]]
    """Representation → where its bad files were moved (filled by `apply_plan`)."""
    mixed: dict[str, bool]
    """Representation → whether its folder holds frames of several fingerprints (filled by `apply_plan`)."""
    decisions: dict[str, str]

    def chunks(self, graph: Graph, batch_size: Mapping[str, int]) -> Iterator[list[int]]:
        """The frames to compute, in chunks of the largest batch size of a representation with work."""
        frames = sorted(set().union(*self.need.values()))
        size = max((batch_size[n.name] for n in graph if self.need[n.name]), default=1)
        for k in range(0, len(frames), size):
            yield frames[k:k + size]


def make_plan(graph: Graph, store: Store, selected: Sequence[int], *, fingerprints: dict[str, dict[str, Any]],
              frame_shape: tuple[int, int], overwrite: bool, on_mismatch: str, run_id: str) -> ExportPlan:
    """Check fingerprints, verify stored frames and decide the work (see the module docstring).

    Reads only: `apply_plan` records the fingerprints, quarantines bad files and records adopted
    ones once the run is sure to start.
    """
    if on_mismatch not in ON_MISMATCH:
        raise ConfigError(f"on_mismatch {on_mismatch!r} is not one of {', '.join(ON_MISMATCH)}")
    digests = {name: digest(fp) for name, fp in fingerprints.items()}
    disk = {n.name: DiskForm(*disk_form(n, frame_shape)) for n in graph}
    selected_set = set(selected)
    metadata = {n.name: store.read_metadata(n.name) for n in graph if n.settings.writes or _has_binary(n)}
    decisions = _compare_fingerprints(graph, store, metadata, fingerprints, digests, overwrite=overwrite,
                                      keep=on_mismatch == "keep")
    todo: dict[str, set[int]] = {}
    on_disk: dict[str, set[int]] = {n.name: set() for n in graph}
    skipped: dict[str, int] = {}
    checks: dict[str, RepresentationCheck] = {}
    for node in graph:
        s = node.settings
        todo[node.name] = set(selected_set) if s.writes else set()
        skipped[node.name] = 0
        if decisions.get(node.name) not in ("same", "mix") or (overwrite and s.writes):
            continue  # nothing usable stored (never stored, or by another configuration), or overwritten
        subs = required_folders(s.binary_format, s.image_format) if s.writes else ["npz"]
        check = check_frames(store, node.name, subs, selected_set if s.writes else None, expected=disk[node.name],
                             fingerprint=digests[node.name], run_id=run_id)
        checks[node.name] = check
        done = set(check.complete)
        if check.stale and on_mismatch == "keep":
            done |= check.stale
        elif check.stale:
            log.warning("%s: %d frame(s) were made with an earlier fingerprint (kept by on_mismatch=keep); "
                        "recomputing them", node.name, len(check.stale))
        if s.writes:
            todo[node.name] = selected_set - done
            skipped[node.name] = len(selected_set & done)
        if _has_binary(node):
            on_disk[node.name] = done
    need: dict[str, set[int]] = {}
    load: dict[str, set[int]] = {n.name: set() for n in graph}
    for node in reversed(graph.nodes):
        wanted = set().union(*(need[c] for c in graph.dependents(node.name)))
        from_disk = (wanted - todo[node.name]) & on_disk[node.name]
        load[node.name] = from_disk
        need[node.name] = todo[node.name] | (wanted - from_disk)
    return ExportPlan(list(selected), fingerprints, digests, disk, todo, need, load, skipped, checks, {}, {},
                      decisions)


def apply_plan(plan: ExportPlan, graph: Graph, store: Store, run_id: str) -> None:
    """Record this run's fingerprints (deleting replaced frames), quarantine corrupt files, record adopted ones."""
    for node in graph:
        decision = plan.decisions.get(node.name)
        if decision not in ("same", "mix", "replace") or not node.settings.writes:
            continue
        with store.lock(node.name):
            meta = store.read_metadata(node.name) or {}
            if decision == "replace":
                removed = store.remove_frames(node.name)
                log.warning("%s: made differently before; overwrite=true removed its %d old files", node.name, removed)
                meta = {}
            history = dict(meta.get("earlier_fingerprints") or {})
            if decision == "mix" and meta.get("fingerprint") and meta.get("fingerprint_digest") != plan.digests[node.name]:
                history[meta["fingerprint_digest"]] = meta["fingerprint"]
            plan.mixed[node.name] = bool(history)
            updated = {**meta, **representation_header(node), "fingerprint": plan.fingerprints[node.name],
                       "fingerprint_digest": plan.digests[node.name], "mixed": bool(history) or bool(meta.get("mixed")),
                       **({"earlier_fingerprints": history} if history else {})}
            if any(_plain_json(v) != meta.get(k) for k, v in updated.items() if k != "frames"):
                # (a re-run of a finished export rewrites nothing)
                store.write_metadata(node.name, updated)
    for name, check in plan.checks.items():
        if check.adopt:
            store.append_records(name, check.adopt)
        if check.corrupt:
            plan.quarantined[name] = quarantine(store, check, run_id)


def _plain_json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples as lists...), to compare with stored metadata."""
    import json

    return json.loads(json.dumps(obj, default=str))


def _has_binary(node: Node) -> bool:
    return node.settings.binary_format != "none"


def _compare_fingerprints(graph: Graph, store: Store, metadata: Mapping[str, dict[str, Any] | None],
                          fingerprints: Mapping[str, dict[str, Any]], digests: Mapping[str, str], *,
                          overwrite: bool, keep: bool) -> dict[str, str]:
    """What to do with each stored representation's frames: ``same`` (made like this run would),
    ``replace`` (overwrite), ``mix`` (on_mismatch=keep) or ``ignore`` (made differently, not written
    by this run: never read back). A difference otherwise stops the run, one line per representation."""
    problems: list[str] = []
    decisions: dict[str, str] = {}
    for node in graph:
        if node.name not in metadata:
            continue
        meta = metadata[node.name]
        recorded = (meta or {}).get("fingerprint_digest")
        has_frames = store.has_frames(node.name)
        if recorded == digests[node.name] or not has_frames:
            decisions[node.name] = "same"  # (with overwrite the selected frames are computed again)
        elif not node.settings.writes:
            decisions[node.name] = "ignore"
        elif overwrite:
            decisions[node.name] = "replace"
        elif keep:
            decisions[node.name] = "mix"
        else:
            old = (meta or {}).get("fingerprint")
            role_names = {role: (d if isinstance(d, str) else ", ".join(d))
                          for role, d in _dependency_names(node).items()}
            problems.append(
                f"representation '{node.name}': the frames in {store.root / node.name} were made differently "
                f"({describe_changes(old, fingerprints[node.name], names=role_names)}); run again with "
                f"overwrite=true to recompute them, choose another output_dir, or add frames anyway with "
                f"on_mismatch=keep")
    if problems:
        raise FingerprintMismatch("\n".join(problems))
    return decisions


def representation_header(node: Node) -> dict[str, Any]:
    """The fields of a representation's metadata that describe it (not its frames)."""
    return {"name": node.name, "type": node.type_name, "parameters": dict(node.parameters),
            "dependencies": list(node.dependency_names),
            "dependency_roles": {r: (list(v) if isinstance(v, tuple) else v) for r, v in _dependency_names(node).items()},
            "metadata": node.representation.metadata(), "binary_format": node.settings.binary_format,
            "image_format": node.settings.image_format}


def _dependency_names(node: Node) -> dict[str, Any]:
    return {role: (tuple(r.name for r in v) if isinstance(v, tuple) else v.name)
            for role, v in node.representation.dependencies.items()}
