"""Export planning: which frames each representation computes, stores and reads back, before any compute.

For every representation that stores frames, the plan compares the fingerprint of what this run
would produce with the one recorded in its folder (a difference stops the run before anything is
computed, unless ``overwrite`` or ``on_mismatch=keep``), verifies the stored frames it is asked for
(`vrecore.store.verify`, quick level), moves corrupt files into ``<out>/.quarantine`` and recomputes
them, and reads verified frames of dependencies back instead of recomputing them.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from vrecore.errors import ConfigError
from vrecore.export.fingerprint import describe_changes, digest
from vrecore.export.runlog import process_gone
from vrecore.graph.build import Graph, Node, disk_form
from vrecore.store.base import Store, required_folders
from vrecore.store.directory import DirectoryStore
from vrecore.store.verify import DiskForm, RepresentationCheck, check_frames, quarantine

__all__ = ["ON_MISMATCH", "ExportPlan", "FingerprintMismatch", "apply_plan", "claim_fingerprints", "make_plan",
           "release_claims", "representation_header"]

log = logging.getLogger("vrecore.export.plan")
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
    """Representation → whether its folder holds frames of several fingerprints (filled by `claim_fingerprints`)."""
    decisions: dict[str, str]
    claimed: set[str] = attrs.field(factory=set)
    """Representations this run claimed (`claim_fingerprints`) until `release_claims`."""

    def chunks(self, graph: Graph, batch_size: Mapping[str, int]) -> Iterator[list[int]]:
        """The frames to compute, in chunks of the largest batch size of a representation with work."""
        frames = sorted(set().union(*self.need.values()))
        size = max((batch_size[n.name] for n in graph if self.need[n.name]), default=1)
        for k in range(0, len(frames), size):
            yield frames[k:k + size]


def make_plan(graph: Graph, store: Store, selected: Sequence[int], *, fingerprints: dict[str, dict[str, Any]],
              frame_shape: tuple[int, int], overwrite: bool, on_mismatch: str, run_id: str) -> ExportPlan:
    """Check fingerprints, verify stored frames and decide the work (see the module docstring).

    Reads only: `claim_fingerprints` records the fingerprints, then `apply_plan` quarantines bad files
    and records adopted ones once the run is sure to start.
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


def claim_fingerprints(plan: ExportPlan, graph: Graph, store: Store, run_id: str, *, overwrite: bool,
                       on_mismatch: str) -> bool:
    """Record this run's fingerprints: compare and set under the locks of every representation it writes
    (taken in name order, so that two runs never deadlock), so that of two runs started together
    with different fingerprints the second is refused exactly as a later run is (`FingerprintMismatch`,
    nothing written). A folder without frames is claimed by the run's host, process and run id until
    `release_claims`. False, writing nothing, when another run changed a folder since `make_plan`
    decided (plan again)."""
    nodes = [n for n in graph if n.settings.writes and plan.decisions.get(n.name) in ("same", "mix", "replace")]
    with contextlib.ExitStack() as locks:
        for name in sorted(n.name for n in nodes):
            locks.enter_context(store.lock(name))
        metadata = {n.name: store.read_metadata(n.name) for n in nodes}
        decisions = _compare_fingerprints(graph, store, metadata, plan.fingerprints, plan.digests,
                                          overwrite=overwrite, keep=on_mismatch == "keep")
        if any(decisions[n.name] != plan.decisions[n.name] for n in nodes):
            return False
        for node in nodes:
            _record_fingerprint(plan, node, store, metadata[node.name] or {}, run_id)
    return True


