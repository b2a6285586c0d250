"""Objects at a location: a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``...), written whole.

What an object store gives and what this relies on: a PUT makes an object appear whole or not at all (a local
folder gets the same from a temporary name and a rename); there is no rename and no lock. fsspec (and s3fs for
``s3://``) is imported here, only when a zarr store is opened: ``pip install 'vrecore[cloud]'`` installs them.

A local folder is read, listed, written and deleted without following a symbolic link below it
(`vrecore.store.safe_paths`): a link there is refused in one line, as in the directory store.

Credentials and the endpoint come the usual way (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ~/.aws, instance roles) or from ``storage_options``; they are never printed, logged or
written into metadata (messages name the URL only).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat as stat_module
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from vrecore.errors import ConfigError, StorageError
from vrecore.store import safe_paths
from vrecore.store.files import HOST

__all__ = ["CLOUD_HINT", "ObjectFiles", "stamp", "require_cloud"]

CLOUD_HINT = "pip install 'vrecore[cloud]' (zarr, fsspec, s3fs)"
"""What to install for the zarr store."""


def require_cloud(what: str) -> None:
    """One line naming what to install when zarr, fsspec or numcodecs is missing."""
    import importlib.util

    for module in ("fsspec", "numcodecs", "zarr"):  # (found, not imported: zarr itself is for other readers)
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{what} needs the zarr store's libraries (no module {module!r}); {CLOUD_HINT}")


def stamp(info: dict[str, Any]) -> int:
    """What changes whenever an object is written again: an S3 ETag that is the MD5 of the content (its first 60
    bits), else the modification time in ns (local: ``mtime``; others: ``LastModified``, ``updated``)."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{32}", etag):
        return int(etag[:15], 16)
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)):
            return int(value * 1e9)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    return 0


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open_no_follow(fd: int, name: str, flags: int, shown: str) -> int:
    """``name`` in the folder ``fd`` opened with O_NOFOLLOW; a link there is SymlinkRefused (naming ``shown``)."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat_module.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise safe_paths.SymlinkRefused(shown) from None
        raise OSError(e.errno, e.strerror, shown) from None


class ObjectFiles:
    """The objects below one location; keys are ``/``-separated, relative to it. Picklable: the file system is
    opened again in each process (a DataLoader worker, a Ray actor), never shared across a fork."""

    def __init__(self, location: str, storage_options: dict[str, Any] | None = None) -> None:
        self.location = location.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._pid = -1
        self._path = ""
        self.writes = 0
        """How many objects this process wrote or deleted: a listing older than the last one is out of date."""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": -1}

    @property
    def local(self) -> bool:
        return "://" not in self.location or self.location.startswith("file://")

    @property
    def fs(self) -> Any:
        if self._fs is None or self._pid != os.getpid():
            require_cloud(f"location '{self.location}'")
            import fsspec

            try:
                if self.local:
                    fs, path = fsspec.core.url_to_fs(os.path.abspath(self.location.removeprefix("file://")))
                else:  # a fresh instance per process: an async client (s3fs) never crosses a fork
                    fs, path = fsspec.core.url_to_fs(self.location, skip_instance_cache=True, **self.storage_options)
            except ImportError as e:  # e.g. s3fs or gcsfs missing for that protocol
                raise ConfigError(f"location '{self.location}': {e}; {CLOUD_HINT}") from e
            except ValueError as e:  # an unknown protocol
                raise ConfigError(f"location '{self.location}': {e}") from e
            self._fs, self._path, self._pid = fs, path.rstrip("/"), os.getpid()
        return self._fs

    @property
    def root(self) -> str:
        """The local folder (local locations only): what the user named, which may itself be a link."""
        return os.path.abspath(self.location.removeprefix("file://"))

    def path(self, key: str) -> str:
        self.fs  # noqa: B018 - opens the file system (and sets the base path) on first use in this process
        return f"{self._path}/{key}" if key else self._path

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of an object (or of ``[start, end)``); FileNotFoundError when there is none."""
        try:
            if self.local:
                return self._local_read(key, start, end)
            return bytes(self.fs.cat_file(self.path(key), start=start, end=end))
        except (FileNotFoundError, StorageError):
            raise
        except Exception as e:  # noqa: BLE001 - OSError, botocore's NoCredentialsError...: one line
            raise StorageError(f"{self.location}/{key} cannot be read ({type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from e

    def _local_read(self, key: str, start: int | None, end: int | None) -> bytes:
        """A local object's bytes: each folder opened relative to its parent with O_NOFOLLOW, then the file, then
        one pread (the lean form of safe_paths.read_regular: a chunk is read per frame, fsspec costs more)."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{key!r} is not an object key")
        root = self.root
        fd = os.open(root, _DIR)
        try:
            for k, part in enumerate(parts[:-1]):
                child = _open_no_follow(fd, part, _DIR, os.path.join(root, *parts[:k + 1]))
                os.close(fd)
                fd = child
            shown = os.path.join(root, key)
            file = _open_no_follow(fd, parts[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, shown)
        finally:
            os.close(fd)
        try:
            st = os.fstat(file)
            if not stat_module.S_ISREG(st.st_mode):
                raise safe_paths.NotRegularFileError(shown, st.st_mode)
            offset = start or 0
            size = (st.st_size if end is None else end) - offset
            chunks = []
            while size > 0:
                data = os.pread(file, size, offset)
                if not data:
                    break
                chunks.append(data)
                offset, size = offset + len(data), size - len(data)
            return b"".join(chunks)
        finally:
            os.close(file)

    def find(self, prefix: str) -> dict[str, tuple[int, int]]:
        """Key relative to ``prefix`` → (size, `stamp`) of every object below it, in one listing."""
        if self.local:
            return dict(self._local_find(prefix))
        base = self.path(prefix)
        try:
            entries = self.fs.find(base, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except Exception as e:  # noqa: BLE001 - no credentials, no bucket, no network: one line
            raise StorageError(f"{self.location}/{prefix} cannot be listed ({type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); check the URL, "
                               f"the bucket and the credentials") from e
        out = {}
        for path, info in entries.items():
            if info.get("type", "file") == "file" and path.startswith(base + "/"):
                out[path[len(base) + 1:]] = (int(info.get("size") or 0), stamp(info))
        return out

    def _local_find(self, prefix: str) -> Iterator[tuple[str, tuple[int, int]]]:
        """(key relative to ``prefix``, (size, `stamp`)) of every regular file below the local folder ``prefix``,
        reached through folder descriptors; a symbolic link anywhere below is refused (SymlinkRefused)."""
        def scan(fd: int, shown: Path, rel: str) -> Iterator[tuple[str, tuple[int, int]]]:
            for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                if stat_module.S_ISLNK(st.st_mode):
                    raise safe_paths.SymlinkRefused(shown / entry.name)
                if stat_module.S_ISDIR(st.st_mode):
                    with safe_paths.subfolder(fd, entry.name, shown / entry.name) as child:
                        yield from scan(child, shown / entry.name, f"{rel}{entry.name}/")
                elif stat_module.S_ISREG(st.st_mode):
                    yield f"{rel}{entry.name}", (st.st_size, stamp({"mtime": st.st_mtime}))

        try:
            with safe_paths.directory(self.root, prefix) as fd:
                yield from scan(fd, Path(self.root, prefix), "")
        except (FileNotFoundError, NotADirectoryError):
            return

    def local_folders(self) -> list[str]:
        """The names of the folders directly in the local folder, hidden ones left out; a symbolic link to a
        folder there (where an array would be) is refused."""
        try:
            with safe_paths.directory(self.root) as fd:
                entries = [e for e in os.scandir(fd) if not e.name.startswith(".")]
                for e in entries:
                    if e.is_symlink() and e.is_dir(follow_symlinks=True):
                        raise safe_paths.SymlinkRefused(Path(self.root, e.name))
                return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def info(self, key: str) -> tuple[int, int]:
        """(size, `stamp`) of one object."""
        if self.local:
            folder, _, name = key.rpartition("/")
            with safe_paths.directory(self.root, folder) as fd:
                st = safe_paths.lstat(fd, name)
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "no such object", str(Path(self.root, key)))
            if stat_module.S_ISLNK(st.st_mode):
                raise safe_paths.SymlinkRefused(Path(self.root, key))
            return st.st_size, stamp({"mtime": st.st_mtime})
        self.fs.invalidate_cache(self.path(key))
        info = self.fs.info(self.path(key))
        return int(info.get("size") or 0), stamp(info)

    def exists(self, key: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            self.info(key)
            return True
        return False

    # -- writing ---------------------------------------------------------------------------------------
    def put(self, key: str, data: bytes | list[bytes]) -> tuple[int, int]:
        """Write an object whole (locally: a temporary name, then a rename); returns its (size, `stamp`)."""
        self.writes += 1
        if self.local:
            def write(f: Any) -> None:
                for part in [data] if isinstance(data, bytes) else data:
                    f.write(part)

            tmp = f"{key.rpartition('/')[2]}.tmp-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            st, _ = safe_paths.atomic_write(self.root, key, write, tmp)
            return st.st_size, stamp({"mtime": st.st_mtime})
        path = self.path(key)
        data = data if isinstance(data, bytes) else b"".join(data)
        self.fs.pipe_file(path, data)  # one PUT: its ETag is the MD5 of the bytes (no request to learn it)
        return len(data), int(hashlib.md5(data, usedforsecurity=False).hexdigest()[:15], 16)

    def delete(self, key: str) -> bool:
        """Delete one object (only what the store wrote is ever given); False when it was not there."""
        self.writes += 1
        if self.local:
            return safe_paths.remove(self.root, key)
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            return False
        return True

    def delete_many(self, keys: list[str]) -> None:
        """Delete objects (one request per thousand on S3); those already gone are no error."""
        if not keys:
            return
        self.writes += 1
        if self.local:
            for key in keys:
                safe_paths.remove(self.root, key)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm([self.path(k) for k in keys])

    def walk(self, prefix: str) -> Iterator[str]:
        """Every object key below ``prefix`` (relative to the location)."""
        if self.local:
            yield from (f"{prefix}/{key}" if prefix else key for key, _ in self._local_find(prefix))
            return
        base = self.path("")
        with contextlib.suppress(FileNotFoundError):
            for path in self.fs.find(self.path(prefix)):
                yield path[len(base):].lstrip("/")
