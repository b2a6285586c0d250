"""Reading packed datasets (`vre pack`): a zarr store, or webdataset tar shards with their index.

Both hold the stored (disk-form) arrays of an export and what its metadata says about each task, so
`MultiTaskDataset` reads them exactly as it reads the export folder. Layouts:

* zarr: a group whose ``vre`` attribute describes the pack; one array per video and task at
  ``<video>/<task>``, (N, H, W[, C]) in the stored dtype, one chunk per frame; the array's ``frames``
  attribute lists the frame index of each row and ``fp`` each frame's fingerprint digest.
* webdataset: ``shard-NNNNNN.tar`` files, one sample per frame (key ``<video>/<frame>``, one
  ``<task>.npy`` member per stored task), and ``vre_pack.json``: the description and an index of every
  member's shard, offset and size (random access without scanning the shards).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.data.sources import FrameKey, StoredTask
from vrecore.errors import ConfigError, StorageError
from vrecore.store.npz import load_npy

__all__ = ["PACK_FORMAT", "PACK_MANIFEST", "PACK_TOOL", "WEBDATASET_INDEX", "PackedSource", "open_packed_sources"]

PACK_FORMAT = "vre-pack"
PACK_VERSION = 1
WEBDATASET_INDEX = "vre_pack.json"
PACK_MANIFEST = "vre_pack_manifest.json"
"""Written into every pack: the tool, format, source export, time and top-level entries; --overwrite replaces
only a folder holding it (and nothing else)."""
PACK_TOOL = "vre pack"


class PackedSource:
    """One video of a packed dataset (zarr store or webdataset shards); opened lazily in each process."""

    def __init__(self, root: Path, video: str, kind: str, description: dict[str, Any]) -> None:
        self.root = Path(root)
        self.video = video
        self.kind = kind
        self._description = description
        self._handle: Any = None
        self.tasks = {name: StoredTask(name=name, type_name=t.get("type"), parameters=t.get("parameters") or {},
                                       dependency_roles=t.get("dependency_roles") or {},
                                       metadata=t.get("metadata") or {}, provider=t.get("provider"),
                                       stored_dtype=t.get("stored_dtype"))
                      for name, t in description["tasks"].items()}
        self._frames = {name: {int(f): i for i, f in enumerate(t["frames"])} for name, t in description["tasks"].items()}

    def __repr__(self) -> str:
        return f"PackedSource({str(self.root)!r}, video={self.video!r}, kind={self.kind!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}  # no open store or file in a pickle (DataLoader workers)

    def graph_config(self) -> dict[str, dict[str, Any]]:
        return {name: dict(spec) for name, spec in (self._description.get("graph") or {}).items()}

    def frames(self, task: str) -> set[int]:
        return set(self._frames.get(task, {}))

    def frame_keys(self, task: str, frames: Any) -> dict[int, FrameKey]:
        t = self._description["tasks"][task]
        rows = self._frames[task]
        return {f: (t["fp"][rows[f]], self.kind, rows[f]) for f in frames}

    def read(self, task: str, frame: int) -> np.ndarray:
        row = self._frames[task][frame]
        if self.kind == "zarr":
            if self._handle is None:
                import zarr

                self._handle = zarr.open_group(str(self.root), mode="r")
            return np.asarray(self._handle[f"{self.video}/{task}"][row])
        if self._handle is None:
            self._handle = {}
        shard, offset, size = self._description["tasks"][task]["members"][row]
        f = self._handle.get(shard)
        if f is None:
            f = self._handle[shard] = open(self.root / shard, "rb")  # noqa: SIM115 - kept open for the next reads
        f.seek(offset)
        try:
            return load_npy(f.read(size))
        except ValueError as e:
            raise StorageError(f"{self.root / shard}: the member of frame {frame} of task '{task}' cannot be read "
                               f"({e}); pack the export again") from e


def open_packed_sources(path: Path) -> tuple[list[PackedSource], bool] | None:
    """The videos of a packed dataset at ``path`` and whether it was packed from a folder of exports;
    None when ``path`` is not a pack."""
    if (path / "zarr.json").is_file():
        import zarr

        try:
            description = dict(zarr.open_group(str(path), mode="r").attrs).get("vre")
        except Exception as e:  # noqa: BLE001 - whatever zarr raises on a damaged store
            raise ConfigError(f"'{path}' is not a readable zarr store ({type(e).__name__}: {e})") from e
        return _sources(path, "zarr", description)
    index = path / WEBDATASET_INDEX
    if index.is_file():
        try:
            description = json.loads(index.read_text())
        except ValueError as e:
            raise ConfigError(f"'{index}' is damaged ({e}); pack the export again with `vre pack`") from e
        return _sources(path, "webdataset", description)
    return None


def _sources(path: Path, kind: str, description: Any) -> tuple[list[PackedSource], bool]:
    if not isinstance(description, dict) or description.get("format") != PACK_FORMAT:
        raise ConfigError(f"'{path}' is a {kind} dataset not written by `vre pack` (no '{PACK_FORMAT}' description); "
                          f"read it with {kind}'s own tools")
    if description.get("version") != PACK_VERSION:
        raise ConfigError(f"'{path}' was packed in format version {description.get('version')}, this vre reads "
                          f"version {PACK_VERSION}; pack the export again")
    videos = description.get("videos")
    if not isinstance(videos, dict) or not videos:
        raise ConfigError(f"'{path}' describes no videos: it is not a complete `vre pack` output; pack the export "
                          f"again")
    damaged = f"'{path}' is an incomplete or damaged pack"
    try:
        sources = [PackedSource(path, video, kind, v) for video, v in videos.items()]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ConfigError(f"{damaged} (its description lacks {e}); pack the export again") from e
    if kind == "zarr":
        import zarr

        group = zarr.open_group(str(path), mode="r")
        for source in sources:
            for task, rows in source._frames.items():
                if not rows:
                    continue
                key = f"{source.video}/{task}"
                try:
                    array = group[key]
                    if not isinstance(array, zarr.Array):
                        raise KeyError(key)
                    length = array.shape[0]
                except (KeyError, IndexError) as e:
                    raise ConfigError(f"'{path}' has no array '{key}' that its description lists ({damaged}); pack "
                                      f"the export again") from e
                if length != len(rows):
                    raise ConfigError(f"{damaged}: array '{key}' has {length} rows, its description lists "
                                      f"{len(rows)} frames; pack the export again")
    else:
        for source in sources:
            for task, t in source._description["tasks"].items():
                members = t.get("members")
                if not isinstance(members, list) or len(members) != len(t["frames"]):
                    raise ConfigError(f"{damaged}: '{WEBDATASET_INDEX}' lacks the index of task '{task}' of video "
                                      f"'{source.video}'; pack the export again")
                missing = sorted({m[0] for m in members} - {p.name for p in path.glob("shard-*.tar")})
                if missing:
                    raise ConfigError(f"{damaged}: shard '{missing[0]}' is missing; pack the export again")
    return sources, bool(description.get("multi"))
