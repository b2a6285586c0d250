"""Storage backends: where exported frames go. `DirectoryStore` writes the seed's layout.

Layout (compatible with the seed tool and the Dronescapes readers)::

    <out>/<name>/npz/<frame>.npz        disk form under key arr_0 (plain numpy.load, no pickle)
    <out>/<name>/jpg|png/<frame>.<ext>  optional previews
    <out>/<name>/frames.jsonl           append-only per-frame records (run id, seconds, formats)
    <out>/<name>/representation_metadata.json   compact view, regenerated at the end of each run
    <out>/.logs/run_metadata_<run>.json, log_<run>.txt

The files are the truth about what is done: each is written under a temporary name and renamed,
so a frame exists under its final name only when complete, whatever kills the process. Records
are appended with one write() on an O_APPEND descriptor, so concurrent processes never mix lines.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.errors import ConfigError
from vrecore.npz import load_npz, write_npz

__all__ = ["DirectoryStore", "Store", "required_folders"]

_TMP = re.compile(r"^(\d+)\.[a-z]+\.tmp-(\d+)-[0-9a-f]+$")


def required_folders(binary_format: str, image_format: str) -> list[str]:
    """The sub-folders that must hold a frame for it to count as done."""
    out = ["npz"] if binary_format != "none" else []
    return out + ([image_format] if image_format != "none" else [])


class Store(ABC):
    """Where the frames of representations are kept (pluggable: subclass it and pass an instance to
    `run_export` in place of the output folder).

    ``root`` is a local folder for the run's log and run metadata (``<root>/.logs``); frames and
    per-representation metadata go wherever the subclass puts them.
    """

    root: Path

    @property
    def logs(self) -> Path:
        """The local folder of run logs and run metadata."""
        path = self.root / ".logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @abstractmethod
    def done_frames(self, name: str, folders: list[str]) -> set[int]:
        """Frames of ``name`` present in every one of ``folders``."""

    @abstractmethod
    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str) -> None:
        """Store one frame's disk-form array and/or preview image, atomically per file."""

    @abstractmethod
    def read_frame(self, name: str, index: int) -> np.ndarray:
        """The disk-form array of one stored frame."""

    @abstractmethod
    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        """Append per-frame records of a representation."""

    @abstractmethod
    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        """Every per-frame record of a representation, oldest first."""

    @abstractmethod
    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata document of a representation (called under `lock`)."""

    def write_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> Path:
        """Write a run's metadata as JSON into `logs`, atomically; returns its path."""
        path = self.logs / f"run_metadata_{run_id}.json"
        _atomic(path, lambda p: p.write_text(json.dumps(metadata, indent=1, default=str)))
        return path

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive access to a representation's metadata across processes (default: none needed)."""
        yield

    def remove_stale_temporaries(self, names: Iterable[str]) -> int:
        """Delete what crashed writers left behind; returns how many (default: nothing to do)."""
        return 0


class DirectoryStore(Store):
    """The seed-compatible folder layout on a local or shared file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"output_dir '{root}' cannot be created ({e.strerror}); choose a writable folder") from e
        self._resolved_root = self.root.resolve()

    def folder(self, name: str) -> Path:
        """The folder of a representation; never outside the output folder."""
        path = (self.root / name).resolve()
        if path.parent != self._resolved_root:
            raise ConfigError(f"representation name {name!r} would write outside output_dir; rename it")
        return path

    def done_frames(self, name: str, folders: list[str]) -> set[int]:
        result: set[int] | None = None
        for sub in folders:
            present = set()
            with contextlib.suppress(FileNotFoundError):
                with os.scandir(self.folder(name) / sub) as it:
                    for entry in it:
                        stem, dot, ext = entry.name.partition(".")
                        if dot and ext == sub and stem.isdigit():
                            present.add(int(stem))
            result = present if result is None else result & present
        return result or set()

    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str) -> None:
        base = self.folder(name)
        if binary is not None:
            _atomic(base / "npz" / f"{index}.npz", lambda p: write_npz(p, binary, compress=compress))
        if image is not None:
            _atomic(base / image_format / f"{index}.{image_format}", lambda p: _write_image(p, image, image_format))

    def read_frame(self, name: str, index: int) -> np.ndarray:
        return load_npz(self.folder(name) / "npz" / f"{index}.npz")

    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "frames.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.folder(name) / "frames.jsonl"
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            for line in f:
                with contextlib.suppress(ValueError):  # a torn line from a crash is skipped
                    yield json.loads(line)

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self.write_json(self.folder(name) / "representation_metadata.json", metadata)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive lock across processes for rewriting a representation's metadata file."""
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def write_json(self, path: Path, obj: Any) -> None:
        """Write a JSON file atomically (temporary name, then rename)."""
        _atomic(path, lambda p: p.write_text(json.dumps(obj, indent=1, default=str)))

    def remove_stale_temporaries(self, names: Iterable[str]) -> int:
        """Delete temporary files left by processes that no longer run (e.g. after kill -9)."""
        removed = 0
        for name in names:
            folder = self.folder(name)
            if not folder.is_dir():
                continue
            for sub in folder.iterdir():
                if not sub.is_dir():
                    continue
                for entry in os.scandir(sub):
                    m = _TMP.match(entry.name)
                    if m and not _pid_alive(int(m.group(2))):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
        return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_image(path: Path, image: np.ndarray, image_format: str) -> None:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    if image_format == "jpg":
        im.save(path, format="JPEG", quality=90)
    else:
        im.save(path, format="PNG", compress_level=1)
