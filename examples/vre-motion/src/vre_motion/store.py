"""`flat`: every file of every representation in one folder, `OUT/<name>-<frame>.<ext>` (for tools that want one
flat folder per clip), with the `Store` protocol's guarantees: atomic files, whole records, a lock, a quarantine."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.plugin import ConfigError, FileFacts, Store, crc32, encode_image, npz_bytes

_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)-(?P<index>\d+)\.(?P<ext>npz|jpg|png)$")


class FlatStore(Store):
    """One folder: `<name>-<frame>.npz` (and `.jpg`/`.png` previews), `.<name>.records.jsonl`, `.<name>.json`."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        location = os.fspath(location)
        self.root = Path(location.removeprefix("flat://")).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def check_location(cls, location: str) -> None:
        path = Path(location.removeprefix("flat://")).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"flat store '{path}' is a file, not a folder; choose a folder")

    def _path(self, name: str, sub: str, index: int) -> Path:
        return self.root / f"{name}-{index}.{sub}"

    def _write(self, path: Path, data: bytes, durable: bool) -> FileFacts:
        # write beside, then rename: a reader never sees part of a file, whatever kills the process
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, crc32(data)]

    def write_frame(self, name: str, index: int, binary: np.ndarray | None, compress: bool,
                    image: np.ndarray | None, image_format: str, *, durable: bool = False) -> dict[str, FileFacts]:
        facts = {}
        if binary is not None:
            facts["npz"] = self._write(self._path(name, "npz", index), b"".join(npz_bytes(binary, compress=compress)), durable)
        if image is not None:
            facts[image_format] = self._write(self._path(name, image_format, index), encode_image(image, image_format),
                                              durable)
        return facts

    def stat_frames(self, name: str, sub: str) -> dict[int, tuple[int, int]]:
        found = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                m = _FILE.match(entry.name)
                if m and m["name"] == name and m["ext"] == sub and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[int(m["index"])] = (st.st_size, st.st_mtime_ns)
        return found

    def read_bytes(self, name: str, sub: str, index: int) -> bytes:
        return self._path(name, sub, index).read_bytes()

    def quarantine(self, name: str, sub: str, index: int, run_id: str) -> str:
        target = self.root / ".quarantine" / run_id / f"{name}-{index}.{sub}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self._path(name, sub, index), target)
        return str(target)

    def remove_frames(self, name: str) -> int:
        removed = 0
        for sub in ("npz", "jpg", "png"):
            for index in self.stat_frames(name, sub):
                self._path(name, sub, index).unlink()
                removed += 1
        (self.root / f".{name}.records.jsonl").unlink(missing_ok=True)
        return removed

    def append_records(self, name: str, records: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        fd = os.open(self.root / f".{name}.records.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)  # one write() on O_APPEND: concurrent appenders never interleave a record
        finally:
            os.close(fd)

    def read_records(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.root / f".{name}.records.jsonl"
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):  # a record torn by a crash
                yield json.loads(line)

    def read_metadata(self, name: str) -> dict[str, Any] | None:
        try:
            value = json.loads((self.root / f".{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self._write(self.root / f".{name}.json", json.dumps(metadata, indent=1, default=str).encode(), durable=False)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with open(self.root / f".{name}.lock", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
