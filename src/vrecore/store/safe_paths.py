"""Files below an output folder written, appended, moved, locked, deleted and read without following a link.

Every component below the root is opened with O_NOFOLLOW relative to its parent's descriptor (as openat does),
so a symbolic link anywhere below the output folder (a sub-folder, a record file, a lock, a frame) is refused
in one line, never followed out of it; the root itself is what the user named and may be a link. Only regular
files are opened for reading, with O_NONBLOCK: a named pipe in place of a frame is reported, never waited on.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import IO, Any, cast

from vrecore.errors import StorageError

__all__ = ["NotRegularFileError", "SymlinkRefused", "append", "atomic_write", "create_new", "directory", "lstat",
           "move", "open_append", "open_lock", "open_regular", "read_regular", "remove", "replace", "subfolder"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


class SymlinkRefused(StorageError):
    """A path below the output folder is a symbolic link: vre never writes or verifies through one."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(f"'{path}' is a symbolic link inside the output folder and vre never follows one there; "
                         f"replace it with a real file or folder (or remove it) and run again")


class NotRegularFileError(OSError):
    """Something other than a regular file (a named pipe, a device, a folder) where a file should be."""

    def __init__(self, path: str | os.PathLike[str], mode: int) -> None:
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))


def _parts(rel: str | PurePath) -> tuple[str, ...]:
    if isinstance(rel, str):  # the common case, without pathlib's parsing (dozens of calls per export)
        plain = tuple(rel.split("/"))
        if all(p and p not in (".", "..") for p in plain):
            return plain
    parts = PurePath(rel).parts
    if PurePath(rel).is_absolute() or any(p in ("..", ".") for p in parts):
        raise ValueError(f"{rel!r} is not a plain path below a folder")
    return parts


