"""Where vre keeps weights on disk: imported files, the lock file (`vre-weights.lock`) and a digest memo.

The lock file is the record of which weights a machine or project uses, like a package lock: per
variant, where its files came from (a Hub repo at a commit, or an import), and the sha256 and size
of every file. It is written the first time a variant's files are found or fetched, and every later
load is checked against it. Its place: ``$VRE_WEIGHTS_LOCK``; else ``vre-weights.lock`` in the
current folder when there is one (a project's own lock); else ``<vre cache>/weights/vre-weights.lock``.

Hashing a multi-GB checkpoint on every run would cost seconds, so digests are memoised by
(real path, size, modification time) in ``<vre cache>/weights/sha256-memo.json``: a file that
changes on disk changes its stat and is hashed again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vrecore.errors import WeightsError

__all__ = ["LOCK_NAME", "Lock", "imported_dir", "lock_path", "place_files", "sha256_file", "weights_dir"]

LOCK_NAME = "vre-weights.lock"
_LOCK_VERSION = 1
_WRITABLE = "set VRE_CACHE to a writable folder (and VRE_WEIGHTS_LOCK to a writable file)"


def weights_dir() -> Path:
    """``<vre cache>/weights``: imported files, conversions, the default lock and the digest memo."""
    from vrecore.frames.sample import cache_dir

    return cache_dir() / "weights"


def imported_dir(name: str) -> Path:
    """The folder holding the imported files of the variant called ``name``."""
    return weights_dir() / "imported" / name


def lock_path() -> Path:
    """The lock file in use (see the module docstring for the order)."""
    env = os.environ.get("VRE_WEIGHTS_LOCK")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / LOCK_NAME
    return local if local.is_file() else weights_dir() / LOCK_NAME


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path``.lck while a read-modify-write of ``path`` runs."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lck"), "a")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise WeightsError(f"cannot write {path} ({err}); {_WRITABLE}") from err
    with handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: concurrent writers may lose an entry, never corrupt it
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_fix(path: Path) -> str:
    """How to get past an unusable JSON file of vre's: delete it when vre's cache holds it, else never (a project's
    lock is the user's file, maybe under version control)."""
    if Path(os.path.realpath(path)).is_relative_to(os.path.realpath(weights_dir())):
        return f"delete it (vre made it: {path}) and run `vre weights fetch NAME ...` to record the weights again"
    return ("fix it (e.g. restore it from version control), or move it aside: `vre weights fetch NAME ...` then "
            "records the weights in a new one")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read {path} ({' '.join(str(err).split())[:120]}); {_replace_fix(path)}") from err
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object; {_replace_fix(path)}")
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"cannot write {path} ({err}); {_WRITABLE}") from err


def _weights_of(data: Mapping[str, Any]) -> dict[str, Any]:
    weights = data.get("weights")
    return weights if isinstance(weights, dict) else {}


class Lock:
    """The lock file: variant name → {"source", ["repo_id", "revision", "commit"], "files": {name: {sha256, size}}}."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = lock_path() if path is None else path

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every recorded variant."""
        data = _read_json(self.path)
        if data and data.get("version") != _LOCK_VERSION:
            raise WeightsError(f"{self.path} has lock version {data.get('version')!r}, this vre reads version "
                               f"{_LOCK_VERSION}: use the vre that wrote it, or {_replace_fix(self.path)}")
        return _weights_of(data)

    def get(self, name: str) -> dict[str, Any] | None:
        """The record of variant ``name``, or None."""
        return self.entries().get(name)

    def record(self, name: str, entry: Mapping[str, Any]) -> None:
        """Write (or replace) the record of variant ``name``."""
        with _exclusive(self.path):
            data = _read_json(self.path)
            weights = _weights_of(data)
            weights[name] = dict(entry)
            _write_json(self.path, {"version": _LOCK_VERSION, "weights": weights})

    def remove(self, name: str) -> None:
        """Forget the record of variant ``name`` (the next resolve records the files as they are)."""
        with _exclusive(self.path):
            data = _read_json(self.path)
            weights = _weights_of(data)
            if weights.pop(name, None) is not None:
                _write_json(self.path, {"version": _LOCK_VERSION, "weights": weights})


# -- digests ---------------------------------------------------------------------------------------------------
_MEMO: dict[str, tuple[int, int, str]] = {}
_MEMO_LOADED: list[Path] = []


def _memo_path() -> Path:
    return weights_dir() / "sha256-memo.json"


def _load_memo() -> None:
    path = _memo_path()
    if _MEMO_LOADED == [path]:
        return
    _MEMO.clear()
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        _MEMO.update({k: (int(v[0]), int(v[1]), str(v[2])) for k, v in stored.items()})
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        pass  # no memo yet, or an unreadable one: digests are simply computed again
    _MEMO_LOADED[:] = [path]


def _save_memo(real: str, entry: tuple[int, int, str]) -> None:
    path = _memo_path()
    try:
        with _exclusive(path):
            stored = _read_json(path)
            stored[real] = list(entry)
            _write_json(path, stored)
    except (OSError, WeightsError):
        pass  # the memo only saves time: a read-only cache costs a re-hash next run, nothing else


def sha256_file(path: str | os.PathLike[str], *, memo: bool = True) -> str:
    """Hex sha256 of a file's content, memoised by (real path, size, mtime) across runs unless ``memo=False``."""
    real = os.path.realpath(path)
    st = os.stat(real)
    if memo:
        _load_memo()
        known = _MEMO.get(real)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _MEMO[real] = (st.st_size, st.st_mtime_ns, digest)
    _save_memo(real, _MEMO[real])
    return digest


def place_files(files: Mapping[str, Path], folder: Path) -> dict[str, Path]:
    """Copy ``files`` (name inside the folder → source file) into ``folder``, each under a temporary name
    first, so that an interrupted import never leaves a partial file under its final name."""
    placed: dict[str, Path] = {}
    for name, src in files.items():
        dst = folder.joinpath(*name.split("/"))
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dst)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise WeightsError(f"cannot copy {src} to {dst} ({err}); {_WRITABLE}") from err
        placed[name] = dst
    return placed
