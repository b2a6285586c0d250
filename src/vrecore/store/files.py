"""File helpers of the stores: atomic writes under host- and process-tagged temporary names, previews, OS errors."""
from __future__ import annotations

import errno
import io
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from vrecore.store.npz import crc32
from vrecore.store.safe_paths import atomic_write

__all__ = ["HOST", "TEMPORARY_NAME", "describe_os_error", "encode_image", "pid_alive", "write_atomic", "write_parts"]

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
"""This machine's name as temporary file names carry it (a run reaps only its own host's leftovers)."""
TEMPORARY_NAME = re.compile(r"^(\d+)\.[a-z]+\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[0-9a-f]+$")
"""A frame file's temporary name while it is written: ``<frame>.<ext>.tmp-<host>-<pid>-<random>``."""


def describe_os_error(e: OSError, what: str) -> str:
    """One line for a file-system error a user or the machine caused, with the fix."""
    reason = e.strerror or type(e).__name__
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return f"{what}: no space left on the device; free space (or choose another output_dir) and run again"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{what} is not writable ({reason}); choose a writable output_dir or fix its permissions"
    return f"{what}: {reason}{f' ({e.filename})' if e.filename else ''}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_parts(f: Any, parts: Iterable[bytes | memoryview]) -> int:
    """Write ``parts`` to ``f``; returns the CRC-32 of everything written."""
    crc = 0
    for p in parts:
        f.write(p)
        crc = crc32(p, crc)
    return crc


def write_atomic(root: Path, rel: str | PurePath, write: Callable[[Any], Any], *, durable: bool = False) -> list[int]:
    """Write ``root/rel`` under a temporary name and rename it; returns [size, mtime_ns, crc32] of the result
    (crc32 is 0 when ``write`` returns none)."""
    name = PurePath(rel).name
    st, crc = atomic_write(root, rel, write, f"{name}.tmp-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                           durable=durable)
    return [st.st_size, st.st_mtime_ns, int(crc or 0)]


def encode_image(image: np.ndarray, image_format: str) -> bytes:
    """A uint8 RGB preview as JPEG (quality 90) or PNG bytes."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    if image_format == "jpg":
        im.save(buf, format="JPEG", quality=90)
    else:
        im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
