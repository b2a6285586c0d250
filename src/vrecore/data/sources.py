"""Where a dataset's stored frames come from: one export folder per video, read without changing it."""
from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.store.npz import DiskForm, load_npz, read_npz_into

__all__ = ["ExportSource", "FrameKey", "StoredTask", "find_exports", "is_export"]

METADATA_FILES = (".repr_metadata.json", "representation_metadata.json")  # vre 0.2 (hidden), vre 0.1
RECORDS_FILES = (".frames.jsonl", "frames.jsonl")
FORMAT_FOLDERS = ("npz", "jpg", "png")

FrameKey = tuple[Any, ...]
"""What identifies one stored frame's content for the statistics cache: (fingerprint digest, size, mtime_ns)."""


@attrs.frozen
class StoredTask:
    """What an export records about one representation: its type, parameters and dependencies."""

    name: str
    type_name: str | None
    parameters: Mapping[str, Any]
    dependency_roles: Mapping[str, Any]
    metadata: Mapping[str, Any]
    provider: str | None
    """The distribution that made it (from the fingerprint), named when its type is not installed."""
    stored_dtype: str | None
    stored_shape: tuple[int, ...] | None = None
    """The shape of every stored frame (from the fingerprint), when the export records it."""

    def disk_form(self) -> DiskForm | None:
        """(shape, dtype) every stored frame must have, when the export records both."""
        if self.stored_shape is None or self.stored_dtype is None:
            return None
        try:
            return self.stored_shape, np.dtype(self.stored_dtype)
        except TypeError:  # a dtype name this numpy does not know: no form to check against
            return None

    def spec(self) -> dict[str, Any]:
        """The pipeline entry that rebuilds this representation."""
        return {"type": self.type_name, "dependencies": dict(self.dependency_roles),
                "parameters": dict(self.parameters)}


