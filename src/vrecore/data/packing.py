"""`pack`: an export (or a folder of exports) as webdataset tar shards, or one export copied into the zarr store.

The packs hold the stored (disk-form) arrays unchanged and what the export's metadata says about each
task, so `MultiTaskDataset` reads a pack exactly as it reads the export. webdataset shards (layout:
`vrecore.data.packed`) are what `webdataset.WebDataset` streams from object storage (one sample per frame, every
task, samples shuffled across shards), from a folder of exports too; ``zarr`` copies one export, from any store,
into the zarr store (`vrecore.data.pack_store`: sharded arrays, records and fingerprints, checked by `vre verify`).
webdataset is the optional extra ``vrecore[pack]``, zarr ``vrecore[cloud]``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import secrets
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.data.pack_store import check_zarr_destination, copy_into_zarr, open_export_store
from vrecore.data.packed import PACK_FORMAT, PACK_MANIFEST, PACK_TOOL, PACK_VERSION, WEBDATASET_INDEX
from vrecore.data.sources import ExportSource, _latest_fingerprints, find_exports
from vrecore.data.statistics import CACHE_FILE
from vrecore.errors import ConfigError, StorageError
from vrecore.store.directory import DirectoryStore
from vrecore.store.location import choose_store

__all__ = ["PACK_FORMATS", "pack"]

PACK_FORMATS = ("webdataset", "zarr")
_EXTRA = "pip install 'vrecore[pack]' (webdataset and zarr)"


def pack(export: str | os.PathLike[str], dest: str | os.PathLike[str], fmt: str, *,
         tasks: Sequence[str] | None = None, shard_size: int = 1000, shuffle: bool = True, seed: int = 0,
         overwrite: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Write the export at ``export`` (or every export in it) to ``dest`` as ``fmt`` (`PACK_FORMATS`);
    returns a summary (frames and tasks per video, files written)."""
    if fmt not in PACK_FORMATS:
        raise ConfigError(f"pack format {fmt!r} is not one of {', '.join(PACK_FORMATS)}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be a positive number of samples, got {shard_size}")
    out = Path(dest)
    if fmt == "zarr":  # a copy of one export, from any store, into the zarr store (`vrecore.data.pack_store`)
        store, video = open_export_store(os.fspath(export))
        local = isinstance(store, DirectoryStore) or not str(os.fspath(export)).partition("://")[1]
        root: Path | None = store.root if local else None
        source_name = str(root.resolve()) if root is not None else os.fspath(export)
    else:
        kept_by = choose_store(export, what="path").extension.name
        if kept_by != "directory":
            raise ConfigError(f"'{export}' is an export of the '{kept_by}' store; --to webdataset packs export "
                              f"folders (--to zarr copies it)")
        root = Path(export)
        exports = find_exports(root)
        multi = exports[0][1] != root
        sources = [ExportSource(path, video) for video, path in exports]
        names = _task_names(sources, tasks)
        source_name = str(root.resolve())
    replacing = _check_destination(out, root, overwrite)
    if fmt == "zarr":
        check_zarr_destination(out)
    show = sys.stderr.isatty() if progress is None else progress
    # written beside the destination under a temporary name and renamed into place when complete: a failed
    # pack leaves nothing half-made, and the pack it replaces stays whole until then
    made = _make_parents(out.parent)
    staging = out.parent / f".{out.name}.vre-pack-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.mkdir(staging)
        if fmt == "zarr":
            copied = {video: copy_into_zarr(store, os.fspath(export), tasks, staging, show)}
            files = len(copied[video])
        else:
            videos = {s.video: _describe(s, [t for t in names if t in s.tasks]) for s in sources}
            description = {"format": PACK_FORMAT, "version": PACK_VERSION, "multi": multi, "videos": videos}
            files = _write_webdataset(sources, description, staging, out.name, shard_size, shuffle, seed, show)
            copied = {v: {t: len(d["frames"]) for t, d in videos[v]["tasks"].items()} for v in videos}
        entries = sorted([*os.listdir(staging), PACK_MANIFEST])
        manifest = {"tool": PACK_TOOL, "format": fmt, "source": source_name,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "entries": entries}
        (staging / PACK_MANIFEST).write_text(json.dumps(manifest, indent=1))
        _move_into_place(staging, out, replacing)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, OSError):
            raise StorageError(f"'{out}' cannot be written ({e.strerror or e}); nothing was written: choose a "
                               f"writable destination with -o") from e
        raise
    return {"format": fmt, "dest": str(out), "videos": copied, "files": files}


