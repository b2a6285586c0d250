"""`vre pack --to zarr`: one export, from any store (a folder, a ``.zarr`` folder, a store's URL), copied into the zarr
store (`vrecore.store.zarr_store`) through the Store interface: the same arrays, previews (their bytes as made),
metadata, fingerprints and per-frame records (with the facts of the copies), so that `vre verify` checks the copy
and `MultiTaskDataset`, `vre read` and the pictures open it as they open a zarr export. `vrecore.data.packing`
writes it under a temporary name and renames it into place."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vrecore.data.sources import find_exports, is_export
from vrecore.errors import ConfigError, StorageError, VreError
from vrecore.store.base import Store
from vrecore.store.directory import DirectoryStore
from vrecore.store.location import choose_store
from vrecore.store.verify import latest_records

__all__ = ["ZARR_SUFFIX", "check_zarr_destination", "copy_into_zarr", "open_export_store"]

ZARR_SUFFIX = ".zarr"
_PREVIEWS = ("jpg", "png")
_UNREADABLE = (OSError, ValueError, zipfile.BadZipFile, EOFError, VreError)


def check_zarr_destination(out: Path) -> None:
    """Refuse, in one line, a destination whose name tells no reader that it is a zarr store."""
    if not out.name.lower().endswith(ZARR_SUFFIX):
        raise ConfigError(f"-o {out}: a zarr pack is a zarr store, whose name ends in {ZARR_SUFFIX} (so that `vre "
                          f"verify`, `vre read` and MultiTaskDataset know it); give -o {out}{ZARR_SUFFIX}")


def open_export_store(location: str) -> tuple[Store, str]:
    """The store that keeps the one export at ``location``, and the export's name; a folder of exports is refused
    in one line (a zarr store holds one export)."""
    choice = choose_store(location, what="path")
    if choice.extension.name != "directory":
        if choice.local and not os.path.isdir(choice.location):
            raise ConfigError(f"'{location}' is not a folder; give an export (its output_dir)")
        choice.check_location()
        store = choice.open()
        if not store.representations():
            raise ConfigError(f"'{location}' holds no export of the '{choice.extension.name}' store; give the "
                              f"output_dir of `vre export`")
        return store, location.rstrip("/").rpartition("/")[2].removesuffix(ZARR_SUFFIX) or "export"
    path = Path(choice.location)
    exports = find_exports(path)  # one line when it is no folder or holds no export
    if not is_export(path):
        raise ConfigError(f"'{location}' is a folder of {len(exports)} exports, and a zarr store holds one export: "
                          f"pack each (vre pack {exports[0][1]} --to zarr), or all of them with --to webdataset")
    return DirectoryStore(path), path.name


def copy_into_zarr(source: Store, location: str, tasks: Sequence[str] | None, staging: Path,
                   show: bool) -> dict[str, int]:
    """Copy the representations ``tasks`` (default: every one with stored frames) of the export in ``source`` into a
    new zarr store at the local folder ``staging``; returns the frames copied per representation."""
    from tqdm import tqdm

    from vrecore.store.zarr_store import ZarrStore

    stored = {n: set(source.stat_frames(n, "npz")) for n in source.representations()}
    stored = {n: frames for n, frames in stored.items() if frames}
    names = sorted(stored) if tasks is None else list(tasks)
    unknown = [t for t in names if t not in stored]
    if unknown:
        raise ConfigError(f"task(s) {', '.join(map(repr, unknown))} not stored; stored tasks: {', '.join(sorted(stored))}")
    target = ZarrStore(str(staging))
    target.check_writable()
    for run in _runs(source):
        if isinstance(run.get("run_id"), str):
            target.write_run_metadata(run["run_id"], run)
    counts: dict[str, int] = {}
    with tqdm(total=sum(len(stored[n]) for n in names), desc="zarr", unit="frame", disable=not show,
              file=sys.stderr) as bar:
        for name in names:
            counts[name] = _copy(source, location, target, name, sorted(stored[name]), bar)
    return counts


def _copy(source: Store, location: str, target: Any, name: str, frames: list[int], bar: Any) -> int:
    meta = source.read_metadata(name)
    target.write_metadata(name, meta or {})
    layout = target.layout(name)
    if meta is None or layout is None:
        raise ConfigError(f"{location}: '{name}' has no metadata saying its frames' shape and dtype (a fingerprint); "
                          f"export it again with this vre before packing it")
    previews = {sub: set(source.stat_frames(name, sub)) for sub in _PREVIEWS}
    _, latest = latest_records(source.read_records(name))
    records = []
    shards: dict[int, list[int]] = {}
    for frame in frames:
        shards.setdefault(layout.shard_of(frame), []).append(frame)
    for batch in shards.values():  # a shard's frames together: a complete shard is written once, whole
        arrays = [_read(source, location, name, f) for f in batch]
        try:
            facts = target.write_frames(name, batch, arrays, True, None, "none")
        except ValueError as e:
            raise StorageError(f"{location}: '{name}' holds frames unlike its metadata says ({e}); run `vre verify "
                               f"{location}` first") from e
        for frame, fact in zip(batch, facts, strict=True):
            for sub, present in previews.items():
                if frame in present:
                    fact[sub] = target.write_preview(name, sub, frame, _bytes(source, location, name, sub, frame))
            if frame in latest:
                records.append({**latest[frame], "files": fact})
        bar.update(len(batch))
    target.append_records(name, records)
    target.consolidate(name)
    return len(frames)


def _where(source: Store, location: str, name: str, sub: str, frame: int) -> str:
    if isinstance(source, DirectoryStore):
        return str(source.path(name, sub, frame))
    return f"{location}: frame {frame} of '{name}' ({sub})"


def _read(source: Store, location: str, name: str, frame: int) -> Any:
    try:
        return source.read_frame(name, frame)
    except _UNREADABLE as e:
        raise StorageError(f"{_where(source, location, name, 'npz', frame)} cannot be read ({type(e).__name__}: {e}); "
                           f"nothing was packed: `vre verify {location} --repair` recomputes bad frames") from e


def _bytes(source: Store, location: str, name: str, sub: str, frame: int) -> bytes:
    try:
        return source.read_bytes(name, sub, frame)
    except _UNREADABLE as e:
        raise StorageError(f"{_where(source, location, name, sub, frame)} cannot be read ({type(e).__name__}: {e}); "
                           f"nothing was packed: `vre verify {location} --repair`") from e


def _runs(source: Store) -> list[dict[str, Any]]:
    """The runs recorded with the export (an export folder's ``.logs`` is read, never created)."""
    if not isinstance(source, DirectoryStore):
        return source.read_run_metadata()
    runs = []
    for path in sorted((source.root / ".logs").glob("run_metadata_*.json")):
        with contextlib.suppress(OSError, ValueError):
            run = json.loads(path.read_text())
            if isinstance(run, dict):
                runs.append(run)
    return runs