def is_export(path: Path) -> bool:
    """Whether ``path`` holds representation folders (``<name>/npz`` ...) directly."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if entry.is_dir() and not entry.name.startswith(".") and any(
                    os.path.isdir(os.path.join(entry.path, sub)) for sub in FORMAT_FOLDERS):
                return True
    return False


def find_exports(path: Path) -> list[tuple[str, Path]]:
    """(video name, folder) of the export at ``path``, or of every export in it (one sub-folder per video)."""
    if not path.is_dir():
        raise ConfigError(f"dataset path '{path}' is not a folder; give an export folder or a folder of exports")
    if is_export(path):
        return [(path.name, path)]
    found = sorted((p.name, p) for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and is_export(p))
    if not found:
        raise ConfigError(f"'{path}' holds no export: no <representation>/npz folders in it or in its sub-folders; "
                          f"give the output_dir of `vre export` or the output_root of a multirun")
    return found


class ExportSource:
    """One export folder (one video): its stored representations and their frames, read only."""

    def __init__(self, root: Path, video: str) -> None:
        self.root = Path(root)
        self.video = video
        self._tasks: dict[str, StoredTask] | None = None

    def __repr__(self) -> str:
        return f"ExportSource({str(self.root)!r}, video={self.video!r})"

    # -- what is stored ----------------------------------------------------------------------------
    @property
    def tasks(self) -> dict[str, StoredTask]:
        """Every representation with an npz folder, by name."""
        if self._tasks is None:
            tasks = {}
            for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
                if entry.is_dir() and not entry.name.startswith(".") and os.path.isdir(os.path.join(entry.path, "npz")):
                    tasks[entry.name] = self._stored_task(entry.name)
            self._tasks = tasks
        return self._tasks

    def _stored_task(self, name: str) -> StoredTask:
        meta = self.metadata(name)
        fingerprint = meta.get("fingerprint") or {}
        stored = fingerprint.get("stored") or {}
        shape = stored.get("shape")
        return StoredTask(name=name, type_name=meta.get("type"), parameters=meta.get("parameters") or {},
                          dependency_roles=meta.get("dependency_roles") or {}, metadata=meta.get("metadata") or {},
                          provider=(fingerprint.get("plugin") or {}).get("name"),
                          stored_dtype=stored.get("dtype"), stored_shape=_shape(shape))

    def metadata(self, name: str) -> dict[str, Any]:
        """The representation's metadata document ({} when it has none, e.g. an export of another tool)."""
        for file in METADATA_FILES:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, ValueError):
                meta = json.loads((self.root / name / file).read_text())
                if isinstance(meta, dict):
                    return meta
        return {}

    def graph_config(self) -> dict[str, dict[str, Any]]:
        """Name -> pipeline entry of every representation the export's runs computed (stored or not),
        the newest run last; stored representations' own metadata wins."""
        specs: dict[str, dict[str, Any]] = {}
        logs = self.root / ".logs"
        for path in sorted(logs.glob("run_metadata_*.json")) if logs.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                graph = json.loads(path.read_text()).get("graph") or {}
                for name, spec in (graph.get("representations") or {}).items():
                    if isinstance(spec, dict) and spec.get("type"):
                        specs[name] = {"type": spec["type"], "dependencies": spec.get("dependencies") or {},
                                       "parameters": spec.get("parameters") or {}}
        for name, task in self.tasks.items():
            if task.type_name:
                specs[name] = task.spec()
        return specs

    # -- frames ------------------------------------------------------------------------------------
    def frames(self, task: str) -> set[int]:
        """The frames stored as ``<task>/npz/<frame>.npz``."""
        out: set[int] = set()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(self.root / task / "npz") as it:
            for entry in it:
                stem, dot, ext = entry.name.partition(".")
                if dot and ext == "npz" and stem.isdigit():
                    out.add(int(stem))
        return out

    def frame_keys(self, task: str, frames: Iterable[int]) -> dict[int, FrameKey]:
        """Frame -> (fingerprint digest of its record, size, mtime_ns): changes whenever the frame does."""
        records = _latest_fingerprints(self.root / task)
        keys: dict[int, FrameKey] = {}
        for frame in frames:
            try:
                st = os.stat(self.path(task, frame))
            except OSError:
                keys[frame] = (None, -1, -1)
                continue
            keys[frame] = (records.get(frame), st.st_size, st.st_mtime_ns)
        return keys

    def path(self, task: str, frame: int) -> Path:
        return self.root / task / "npz" / f"{frame}.npz"

    def read(self, task: str, frame: int) -> np.ndarray:
        """The stored (disk-form) array of one frame."""
        path = self.path(task, frame)
        try:
            return load_npz(path, expected=self._disk_form(task))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise self._unreadable(path, e) from e

    def read_into(self, task: str, frame: int, out: np.ndarray) -> bool:
        """Read one frame into ``out`` when its file holds ``out``'s dtype and size (see `read_npz_into`);
        False otherwise (the caller then reads it with `read`)."""
        path = self.path(task, frame)
        try:
            return read_npz_into(path, out, expected=self._disk_form(task))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise self._unreadable(path, e) from e

    def _disk_form(self, task: str) -> DiskForm | None:
        stored = self.tasks.get(task)
        return stored.disk_form() if stored is not None else None

    def _unreadable(self, path: Path, error: BaseException) -> StorageError:
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return StorageError(f"{path} cannot be read ({why}); `vre verify {self.root} --repair` moves damaged "
                            f"frames aside and computes them again")


def _shape(value: Any) -> tuple[int, ...] | None:
    """A recorded shape as a tuple of sizes (None when absent or not a list of non-negative integers)."""
    if isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        return tuple(value)
    return None


def _latest_fingerprints(folder: Path) -> dict[int, str | None]:
    """Frame -> fingerprint digest of its latest record."""
    from vrecore.store.verify import latest_records

    for file in RECORDS_FILES:
        try:
            with open(folder / file, "rb") as f:
                records = []
                for line in f:
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if isinstance(record, dict):
                            records.append(record)
        except (FileNotFoundError, NotADirectoryError):
            continue
        _, latest = latest_records(records)
        return {frame: record.get("fp") for frame, record in latest.items()}
    return {}
