"""The directory store: npz folders on a local or shared file system, in the seed tool's layout.

Layout (readable by the seed tool's reader, which takes every non-hidden entry of a representation
folder for a folder of frames)::

    <out>/<name>/npz/<frame>.npz        disk form under key arr_0 (plain numpy.load, no pickle)
    <out>/<name>/jpg|png/<frame>.<ext>  optional previews
    <out>/<name>/.frames.jsonl          append-only per-frame records: run, seconds, fingerprint, and
                                        each file's size, mtime and CRC-32 (what verification checks)
    <out>/<name>/.repr_metadata.json    type, parameters, fingerprint, disk form and frames
    <out>/.logs/run_metadata_<run>.json, log_<run>.txt
    <out>/.quarantine/<run>/<name>/<sub>/<file>   bad files moved aside (never deleted)

Nothing below the output folder is reached through a symbolic link (`vrecore.store.safe_paths`: a link there
is refused in one line, never followed out of the folder).

Each file is written under a temporary name and renamed, so a frame exists under its final name
only when complete, whatever kills the process; its record is appended after the rename with one
write() on an O_APPEND descriptor, so concurrent processes never mix lines. Temporary names carry
the host and process id, so that a run reaps only what dead processes of its own host left behind
(an output folder on a network file system may be shared by several machines).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import stat
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.store.base import FORMAT_FOLDERS, FileFacts, Store
from vrecore.store.files import (
    HOST,
    TEMPORARY_NAME,
    describe_os_error,
    encode_image,
    pid_alive,
    write_atomic,
    write_parts,
)
from vrecore.store.npz import load_npz, npz_bytes
from vrecore.store.safe_paths import (
    SymlinkRefused,
    append,
    create_new,
    directory,
    move,
    open_lock,
    open_regular,
    read_regular,
    remove,
)

__all__ = ["METADATA_FILE", "RECORDS_FILE", "DirectoryStore"]

RECORDS_FILE = ".frames.jsonl"
METADATA_FILE = ".repr_metadata.json"
_LEGACY = {"frames.jsonl": RECORDS_FILE, "representation_metadata.json": METADATA_FILE}  # vre 0.1 names
_OWN_FOLDERS = (".logs", ".quarantine")
_OWN_FILES = (*FORMAT_FOLDERS, RECORDS_FILE, METADATA_FILE, ".lock", *_LEGACY)


_ROOM_CHECKED: dict[int, float] = {}
"""File system (device number) -> when `DirectoryStore.check_writable` last found room on it in this process."""


class DirectoryStore(Store):
    """The seed-compatible folder layout on a local or shared file system (registered as ``directory``, the
    default store, with the ``file://`` scheme)."""

    @classmethod
    def check_location(cls, location: str) -> None:
        if os.path.exists(location) and not os.path.isdir(location):
            raise ConfigError(f"output_dir '{location}' is a file, not a folder; choose a folder")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"output_dir '{root}' cannot be created ({e.strerror}); choose a writable folder") from e
        self._resolved_root = self.root.resolve()
        self._migrated: set[str] = set()
        """Representations whose vre 0.1 file names `_migrate` has dealt with (once per store object)."""

    def folder(self, name: str) -> Path:
        """The folder of a representation; never outside the output folder."""
        if name and "/" not in name and name not in (".", "..") and "\0" not in name:
            # One plain folder name that is not a link resolves to itself below the resolved output folder: one
            # lstat instead of resolving every folder of the absolute path (~50 calls per export).
            plain = self._resolved_root / name
            try:
                is_link = stat.S_ISLNK(os.lstat(plain).st_mode)
            except OSError:
                is_link = False
            if not is_link:
                return plain
        path = (self.root / name).resolve()
        if path.parent != self._resolved_root:
            raise ConfigError(f"representation name {name!r} would write outside output_dir; rename it")
        return path

    def refuse_links(self) -> None:
        """Raise SymlinkRefused now, before any work, for a link where vre writes: ``.logs``, ``.quarantine``, and in
        each representation folder its frame folders, records, metadata and lock (frames: `stat_frames`)."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(self.root) as top:
            for entry in top:
                if entry.name in _OWN_FOLDERS and entry.is_symlink():
                    raise SymlinkRefused(self.root / entry.name)
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(entry.path) as inside:
                    for item in inside:
                        if item.name in _OWN_FILES and item.is_symlink():
                            raise SymlinkRefused(self.root / entry.name / item.name)

    def check_writable(self) -> None:
        """Raise a one-line StorageError now if nothing can be written (read-only folder, full disk, a link below
        the folder where vre writes)."""
        self.refuse_links()
        probe = f".write-test-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with directory(self.root) as fd:
                device = os.fstat(fd).st_dev
                # Room for a few frames, or the disk is as good as full: written and synced once per file system
                # and minute in a process (many videos in one run: a few ms each otherwise); a file made and
                # removed still proves the folder writable.
                room = time.monotonic() - _ROOM_CHECKED.get(device, -math.inf) > 60
                try:
                    with create_new(fd, probe, self.root / probe) as f:
                        if room:
                            f.write(bytes(256 * 1024))
                            f.flush()
                            os.fsync(f.fileno())
                            _ROOM_CHECKED[device] = time.monotonic()
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(probe, dir_fd=fd)
        except OSError as e:
            raise StorageError(describe_os_error(e, f"output_dir '{self.root}'")) from e

    # -- frames ----------------------------------------------------------------------------------
    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str, *, durable: bool = False) -> dict[str, FileFacts]:
        self.folder(name)
        facts: dict[str, FileFacts] = {}
        if binary is not None:
            facts["npz"] = write_atomic(self.root, f"{name}/npz/{index}.npz",
                                   lambda f: write_parts(f, npz_bytes(binary, compress=compress)), durable=durable)
        if image is not None:
            facts[image_format] = write_atomic(self.root, f"{name}/{image_format}/{index}.{image_format}",
                                          lambda f: write_parts(f, [encode_image(image, image_format)]),
                                          durable=durable)
        return facts

    def stat_frames(self, name: str, sub: str) -> dict[int, tuple[int, int]]:
        present: dict[int, tuple[int, int]] = {}
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(self.folder(name) / sub) as it:
            for entry in it:
                stem, dot, ext = entry.name.partition(".")
                if entry.is_symlink() and (dot and ext == sub and stem.isdigit() or TEMPORARY_NAME.match(entry.name)):
                    raise SymlinkRefused(self.root / name / sub / entry.name)  # never verified, moved or deleted
                if dot and ext == sub and stem.isdigit():
                    with contextlib.suppress(FileNotFoundError):
                        st = entry.stat(follow_symlinks=False)  # a link is not the file that was written
                        present[int(stem)] = (st.st_size, st.st_mtime_ns)
        return present

    def has_frames(self, name: str) -> bool:
        for sub in FORMAT_FOLDERS:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(self.folder(name) / sub) as it:
                if any(e.name.partition(".")[2] == sub for e in it):
                    return True
        return False

    def path(self, name: str, sub: str, index: int) -> Path:
        """Where one frame's file of a sub-folder lives."""
        return self.folder(name) / sub / f"{index}.{sub}"

    def read_bytes(self, name: str, sub: str, index: int) -> bytes:
        self.folder(name)
        return read_regular(self.root, f"{name}/{sub}/{index}.{sub}")

    def read_frame(self, name: str, index: int) -> np.ndarray:
        with open_regular(self.path(name, "npz", index)) as f:
            return load_npz(f)

    def quarantine(self, name: str, sub: str, index: int, run_id: str) -> str:
        self.folder(name)
        file = f"{index}.{sub}"
        dst = PurePath(".quarantine", run_id, name, sub, file)
        move(self.root, f"{name}/{sub}/{file}", dst)
        return str(self.root / dst)

    def remove_frames(self, name: str) -> int:
        self.folder(name)
        removed = 0
        for sub in FORMAT_FOLDERS:
            for index in self.stat_frames(name, sub):
                removed += remove(self.root, f"{name}/{sub}/{index}.{sub}")
        remove(self.root, f"{name}/{RECORDS_FILE}")
        return removed

    # -- records and metadata --------------------------------------------------------------------
    def _migrate(self, name: str) -> None:
        """Rename vre 0.1's visible metadata files to their hidden names (the seed reader needs that)."""
        if name in self._migrated:
            return
        for old, new in _LEGACY.items():
            if os.path.lexists(self.root / name / old):
                if os.path.lexists(self.root / name / new):
                    remove(self.root, f"{name}/{old}")
                else:
                    with contextlib.suppress(FileNotFoundError):
                        move(self.root, f"{name}/{old}", f"{name}/{new}")
        self._migrated.add(name)

    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        self.folder(name)
        append(self.root, f"{name}/{RECORDS_FILE}", data)

    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        self.folder(name)
        self._migrate(name)
        try:
            data = read_regular(self.root, f"{name}/{RECORDS_FILE}")
        except (FileNotFoundError, NotADirectoryError):
            return
        lines = [line for line in data.split(b"\n") if line.strip()]
        try:  # one parse of the whole file is several times faster than one per line
            records = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:  # a torn line from a crash: parse line by line, skipping it
            records = []
            for line in lines:
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        yield from (r for r in records if isinstance(r, dict))

    def read_metadata(self, name: str) -> dict[str, Any] | None:
        self.folder(name)
        self._migrate(name)
        try:
            meta = json.loads(read_regular(self.root, f"{name}/{METADATA_FILE}"))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def metadata_path(self, name: str) -> Path:
        """Where a representation's metadata document lives."""
        return self.folder(name) / METADATA_FILE

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self.folder(name)
        self.write_json(f"{name}/{METADATA_FILE}", metadata)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock across processes for rewriting a representation's metadata file."""
        self.folder(name)
        with open_lock(self.root, f"{name}/.lock") as fd:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def write_json(self, rel: str | PurePath, obj: Any) -> None:
        """Write a JSON file below the output folder atomically (temporary name, then rename); compact: a frame
        map of 10,000 entries written with indentation takes several times longer."""
        write_atomic(self.root, rel, lambda f: f.write(json.dumps(obj, separators=(",", ":"), default=str).encode()))

    def _temporaries(self, names: Iterable[str]) -> Iterator[tuple[str, re.Match[str]]]:
        """Temporary files of this host in the frame folders of ``names``, as paths below the output folder."""
        for name in names:
            folder = self.folder(name)
            subs = []
            try:
                for entry in os.scandir(folder):
                    if entry.name in FORMAT_FOLDERS and entry.is_symlink():
                        raise SymlinkRefused(folder / entry.name)
                    if entry.name in FORMAT_FOLDERS and entry.is_dir(follow_symlinks=False):
                        subs.append(entry.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for sub in subs:
                for entry in os.scandir(folder / sub):
                    m = TEMPORARY_NAME.match(entry.name)
                    if m and m.group("host") == HOST:
                        yield f"{name}/{sub}/{entry.name}", m

    def remove_stale_temporaries(self, names: Iterable[str]) -> int:
        """Delete temporary files left by dead processes of this host (e.g. after kill -9). Another
        host's are left alone: its process ids mean nothing here."""
        removed = 0
        for rel, m in self._temporaries(names):
            if not pid_alive(int(m.group("pid"))):
                removed += remove(self.root, rel)
        return removed

    def remove_own_temporaries(self, names: Iterable[str]) -> int:
        removed = 0
        for rel, m in self._temporaries(names):
            if int(m.group("pid")) == os.getpid():
                removed += remove(self.root, rel)
        return removed