def _record_fingerprint(plan: ExportPlan, node: Node, store: Store, meta: dict[str, Any], run_id: str) -> None:
    """Write the fingerprint part of one representation's metadata (under its lock)."""
    decision = plan.decisions[node.name]
    if decision == "replace":
        removed = store.remove_frames(node.name)
        log.warning("%s: made differently before; overwrite=true removed its %d old files", node.name, removed)
        meta = {}
    history = dict(meta.get("earlier_fingerprints") or {})
    if decision == "mix" and meta.get("fingerprint") and meta.get("fingerprint_digest") != plan.digests[node.name]:
        history[meta["fingerprint_digest"]] = meta["fingerprint"]
    plan.mixed[node.name] = bool(history)
    claims = {run: c for run, c in _claims(meta).items() if not process_gone(c.get("host"), c.get("pid"))}
    if not store.has_frames(node.name):  # nothing binds the fingerprint yet but this run
        claims[run_id] = {"host": socket.gethostname(), "pid": os.getpid()}
        plan.claimed.add(node.name)
    updated = {**meta, **representation_header(node), "fingerprint": plan.fingerprints[node.name],
               "fingerprint_digest": plan.digests[node.name], "mixed": bool(history) or bool(meta.get("mixed")),
               **({"earlier_fingerprints": history} if history else {}), "claims": claims}
    if not claims:
        del updated["claims"]
    if any(_plain_json(v) != meta.get(k) for k, v in updated.items() if k != "frames") or set(meta) - set(updated):
        # (a re-run of a finished export rewrites nothing)
        store.write_metadata(node.name, updated)


def release_claims(plan: ExportPlan, store: Store, run_id: str) -> None:
    """Drop this run's claims (`claim_fingerprints`): its frames, if any, now bind the fingerprints."""
    for name in sorted(plan.claimed):
        with store.lock(name):
            meta = store.read_metadata(name)
            if meta is not None and run_id in _claims(meta):
                claims = {run: c for run, c in _claims(meta).items() if run != run_id}
                store.write_metadata(name, {k: v for k, v in meta.items() if k != "claims"}
                                     | ({"claims": claims} if claims else {}))
    plan.claimed.clear()


def _claims(meta: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    claims = (meta or {}).get("claims")
    return {str(k): v for k, v in claims.items() if isinstance(v, dict)} if isinstance(claims, dict) else {}


def _claimed_by_another(meta: Mapping[str, Any] | None) -> bool:
    """Whether a run whose process may still be running claimed the folder (`claim_fingerprints`)."""
    return any(not process_gone(c.get("host"), c.get("pid")) for c in _claims(meta).values())


def apply_plan(plan: ExportPlan, store: Store, run_id: str) -> None:
    """Quarantine corrupt files and record adopted ones (after `claim_fingerprints`)."""
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
        if recorded == digests[node.name] or not (has_frames or _claimed_by_another(meta)):
            decisions[node.name] = "same"  # (with overwrite the selected frames are computed again)
        elif not node.settings.writes:
            decisions[node.name] = "ignore"
        elif overwrite:
            decisions[node.name] = "replace"
        elif keep:
            decisions[node.name] = "mix"
        elif meta is None and _recorded_digest(store, node.name) is not None:
            problems.append(f"representation '{node.name}': {_lost_metadata(store, node.name)} but its frames are "
                            f"there; run `vre metadata {store.root}` to rebuild it from the frame records, then "
                            f"export again")
        else:
            old = (meta or {}).get("fingerprint")
            role_names = {role: (d if isinstance(d, str) else ", ".join(d))
                          for role, d in _dependency_names(node).items()}
            changes = describe_changes(old, fingerprints[node.name], names=role_names) if old or not recorded else \
                f"fingerprint {recorded} rebuilt from the frame records, its fields unknown; this run's is " \
                f"{digests[node.name]}"
            problems.append(
                f"representation '{node.name}': the frames in {store.root / node.name} were made differently "
                f"({changes}); run again with "
                f"overwrite=true to recompute them, choose another output_dir, or add frames anyway with "
                f"on_mismatch=keep")
    if problems:
        raise FingerprintMismatch("\n".join(problems))
    return decisions


def _recorded_digest(store: Store, name: str) -> str | None:
    """The fingerprint digest the latest frame record carries (what `vre metadata` restores), if any."""
    return next((r["fp"] for r in reversed(list(store.read_records(name))) if isinstance(r.get("fp"), str)), None)


def _lost_metadata(store: Store, name: str) -> str:
    """``<path> is missing`` or ``<path> is corrupt``: a representation's metadata that cannot be read."""
    if isinstance(store, DirectoryStore):
        path = store.metadata_path(name)
        return f"{path} is {'corrupt' if path.exists() else 'missing'}"
    return f"the metadata of {store.root / name} is missing or unreadable"


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
