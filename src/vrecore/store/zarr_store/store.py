"""`ZarrStore`: representations as zarr v3 arrays on a local folder or any fsspec URL (``s3://bucket/x``).

Layout below the location (docs/trust.md says why it is safe without rename or locks)::

    zarr.json                           a zarr v3 group
    <name>/zarr.json                    the array (frames, *shape), chunked by frame, sharded; attributes.vre holds
                                        vre's metadata document (type, parameters, fingerprint, frames)
    <name>/c/<shard>/0/0/0              a shard: frames_per_shard chunks, written whole, only when complete
    <name>/.pending/<frame>             a chunk written by its frame's writer, until a shard takes it
    <name>/jpg|png/<frame>.<ext>        previews
    <name>/.records/<ns>-<host>-<pid>-<id>.jsonl   per-frame records, one immutable object per write
    .quarantine/<run>/<name>/<sub>/<frame>         bad chunks and previews moved aside
    .logs/run_metadata_<run>.json       a copy of each run's metadata (the log stays on the machine that ran)

Every object is written whole by one writer (an object store's PUT) and never changed in place: a frame's chunk
by the process that computed it, a shard by whoever finds all its frames present (any such writer writes the
same bytes), records by the process that made them. ``root`` (run logs) is the location itself when local,
else a folder of vre's cache (``$VRE_CACHE`` or ``~/.cache/vre``, then ``stores/<bucket_path>``).
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.store.base import FileFacts, Store
from vrecore.store.files import HOST, encode_image, pid_alive
from vrecore.store.npz import crc32
from vrecore.store.safe_paths import SymlinkRefused
from vrecore.store.zarr_store.objects import ObjectFiles, require_cloud
from vrecore.store.zarr_store.shards import ArrayLayout, build_shard, dumps, read_index

__all__ = ["ZarrStore"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$")
_SHARD_KEY = re.compile(r"^c/(\d+)(?:/0)*$")
_LOCAL_TEMP = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[0-9a-f]+$")
_PREVIEWS = ("jpg", "png")
_SIDE_METADATA = ".vre-metadata.json"
LISTING_SECONDS = 1.0
RECENT_BYTES = 256 * 2**20
MERGE_RECORDS = 16
"""Record objects of a representation from which the end of a run merges them into one."""
STORE_FORMAT = {"format": "vre-zarr-store", "version": 1}
"""The root group's ``vre_store`` attribute: what tells this layout from a `vre pack` output."""


def _cache_root(location: str) -> Path:
    """The local folder of the run logs of an export at ``location``: ``<vre's cache>/stores/<bucket_path>``."""
    from vrecore.frames.sample import cache_dir

    return cache_dir() / "stores" / re.sub(r"[^A-Za-z0-9_.-]+", "_", location.split("://", 1)[-1].strip("/"))[:200]