def _open_child_dir(fd: int, name: str, root: str | os.PathLike[str], parts: tuple[str, ...], create: bool) -> int:
    """The folder ``name`` of the folder ``fd`` (made first when missing and ``create``), never through a link;
    messages name it as ``root/parts``."""
    try:
        try:
            return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=fd)
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, name):
            raise SymlinkRefused(Path(root, *parts)) from None
        raise OSError(e.errno, e.strerror, str(Path(root, *parts))) from None


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def directory(root: str | os.PathLike[str], rel: str | PurePath = "", *, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder ``root/rel``, reached without following a link below ``root`` (each missing
    folder created when ``create``); SymlinkRefused names the first link."""
    fd = _open_root(root, create)
    try:
        parts = _parts(rel)
        for k, part in enumerate(parts):
            child = _open_child_dir(fd, part, root, parts[:k + 1], create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def subfolder(fd: int, name: str, path: str | os.PathLike[str]) -> Iterator[int]:
    """A descriptor of the folder ``name`` of the folder ``fd``, never through a link (SymlinkRefused names
    ``path``)."""
    child = _open_child_dir(fd, name, path, (), False)
    try:
        yield child
    finally:
        os.close(child)


def _open_root(root: str | os.PathLike[str], create: bool) -> int:
    """A descriptor of the folder ``root`` (made first, with its parents, when missing and ``create``)."""
    try:
        return os.open(root, _DIR)
    except FileNotFoundError:
        if not create:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(Path(root))) from None
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(Path(root))) from None
    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        return os.open(root, _DIR)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(Path(root))) from None


def _split(rel: str | PurePath) -> tuple[PurePath, str]:
    parts = _parts(rel)
    if not parts:
        raise ValueError("a file path below the folder is needed")
    return PurePath(*parts[:-1]), parts[-1]


def _open_file(fd: int, name: str, flags: int, path: Path, mode: int = 0o644) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and _is_link(fd, name)):
            raise SymlinkRefused(path) from None
        raise OSError(e.errno, e.strerror, str(path)) from None


def lstat(fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` of the folder ``fd`` (not followed), or None when there is none."""
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_append(root: str | os.PathLike[str], rel: str | PurePath) -> int:
    """A descriptor of ``root/rel`` for appending (O_APPEND; the file and its folders created when missing)."""
    folder, name = _split(rel)
    with directory(root, folder, create=True) as fd:
        return _open_file(fd, name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, Path(root, rel))


def append(root: str | os.PathLike[str], rel: str | PurePath, data: bytes) -> None:
    """Append ``data`` with one write() on an O_APPEND descriptor, so that concurrent writers never mix lines."""
    file = open_append(root, rel)
    try:
        os.write(file, data)
    finally:
        os.close(file)


@contextlib.contextmanager
def open_lock(root: str | os.PathLike[str], rel: str | PurePath) -> Iterator[int]:
    """A descriptor of a lock file (created when missing, folders too), for fcntl.flock."""
    folder, name = _split(rel)
    with directory(root, folder, create=True) as fd:
        file = _open_file(fd, name, os.O_RDWR | os.O_CREAT, Path(root, rel))
    try:
        yield file
    finally:
        os.close(file)


def create_new(fd: int, name: str, path: Path) -> IO[bytes]:
    """A new file ``name`` of the folder ``fd`` opened for writing (never an existing file or link)."""
    return os.fdopen(_open_file(fd, name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path), "wb")


def replace(fd: int, src: str, dst: str, path: Path) -> None:
    """Rename ``src`` to ``dst`` in the folder ``fd``; a link at ``dst`` (``path``) is refused, not replaced."""
    st = lstat(fd, dst)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise SymlinkRefused(path)
    os.replace(src, dst, src_dir_fd=fd, dst_dir_fd=fd)


def remove(root: str | os.PathLike[str], rel: str | PurePath) -> bool:
    """Delete the file ``root/rel`` (False when there is none); a link is refused, not deleted."""
    folder, name = _split(rel)
    try:
        with directory(root, folder) as fd:
            st = lstat(fd, name)
            if st is None:
                return False
            if stat.S_ISLNK(st.st_mode):
                raise SymlinkRefused(Path(root, rel))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
                return True
    except (FileNotFoundError, NotADirectoryError):
        pass
    return False


def move(root: str | os.PathLike[str], src: str | PurePath, dst: str | PurePath) -> None:
    """Move the entry ``root/src`` (a file, a named pipe; never a link) to ``root/dst``, creating its folders."""
    src_folder, src_name = _split(src)
    dst_folder, dst_name = _split(dst)
    with directory(root, src_folder) as sfd:
        st = lstat(sfd, src_name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise SymlinkRefused(Path(root, src))
        with directory(root, dst_folder, create=True) as dfd:
            st = lstat(dfd, dst_name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise SymlinkRefused(Path(root, dst))
            try:
                os.replace(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(Path(root, src))) from None


def atomic_write(root: str | os.PathLike[str], rel: str | PurePath, write: Callable[[IO[bytes]], Any], tmp_name: str,
                 *, durable: bool = False) -> tuple[os.stat_result, Any]:
    """Write ``root/rel`` under the temporary name ``tmp_name`` (same folder) and rename it; returns the final
    file's stat and what ``write`` returned. Folders are created; no link is followed or replaced."""
    folder, name = _split(rel)
    path = Path(root, rel)
    with directory(root, folder, create=True) as fd:
        try:
            with create_new(fd, tmp_name, path.with_name(tmp_name)) as f:
                result = write(f)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            replace(fd, tmp_name, name, path)
            if durable:
                os.fsync(fd)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name, dir_fd=fd)
            raise
    return st, result


def open_regular(path: str | os.PathLike[str], *, fd: int | None = None, shown: str | os.PathLike[str] | None = None,
                 buffering: int = -1) -> io.FileIO | io.BufferedReader:
    """Open a regular file for reading (``path`` relative to the folder ``fd`` when given, then never through a
    link; ``shown``: the path messages name); anything else (a named pipe, a device) raises NotRegularFileError
    at once instead of blocking."""
    shown = path if shown is None else shown
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if fd is not None else 0)
    try:
        file = os.open(path, flags, dir_fd=fd)
    except OSError as e:
        if fd is not None and e.errno == errno.ELOOP:
            raise SymlinkRefused(shown) from None
        raise OSError(e.errno, e.strerror, str(shown)) from None
    try:
        st = os.fstat(file)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(shown, st.st_mode)
        os.set_blocking(file, True)
        return cast("io.FileIO | io.BufferedReader", os.fdopen(file, "rb", buffering=buffering))
    except BaseException:
        os.close(file)
        raise


def read_regular(root: str | os.PathLike[str], rel: str | PurePath) -> bytes:
    """The bytes of the regular file ``root/rel``, reached and opened without following a link."""
    folder, name = _split(rel)
    with directory(root, folder) as fd, open_regular(name, fd=fd, shown=Path(root, rel)) as file:
        return file.read()
