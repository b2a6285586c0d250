"""Representation metadata: the compact per-frame view, and its rebuild from the files on disk.

``<name>/.repr_metadata.json`` holds what describes a representation (type, parameters,
dependencies, classes, formats, fingerprint) and ``frames``: one entry per stored frame with the run
that made it. It is derived from the append-only records and the files present, under the
representation's lock; nothing ever rewrites the records, so a rebuild while an export runs loses
none of the export's frames.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrecore.errors import ConfigError
from vrecore.store.base import FORMAT_FOLDERS, Store, required_folders
from vrecore.store.directory import DirectoryStore
from vrecore.store.location import check_local_path
from vrecore.store.verify import DiskForm, check_frames, latest_records

if TYPE_CHECKING:
    from vrecore.graph.build import Node

__all__ = ["regenerate_metadata", "representation_folders", "write_representation_metadata"]


def _frames_view(store: Store, name: str, subs: list[str]) -> dict[str, dict[str, Any]]:
    """Frame → {run, seconds, formats, fp} for every frame present in all ``subs``."""
    present = store.done_frames(name, subs) if subs else set()
    _, latest = latest_records(store.read_records(name))
    frames: dict[str, dict[str, Any]] = {}
    for i in sorted(present):
        record = latest.get(i)
        if record is None:  # the files are there but their record was lost (a kill -9 in between)
            frames[str(i)] = {"run": "unrecorded", "formats": subs}
            continue
        frames[str(i)] = {"run": record.get("run"), "seconds": record.get("seconds"),
                          "formats": sorted(record.get("files") or {}, key=FORMAT_FOLDERS.index) or subs,
                          "fp": record.get("fp")}
    return frames


def write_representation_metadata(store: Store, node: Node, *, release: str | None = None) -> bool:
    """Refresh the ``frames`` of a representation's metadata from its records and files; with ``release`` (a run
    id), drop that run's claim on the folder (`vrecore.export.plan.claim_fingerprints`) in the same write once the
    folder has frames to bind the fingerprint. Returns whether the claim was dropped."""
    from vrecore.export.plan import representation_header

    store.consolidate(node.name)
    with store.lock(node.name):
        meta = store.read_metadata(node.name) or {}
        frames = _frames_view(store, node.name, required_folders(node.settings.binary_format,
                                                                 node.settings.image_format))
        digest = meta.get("fingerprint_digest")
        mixed = any(f.get("fp") not in (None, digest) for f in frames.values())
        claims = meta.get("claims")
        released = bool(release and frames and isinstance(claims, dict) and release in claims)
        if released:
            assert isinstance(claims, dict)
            rest = {run: c for run, c in claims.items() if run != release}
            meta = {k: v for k, v in meta.items() if k != "claims"} | ({"claims": rest} if rest else {})
        store.write_metadata(node.name, {**meta, **representation_header(node), "mixed": mixed, "frames": frames})
    return released


def representation_folders(root: Path) -> list[Path]:
    """The representation folders of an export: non-hidden folders holding npz/jpg/png frames."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any((p / sub).is_dir() for sub in FORMAT_FOLDERS))


def _fingerprint_from_records(store: Store, name: str) -> dict[str, Any]:
    """The fingerprint digest a lost metadata file held, from the frame records (each carries it): that of
    the latest record, and whether the frames' latest records carry several (a folder mixed by on_mismatch=keep).
    The full fingerprint is recorded again by the next export made the same way."""
    records = list(store.read_records(name))
    digest = next((r["fp"] for r in reversed(records) if isinstance(r.get("fp"), str)), None)
    if digest is None:
        return {}
    _, latest = latest_records(records)
    digests = {r.get("fp") for r in latest.values() if isinstance(r.get("fp"), str)}
    return {"fingerprint_digest": digest, "mixed": len(digests) > 1}


def regenerate_metadata(output_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Rebuild every representation's metadata from the files on disk (keeping type, parameters and
    fingerprint; a lost or corrupt metadata file gets its fingerprint digest back from the frame records).
    Files without a record are checked in full and recorded; returns frames per name."""
    root = Path(check_local_path(output_dir, "output_dir"))
    if not root.is_dir():
        raise ConfigError(f"output_dir '{output_dir}' is not a folder; give the folder of an export")
    store = DirectoryStore(root)
    store.check_writable()  # a read-only folder or a link below it: one line before anything is written
    counts: dict[str, int] = {}
    for folder in representation_folders(root):
        name = folder.name
        with store.lock(name):
            meta = store.read_metadata(name) or {}
            if not meta.get("fingerprint_digest"):
                meta |= _fingerprint_from_records(store, name)
            fingerprint = meta.get("fingerprint") or {}
            stored = fingerprint.get("stored") or {}
            expected = DiskForm(tuple(stored["shape"]), stored["dtype"]) if stored.get("shape") else None
            subs = [sub for sub in FORMAT_FOLDERS if (folder / sub).is_dir()]
            check = check_frames(store, name, subs, None, expected=expected, run_id="regenerated",
                                 fingerprint=meta.get("fingerprint_digest"))
            store.append_records(name, check.adopt)
            frames: dict[str, dict[str, Any]] = {}
            for sub in subs:
                for key, value in _frames_view(store, name, [sub]).items():
                    entry = frames.setdefault(key, {**value, "formats": []})
                    entry["formats"].append(sub)
            store.write_metadata(name, {**meta, "name": name, "frames": dict(sorted(frames.items(),
                                                                                  key=lambda kv: int(kv[0])))})
        counts[name] = len(frames)
    return counts
