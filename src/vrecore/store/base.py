"""The `Store` protocol: the one interface a store implements (the directory store, or a plugin's).

A store keeps, per representation (``name``): frame files by sub-folder (``npz``: the disk-form array,
``jpg``/``png``: previews), an append-only list of per-frame records, and one metadata document. A plugin
registers its class through the ``register_stores`` hook; vre builds it as ``Class(location, **options)``
(`vrecore.store.location.open_store`) and relies on what each method's docstring promises:

- a frame file exists under its final name only when complete (write, then publish atomically), whatever
  kills the process, and several processes may write different frames of one representation at once;
- records are appended whole (concurrent appenders never interleave one record's bytes);
- `lock` excludes other processes (of every host that shares the store) while one rewrites a metadata document;
- bad files are moved aside by `quarantine`, never deleted; nothing outside the store is read or written.

``root`` is a local folder whatever the store: run logs and run metadata (``<root>/.logs``) and the quarantine
of the directory store live there; verification (`vrecore.store.verify`) works on any store through
`stat_frames`, `read_bytes` and the facts `write_frame` returns.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.store.files import write_atomic
from vrecore.store.npz import load_npz
from vrecore.store.safe_paths import SymlinkRefused, directory, open_regular

__all__ = ["FORMAT_FOLDERS", "FileFacts", "Store", "required_folders"]

FORMAT_FOLDERS = ("npz", "jpg", "png")
"""The sub-folders (kinds of frame file) a store keeps: the disk-form array and the two preview formats."""

FileFacts = list[int]
"""What a record says about one stored file: [size in bytes, mtime in ns, CRC-32 of its bytes]."""


def required_folders(binary_format: str, image_format: str) -> list[str]:
    """The sub-folders that must hold a frame for it to count as done."""
    out = ["npz"] if binary_format != "none" else []
    return out + ([image_format] if image_format != "none" else [])


class Store(ABC):
    """Where the frames of representations are kept: subclass it (and register it, or pass an instance to
    `run_export` in place of the output folder).

    ``root`` is a local folder for the run's log, run metadata and quarantine (``<root>/.logs``,
    ``<root>/.quarantine``); frames, records and per-representation metadata go wherever the subclass puts them.
    """

    root: Path

    @classmethod
    def check_location(cls, location: str) -> None:
        """Raise a one-line `vrecore.errors.ConfigError` for a location this store cannot use, before anything is
        made or opened (the store is then built as ``cls(location, **options)``; default: nothing to check)."""
        return None

    @property
    def logs(self) -> Path:
        """The local folder of run logs and run metadata (created; never a link)."""
        with directory(self.root, ".logs", create=True):
            return self.root / ".logs"

    def check_writable(self) -> None:
        """Raise a one-line `vrecore.errors.StorageError` now, before any work, if nothing can be written
        (default: nothing to check)."""
        return None

    # -- frames ----------------------------------------------------------------------------------
    @abstractmethod
    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str, *, durable: bool = False) -> dict[str, FileFacts]:
        """Store one frame's disk-form array (npz bytes, `vrecore.store.npz.npz_bytes`) and/or preview, atomically
        per file (a reader sees the old file or the whole new one, never a part); returns the facts of each file
        written by sub-folder (``{"npz": [size, mtime_ns, crc32], ...}``), which `stat_frames` must report back
        unchanged while the file is untouched. ``durable``: on stable storage before returning."""

    def write_frames(self, name: str, indices: list[int], binary: Any, compress: bool, images: Any,
                     image_format: str, *, durable: bool = False) -> list[dict[str, FileFacts]]:
        """`write_frame` for a batch (``binary`` and ``images`` indexed like ``indices``, or None); a store may
        write them together (default: one by one)."""
        return [self.write_frame(name, i, None if binary is None else binary[j], compress,
                                 None if images is None else images[j], image_format, durable=durable)
                for j, i in enumerate(indices)]

    @abstractmethod
    def stat_frames(self, name: str, sub: str) -> dict[int, tuple[int, int]]:
        """Frame → (size, mtime_ns) of every complete file present in a sub-folder (``npz``, ``jpg``...);
        temporaries of writes in progress are not frames."""

    @abstractmethod
    def read_bytes(self, name: str, sub: str, index: int) -> bytes:
        """The bytes of one stored file (FileNotFoundError when there is none)."""

    def read_frame(self, name: str, index: int) -> np.ndarray:
        """The disk-form array of one stored frame."""
        return self.load_array(name, self.read_bytes(name, "npz", index))

    def load_array(self, name: str, data: bytes) -> np.ndarray:
        """The disk-form array from the bytes `read_bytes` gives for sub-folder ``npz`` (default: an npz, loaded
        without pickle); raises for bytes that are not one (deep verification relies on it)."""
        return load_npz(io.BytesIO(data))

    def has_frames(self, name: str) -> bool:
        """Whether any frame file of ``name`` is stored (in any sub-folder)."""
        return any(self.stat_frames(name, sub) for sub in FORMAT_FOLDERS)

    def done_frames(self, name: str, folders: list[str]) -> set[int]:
        """Frames of ``name`` present in every one of ``folders`` (presence only, not verified)."""
        sets = [set(self.stat_frames(name, sub)) for sub in folders]
        return set.intersection(*sets) if sets else set()

    @abstractmethod
    def quarantine(self, name: str, sub: str, index: int, run_id: str) -> str:
        """Move a bad file aside (never delete it), so that the frame counts as missing; returns where it went,
        for messages."""

    @abstractmethod
    def remove_frames(self, name: str) -> int:
        """Delete every stored frame and record of a representation (``overwrite`` of a changed one); returns how
        many files went. Only what the store itself wrote is removed."""

    # -- records and metadata --------------------------------------------------------------------
    @abstractmethod
    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        """Append per-frame records (JSON-ready dicts) of a representation; each one whole, also when other
        processes append at the same time."""

    @abstractmethod
    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        """Every per-frame record of a representation, oldest first (a record torn by a crash is skipped)."""

    @abstractmethod
    def read_metadata(self, name: str) -> dict[str, Any] | None:
        """The metadata document of a representation, or None when there is none or it is unreadable."""

    @abstractmethod
    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata document of a representation atomically (called under `lock`)."""

    def representations(self) -> list[str]:
        """The names of the representations kept (default: the non-hidden folders of ``root`` holding frame
        folders)."""
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [p.name for p in folders if any((p / sub).is_dir() for sub in FORMAT_FOLDERS)]

    def read_run_metadata(self) -> list[dict[str, Any]]:
        """The metadata of every run recorded (default: ``<root>/.logs/run_metadata_*.json``), unreadable ones
        and links left out; a missing ``.logs`` is not created (readers make nothing)."""
        runs = []
        try:
            with directory(self.root, ".logs") as fd:
                for name in sorted(n for n in os.listdir(fd) if n.startswith("run_metadata_") and n.endswith(".json")):
                    with contextlib.suppress(OSError, ValueError, SymlinkRefused), \
                            open_regular(name, fd=fd, shown=self.root / ".logs" / name) as f:
                        run = json.loads(f.read())
                        if isinstance(run, dict):
                            runs.append(run)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return runs

    def write_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> Path:
        """Write a run's metadata as JSON into `logs`, atomically; returns its path."""
        rel = f".logs/run_metadata_{run_id}.json"
        write_atomic(self.root, rel, lambda f: f.write(json.dumps(metadata, indent=1, default=str).encode()))
        return self.root / rel

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive access to a representation's metadata across processes: a run claims its fingerprint and
        rewrites the document under it (default: none, for a store only one process uses)."""
        yield

    def consolidate(self, name: str) -> int:
        """Tidy what a run left of ``name`` once its frames are written (e.g. fold frames into larger objects);
        called at the end of a run, with other writers possibly running; returns how many frames moved
        (default: nothing to do)."""
        return 0

    def remove_stale_temporaries(self, names: Iterable[str]) -> int:
        """Delete what crashed writers of this host left behind; returns how many (default: none)."""
        return 0

    def remove_own_temporaries(self, names: Iterable[str]) -> int:
        """Delete this process's temporary files (an interrupted run); returns how many (default: none)."""
        return 0