def _check_destination(out: Path, root: Path | None, overwrite: bool) -> bool:
    """Whether ``out`` is a previous pack to replace (False: it does not exist); refuses anything else, so that
    --overwrite never deletes what `vre pack` did not make (``root``: the export, None when it is at a URL)."""
    if not out.exists() and not out.is_symlink():
        return False
    if not overwrite:
        raise ConfigError(f"'{out}' exists; choose another destination or pass --overwrite to replace it")
    refuse = "refusing to replace it: choose another destination (--overwrite replaces only a previous pack)"
    if out.is_symlink():
        raise ConfigError(f"'{out}' is a symbolic link, not a pack made by `vre pack`; {refuse}")
    target, export = out.resolve(), root.resolve() if root is not None else None
    if export is not None and (target == export or export in target.parents):
        raise ConfigError(f"'{out}' is inside the export; choose a destination outside it")
    if export is not None and target in export.parents:
        raise ConfigError(f"'{out}' was not made by `vre pack` (it holds the export '{root}'); {refuse}")
    if not out.is_dir():
        raise ConfigError(f"'{out}' was not made by `vre pack` (it is a file, not a pack folder); {refuse}")
    manifest = _read_manifest(out)
    if manifest is None:
        raise ConfigError(f"'{out}' was not made by `vre pack` (no valid {PACK_MANIFEST} in it); {refuse}")
    known = {*manifest["entries"], PACK_MANIFEST, CACHE_FILE}
    foreign = sorted(set(os.listdir(out)) - known)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ConfigError(f"'{out}' holds '{foreign[0]}'{more}, which `vre pack` did not write; refusing to replace "
                          f"it: move that out first or choose another destination")
    return True


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest `vre pack` writes into every pack, or None when ``folder`` has no valid one."""
    path = folder / PACK_MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("tool") != PACK_TOOL or manifest.get("format") not in \
            PACK_FORMATS or not isinstance(manifest.get("entries"), list) or \
            not all(isinstance(e, str) for e in manifest["entries"]):
        return None
    return manifest


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    try:
        for path in reversed(missing):
            os.mkdir(path)
            made.append(path)
    except OSError as e:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise StorageError(f"'{missing[0]}' cannot be created ({e.strerror or e}); choose a writable destination "
                           f"with -o") from e
    return made


def _move_into_place(staging: Path, out: Path, replacing: bool) -> None:
    """Rename the complete pack to ``out``; a previous pack there is moved aside first and deleted last."""
    if not replacing:
        os.rename(staging, out)
        return
    aside = out.parent / f".{out.name}.vre-pack-old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, aside)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(aside, out)
        raise
    try:
        shutil.rmtree(aside)
    except OSError as e:
        raise StorageError(f"the new pack is complete at '{out}', but the previous one, moved to '{aside}', cannot "
                           f"be deleted ({e.strerror or e}); delete it yourself") from e


def _task_names(sources: list[ExportSource], tasks: Sequence[str] | None) -> list[str]:
    stored = sorted(set().union(*(set(s.tasks) for s in sources)))
    if tasks is None:
        return stored
    unknown = [t for t in tasks if t not in stored]
    if unknown:
        raise ConfigError(f"task(s) {', '.join(map(repr, unknown))} not stored; stored tasks: {', '.join(stored)}")
    return list(tasks)


def _describe(source: ExportSource, names: list[str]) -> dict[str, Any]:
    """What the pack records about one video: the run's graph and, per task, its metadata and frames."""
    tasks: dict[str, Any] = {}
    for name in names:
        stored = source.tasks[name]
        frames = sorted(source.frames(name))
        fps = _latest_fingerprints(source.root / name)
        tasks[name] = {"type": stored.type_name, "parameters": dict(stored.parameters),
                       "dependency_roles": dict(stored.dependency_roles), "metadata": dict(stored.metadata),
                       "provider": stored.provider, "stored_dtype": stored.stored_dtype, "frames": frames,
                       "fp": [fps.get(f) for f in frames]}
    return {"graph": source.graph_config(), "tasks": tasks}


def _progress(total: int, desc: str, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not show, file=sys.stderr)


def _write_webdataset(sources: list[ExportSource], description: dict[str, Any], out: Path, label: str,
                      shard_size: int, shuffle: bool, seed: int, show: bool) -> int:
    try:
        import webdataset as wds
    except ImportError as e:
        raise ConfigError(f"packing to webdataset needs webdataset: {_EXTRA}") from e
    samples = [(v, s, f) for v, s in enumerate(sources)
               for f in sorted(set().union(*(set(t["frames"]) for t in description["videos"][s.video]["tasks"].values())))]
    if shuffle:  # samples of all videos mixed across shards, so that a shard buffer shuffles well
        random.Random(seed).shuffle(samples)
    pattern = str(out / "shard-%06d.tar")
    frame_sets = {(s.video, name): set(t["frames"]) for s in sources
                  for name, t in description["videos"][s.video]["tasks"].items()}
    with _progress(len(samples), f"webdataset {label}", show) as bar, \
            wds.ShardWriter(pattern, maxcount=shard_size, verbose=0) as sink:
        for _, source, frame in samples:
            sample: dict[str, Any] = {"__key__": f"{source.video}/{frame}"}
            for name in description["videos"][source.video]["tasks"]:
                if frame in frame_sets[(source.video, name)]:
                    sample[f"{name}.npy"] = _npy(source.read(name, frame))
            sink.write(sample)
            bar.update()
    shards = sorted(p.name for p in out.glob("shard-*.tar"))
    _index_members(out, shards, description)
    (out / WEBDATASET_INDEX).write_text(json.dumps(description))
    return len(shards)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _index_members(out: Path, shards: list[str], description: dict[str, Any]) -> None:
    """Record where each task's frame lies (shard, offset, size), for random access."""
    where: dict[tuple[str, str, int], list[Any]] = {}
    for shard in shards:
        with tarfile.open(out / shard) as tar:
            for member in tar:
                base, _, ext = member.name.rpartition("/")
                frame, dot, rest = ext.partition(".")
                if not dot or not rest.endswith(".npy"):
                    continue
                where[(base, rest[:-4], int(frame))] = [shard, member.offset_data, member.size]
    for video, v in description["videos"].items():
        for name, task in v["tasks"].items():
            task["members"] = [where[(video, name, f)] for f in task["frames"]]


def pack_summary(summary: dict[str, Any], say: Callable[[str], None]) -> None:
    """Print a pack's summary, one line per video."""
    for video, tasks in summary["videos"].items():
        say(f"{video}: " + ", ".join(f"{t} {n}" for t, n in tasks.items()))