class ZarrStore(Store):
    """Zarr v3 arrays of representations at a local folder or an fsspec URL (registered as ``zarr``: for
    ``s3://``, ``gs://``... and folders ending in ``.zarr``). ``codec``: ``zstd`` (default) or ``none``;
    ``frames_per_shard``: frames per shard object; ``storage_options``: fsspec's (endpoint, credentials...)."""

    @classmethod
    def check_location(cls, location: str) -> None:
        require_cloud(f"location '{location}'")
        if "://" not in location:
            if os.path.exists(location) and not os.path.isdir(location):
                raise ConfigError(f"output_dir '{location}' is a file, not a folder; choose a folder")
            return
        import fsspec

        scheme = location.split("://", 1)[0].lower()
        if scheme not in fsspec.available_protocols():
            raise ConfigError(f"output_dir '{location}': fsspec knows no {scheme}:// file system; give an s3://, "
                              f"gs://, az://... URL or a local folder")

    def __init__(self, location: str | os.PathLike[str], *, codec: str = "zstd", level: int = 1,
                 frames_per_shard: int = 8, storage_options: dict[str, Any] | None = None) -> None:
        location = os.fspath(location)
        self.files = ObjectFiles(location, storage_options)
        self.url = location
        self.codec, self.level, self.frames_per_shard = codec, level, frames_per_shard
        ArrayLayout(1, (1,), "uint8", codec=codec, level=level, frames_per_shard=frames_per_shard)  # checks them
        self.root = Path(location) if self.files.local else _cache_root(location)
        self._lock = threading.Lock()
        self._recent_bytes = 0
        self._layouts: dict[str, ArrayLayout | None] = {}
        self._indexes: dict[tuple[str, str, int, int], dict[int, tuple[int, int]]] = {}
        self._listings: dict[str, tuple[int, float, dict[str, tuple[int, int]]]] = {}
        self._records: dict[str, bytes] = {}
        """Record objects read (immutable: never read twice)."""
        self._recent: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        """Chunks this process wrote lately (at most `RECENT_BYTES`), for `consolidate` to fold without reading."""
        self._where: dict[str, tuple[dict[int, tuple[str, int, int]], set[int]]] = {}
        """Per representation, from its last listing: where each chunk in a shard is, and every frame present."""

    def __repr__(self) -> str:
        return f"ZarrStore({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        # where chunks are travels (a reader lists once per process); caches of writes do not
        return {**self.__dict__, "_indexes": {}, "_listings": {}, "_records": {}, "_recent": collections.OrderedDict(),
                "_recent_bytes": 0, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    # -- names and layout ----------------------------------------------------------------------------
    def _key(self, name: str, *parts: str) -> str:
        if not _NAME.match(name) or name in (".", ".."):
            raise ConfigError(f"representation name {name!r} cannot be an array of a zarr store; rename it")
        return "/".join((name, *parts))

    def layout(self, name: str) -> ArrayLayout | None:
        """The array layout of a representation (None before its metadata is written)."""
        if self._layouts.get(name) is None:
            try:
                self._layouts[name] = ArrayLayout.from_json(json.loads(self.files.get(self._key(name, "zarr.json"))))
            except (FileNotFoundError, ValueError):
                self._layouts[name] = None
        return self._layouts[name]

    def _need_layout(self, name: str) -> ArrayLayout:
        layout = self.layout(name)
        if layout is None:
            raise StorageError(f"{self.url}/{name}: no array metadata (zarr.json); export it again to write it")
        return layout

    def check_writable(self) -> None:
        probe = f".vre-write-test-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.files.put(probe, b"probe")
            self.files.delete(probe)
            if not self.files.exists("zarr.json"):
                self.files.put("zarr.json", dumps({"zarr_format": 3, "node_type": "group",
                                                   "attributes": {"vre_store": STORE_FORMAT}}))
        except SymlinkRefused:
            raise
        except Exception as e:  # noqa: BLE001 - OSError, botocore's NoCredentialsError...: one line, no traceback
            raise StorageError(f"output_dir '{self.url}' is not writable ({type(e).__name__}: {_first_line(e)}); "
                               f"check the URL, the bucket and the credentials (AWS_ACCESS_KEY_ID... or "
                               f"storage_options)") from e

    # -- frames ----------------------------------------------------------------------------------------
    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str, *, durable: bool = False) -> dict[str, FileFacts]:
        return self.write_frames(name, [index], None if binary is None else [binary], compress,
                                 None if image is None else [image], image_format, durable=durable)[0]

    def write_frames(self, name: str, indices: list[int], binary: Any, compress: bool, images: Any,
                     image_format: str, *, durable: bool = False) -> list[dict[str, FileFacts]]:
        """A shard whose every frame is in the batch is written whole at once (its writer owns it); the other
        frames' chunks are written as pending objects, for `consolidate`."""
        facts: list[dict[str, FileFacts]] = [{} for _ in indices]
        if binary is not None:
            layout = self._need_layout(name)
            chunks = {i: layout.encode(binary[j]) for j, i in enumerate(indices)}
            position = {i: j for j, i in enumerate(indices)}
            for shard in sorted({layout.shard_of(i) for i in indices}):
                frames = layout.shard_frames(shard)
                if all(f in chunks for f in frames):  # the whole shard: one object, no pending copy
                    _, stamp = self.files.put(self._shard_key(name, layout, frames[0]),
                                              build_shard(layout, shard, {f: chunks[f] for f in frames}))
                    for f in frames:
                        facts[position[f]]["npz"] = [len(chunks[f]), stamp, crc32(chunks[f])]
                    continue
                for f in (f for f in frames if f in chunks):
                    _, stamp = self.files.put(self._key(name, ".pending", str(f)), chunks[f])
                    self._remember(name, f, chunks[f])
                    facts[position[f]]["npz"] = [len(chunks[f]), stamp, crc32(chunks[f])]
        if images is not None:
            for j, i in enumerate(indices):
                data = encode_image(images[j], image_format)
                size, stamp = self.files.put(self._key(name, image_format, f"{i}.{image_format}"), data)
                facts[j][image_format] = [size, stamp, crc32(data)]
        return facts

    def write_preview(self, name: str, sub: str, index: int, data: bytes) -> FileFacts:
        """Store a preview's encoded bytes as they are (`vre pack` copies them); returns its facts."""
        if sub not in _PREVIEWS:
            raise ConfigError(f"'{sub}' is not a preview format ({', '.join(_PREVIEWS)})")
        size, stamp = self.files.put(self._key(name, sub, f"{index}.{sub}"), data)
        return [size, stamp, crc32(data)]

    def _remember(self, name: str, frame: int, chunk: bytes) -> None:
        with self._lock:
            self._recent[(name, frame)] = chunk
            self._recent_bytes += len(chunk)
            while self._recent_bytes > RECENT_BYTES and self._recent:
                self._recent_bytes -= len(self._recent.popitem(last=False)[1])

    def _shard_key(self, name: str, layout: ArrayLayout, frame: int) -> str:
        return self._key(name, f"c/{layout.shard_of(frame)}{layout.shard_key_suffix}")

    def _listing(self, name: str) -> dict[str, tuple[int, int]]:
        """Key below the representation → (size, stamp) of every object of it: one listing request, reused for
        `LISTING_SECONDS` unless this process wrote since (another process's writes are seen on the next one)."""
        cached = self._listings.get(name)
        if cached is not None and cached[0] == self.files.writes and time.monotonic() - cached[1] < LISTING_SECONDS:
            return cached[2]
        listing = self.files.find(self._key(name))
        self._listings[name] = (self.files.writes, time.monotonic(), listing)
        self._where.pop(name, None)
        return listing

    def _shards(self, listing: dict[str, tuple[int, int]]) -> dict[int, tuple[str, int, int]]:
        """Shard → (key below the representation, size, stamp) of every shard object."""
        return {int(m.group(1)): (key, *st) for key, st in listing.items() if (m := _SHARD_KEY.match(key))}

    def _index(self, name: str, layout: ArrayLayout, shard: int, key: str, size: int,
               stamp: int) -> dict[int, tuple[int, int]]:
        """Frame → (offset, length) in a shard object (cached by its size and stamp); {} for a damaged one."""
        cached = self._indexes.get((name, key, size, stamp))
        if cached is None:
            try:
                tail = self.files.get(self._key(name, key), max(0, size - layout.index_bytes), size)
                cached = {f: v for f, v in read_index(layout, shard, tail).items() if v[0] + v[1] <= size}
            except (ValueError, FileNotFoundError):
                cached = {}
            self._indexes[(name, key, size, stamp)] = cached
        return cached

    def _chunks(self, name: str, listing: dict[str, tuple[int, int]] | None = None
                ) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[str, int, int]]]:
        """Frame → (size, stamp) of each chunk, and frame → (shard key, offset, length) of those in shards (also
        kept for `read_bytes`)."""
        layout = self.layout(name)
        if layout is None:
            return {}, {}
        listing = self._listing(name) if listing is None else listing
        stats: dict[int, tuple[int, int]] = {}
        where: dict[int, tuple[str, int, int]] = {}
        for key, st in listing.items():
            folder, _, file = key.partition("/")
            if folder == ".pending" and file.isdigit():
                stats[int(file)] = st
        for shard, (key, size, stamp) in self._shards(listing).items():
            for frame, (offset, length) in self._index(name, layout, shard, key, size, stamp).items():
                stats[frame] = (length, stamp)  # a shard's chunk wins over a pending copy
                where[frame] = (key, offset, length)
        self._where[name] = (where, set(stats))
        return stats, where

    def stat_frames(self, name: str, sub: str) -> dict[int, tuple[int, int]]:
        if sub == "npz":
            return self._chunks(name)[0]
        present = {}
        for key, st in self._listing(name).items():
            folder, _, file = key.partition("/")
            stem, dot, ext = file.partition(".")
            if folder == sub and dot and ext == sub and stem.isdigit():
                present[int(stem)] = st
        return present

    def read_bytes(self, name: str, sub: str, index: int) -> bytes:
        if sub != "npz":
            return self.files.get(self._key(name, sub, f"{index}.{sub}"))
        known = self._where.get(name)
        if known is None or index not in known[1]:  # not seen in the last listing: list again
            self._chunks(name)
            known = self._where.get(name, ({}, set()))
        where, present = known
        if index in where:
            key, offset, length = where[index]
            return self.files.get(self._key(name, key), offset, offset + length)
        if index not in present:
            raise FileNotFoundError(f"{self.url}/{name}: frame {index} is not stored")
        return self.files.get(self._key(name, ".pending", str(index)))

    def read_frame_into(self, name: str, index: int, out: np.ndarray) -> bool:
        """Read one frame straight into ``out`` when it has the frame's dtype and size (False otherwise)."""
        layout = self._need_layout(name)
        return layout.decode_into(self.read_bytes(name, "npz", index), out) if out.dtype == layout.dtype else False

    def load_array(self, name: str, data: bytes) -> np.ndarray:
        return self._need_layout(name).decode(data)

    def has_frames(self, name: str) -> bool:
        return any(key.partition("/")[0] in ("c", ".pending", *_PREVIEWS) for key in self._listing(name))

    def quarantine(self, name: str, sub: str, index: int, run_id: str) -> str:
        dest = f".quarantine/{run_id}/{self._key(name, sub, str(index))}"
        if sub != "npz":
            key = self._key(name, sub, f"{index}.{sub}")
            self.files.put(dest, self.files.get(key))
            self.files.delete(key)
            return f"{self.url}/{dest}"
        layout = self._need_layout(name)
        _, where = self._chunks(name)
        if index in where:  # rewrite its shard without it (the shard is then incomplete: its frames stay readable)
            key, offset, length = where[index]
            key = self._key(name, key)
            whole = self.files.get(key)
            self.files.put(dest, whole[offset:offset + length])
            shard = layout.shard_of(index)
            index_map = read_index(layout, shard, whole[len(whole) - layout.index_bytes:])
            kept = {f: whole[o:o + n] for f, (o, n) in index_map.items() if f != index}
            if kept:
                self.files.put(key, build_shard(layout, shard, kept))
            else:
                self.files.delete(key)
        pending = self._key(name, ".pending", str(index))
        with contextlib.suppress(FileNotFoundError):
            data = self.files.get(pending)
            if index not in where:
                self.files.put(dest, data)
            self.files.delete(pending)
        return f"{self.url}/{dest}"

    def remove_frames(self, name: str) -> int:
        removed = 0
        for key in self._listing(name):
            folder = key.partition("/")[0]
            if folder in ("c", ".pending", *_PREVIEWS, ".records"):
                deleted = self.files.delete(self._key(name, key))
                removed += deleted and folder != ".records"
        self._indexes.clear()
        return removed

    # -- records and metadata --------------------------------------------------------------------------
    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        stem = f"{time.time_ns():020d}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.files.put(self._key(name, ".records", f"{stem}.jsonl"), data)

    def _record_objects(self, name: str) -> list[str]:
        return sorted(key.partition("/")[2] for key in self._listing(name)
                      if key.startswith(".records/") and key.endswith(".jsonl") and key.count("/") == 1)

    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        for file in self._record_objects(name):
            key = self._key(name, ".records", file)
            data = self._records.get(key)
            if data is None:
                try:
                    data = self._records[key] = self.files.get(key)
                except FileNotFoundError:  # merged into another by a concurrent `consolidate`
                    continue
            for line in data.split(b"\n"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line) if line.strip() else None
                    if isinstance(record, dict):
                        yield record

    def read_metadata(self, name: str) -> dict[str, Any] | None:
        for key in (self._key(name, "zarr.json"), self._key(name, _SIDE_METADATA)):
            with contextlib.suppress(FileNotFoundError, ValueError):
                doc = json.loads(self.files.get(key))
                meta = doc.get("attributes", {}).get("vre") if key.endswith("zarr.json") else doc
                if isinstance(meta, dict):
                    return meta
        return None

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """vre's document into the array's ``zarr.json`` (the array is created from the fingerprint: frames of
        the video, shape and dtype of a stored frame; an existing array keeps its codec and shard size)."""
        fingerprint = metadata.get("fingerprint") or {}
        stored, video = fingerprint.get("stored") or {}, fingerprint.get("video") or {}
        layout = self.layout(name)
        if stored.get("shape") and stored.get("dtype") and isinstance(video.get("frames"), int):
            wanted = (video["frames"], tuple(stored["shape"]), np.dtype(stored["dtype"]))
            if layout is None or (layout.frames, layout.shape, layout.dtype) != wanted:
                layout = ArrayLayout(*wanted, codec=self.codec, level=self.level,
                                     frames_per_shard=self.frames_per_shard)
        if layout is None:
            self.files.put(self._key(name, _SIDE_METADATA), dumps(metadata))
            return
        self.files.put(self._key(name, "zarr.json"), dumps(layout.to_json({"vre": metadata})))
        self._layouts[name] = layout

    def representations(self) -> list[str]:
        if self.files.local:
            return [n for n in self.files.local_folders() if _NAME.match(n)]
        try:
            entries = self.files.fs.ls(self.files.path(""), detail=True, refresh=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except Exception as e:  # noqa: BLE001 - no credentials, no bucket, no network: one line
            raise StorageError(f"'{self.url}' cannot be listed ({type(e).__name__}: {_first_line(e)}); check the URL, "
                               f"the bucket and the credentials") from e
        names = sorted(e["name"].rstrip("/").rpartition("/")[2] for e in entries if e.get("type") == "directory")
        return [n for n in names if _NAME.match(n)]

    def read_run_metadata(self) -> list[dict[str, Any]]:
        """The runs recorded in the store (every machine's) and on this machine."""
        runs = {r.get("run_id"): r for r in super().read_run_metadata()}
        if not self.files.local:
            for key in self.files.find(".logs"):
                with contextlib.suppress(OSError, ValueError):
                    run = json.loads(self.files.get(f".logs/{key}"))
                    if isinstance(run, dict):
                        runs.setdefault(run.get("run_id"), run)
        return list(runs.values())

    def write_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> Path:
        path = super().write_run_metadata(run_id, metadata)
        if not self.files.local:
            self.files.put(f".logs/run_metadata_{run_id}.json", path.read_bytes())
        return path

    def consolidate(self, name: str) -> int:
        """Fold the pending chunks of every shard whose frames are all present into that shard (written whole),
        record their new place, delete the pending copies; merge the record objects into one. Returns how many
        frames moved. Safe while other writers run: see docs/trust.md."""
        layout = self.layout(name)
        moved = 0
        if layout is not None and layout.frames_per_shard > 1:
            stats, where = self._chunks(name)
            pending = {f for f in stats if f not in where}
            facts = _latest_facts(self.read_records(name))
            for shard in sorted({layout.shard_of(f) for f in pending}):
                frames = layout.shard_frames(shard)
                if not all(f in stats for f in frames):
                    continue  # incomplete: its frames wait as pending chunks
                chunks = {f: self._recent.get((name, f)) or self.read_bytes(name, "npz", f) for f in frames}
                if any(f not in where and (facts.get(f) or [None] * 3)[2] != crc32(c) for f, c in chunks.items()):
                    continue  # a chunk without a matching record: `vre verify` decides about it first
                _, mtime = self.files.put(self._shard_key(name, layout, frames[0]), build_shard(layout, shard, chunks))
                self.append_records(name, [{**facts[f][3], "files": {**(facts[f][3].get("files") or {}),
                                                                     "npz": [len(c), mtime, crc32(c)]}}
                                           for f, c in chunks.items() if f in facts])
                folded = [f for f in frames if f not in where]
                self.files.delete_many([self._key(name, ".pending", str(f)) for f in folded])
                moved += len(folded)
        self._merge_records(name)
        return moved

    def _merge_records(self, name: str) -> None:
        files = self._record_objects(name)
        if len(files) < MERGE_RECORDS:
            return
        data = b"".join(self._records.get(self._key(name, ".records", f)) or self.files.get(self._key(name, ".records", f))
                        for f in files)
        self.files.put(self._key(name, ".records", f"{files[-1][:-len('.jsonl')]}-m{uuid.uuid4().hex[:6]}.jsonl"),
                       data)
        self.files.delete_many([self._key(name, ".records", f) for f in files])

    def remove_stale_temporaries(self, names: Iterable[str]) -> int:
        """Local locations only: temporaries of dead processes of this host (an object store has none)."""
        if not self.files.local:
            return 0
        removed = 0
        for name in names:
            for key in list(self.files.walk(self._key(name))):
                m = _LOCAL_TEMP.search(key)
                if m and m.group("host") == HOST and not pid_alive(int(m.group("pid"))):
                    removed += self.files.delete(key)
        return removed


def _latest_facts(records: Iterable[dict[str, Any]]) -> dict[int, Any]:
    """Frame → [size, mtime, crc, record] of its latest record's chunk."""
    out: dict[int, Any] = {}
    for r in records:
        frame, npz = r.get("frame"), (r.get("files") or {}).get("npz")
        if isinstance(frame, int) and isinstance(npz, list) and len(npz) == 3:
            out[frame] = [*npz, r]
    return out


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""
