"""Objects at a location: a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``...), written whole.

What an object store gives and what this relies on: a PUT makes an object appear whole or not at all (a local
folder gets the same from a temporary name and a rename); there is no rename and no lock. fsspec (and s3fs for
``s3://``) is imported here, only when a zarr store is opened: ``pip install 'vrecore[cloud]'`` installs them.

Credentials and the endpoint come the usual way (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ~/.aws, instance roles) or from ``storage_options``; they are never printed, logged or
written into metadata (messages name the URL only).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from vrecore.errors import ConfigError, StorageError
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

    def path(self, key: str) -> str:
        self.fs  # noqa: B018 - opens the file system (and sets the base path) on first use in this process
        return f"{self._path}/{key}" if key else self._path

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of an object (or of ``[start, end)``); FileNotFoundError when there is none."""
        try:
            if self.local:  # plain file reads: fsspec's local layer costs more than the read of a small chunk
                with open(self.path(key), "rb") as f:
                    f.seek(start or 0)
                    return f.read() if end is None else f.read(end - (start or 0))
            return bytes(self.fs.cat_file(self.path(key), start=start, end=end))
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 - OSError, botocore's NoCredentialsError...: one line
            raise StorageError(f"{self.location}/{key} cannot be read ({type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from e

    def find(self, prefix: str) -> dict[str, tuple[int, int]]:
        """Key relative to ``prefix`` → (size, `stamp`) of every object below it, in one listing."""
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

    def info(self, key: str) -> tuple[int, int]:
        """(size, `stamp`) of one object."""
        if not self.local:
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
        path = self.path(key)
        self.writes += 1
        if self.local:
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.tmp-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                with open(tmp, "wb") as f:
                    for part in [data] if isinstance(data, bytes) else data:
                        f.write(part)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return self.info(key)
        data = data if isinstance(data, bytes) else b"".join(data)
        self.fs.pipe_file(path, data)  # one PUT: its ETag is the MD5 of the bytes (no request to learn it)
        return len(data), int(hashlib.md5(data, usedforsecurity=False).hexdigest()[:15], 16)

    def delete(self, key: str) -> bool:
        """Delete one object (only what the store wrote is ever given); False when it was not there."""
        self.writes += 1
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
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path(key))
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm([self.path(k) for k in keys])

    def walk(self, prefix: str) -> Iterator[str]:
        """Every object key below ``prefix`` (relative to the location)."""
        base = self.path("")
        with contextlib.suppress(FileNotFoundError):
            for path in self.fs.find(self.path(prefix)):
                yield path[len(base):].lstrip("/")
