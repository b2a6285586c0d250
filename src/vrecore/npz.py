"""Fast writer of single-array ``.npz`` files that plain ``numpy.load`` reads (no pickle).

np.savez_compressed deflates at zlib level 6, which costs 50–300 ms per 540p frame. This writer
produces the same format (a zip holding ``arr_0.npy``) with a fast deflate: ISA-L's (python-isal,
the standard fast zlib-compatible codec) when installed, else zlib at level 1. Both release the
GIL, so several writer threads compress in parallel.
"""
from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_npz", "write_npz"]

try:
    from isal import isal_zlib as _deflate_lib

    _DEFAULT_LEVEL = 1
except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
    _deflate_lib = zlib  # type: ignore[assignment,misc]
    _DEFAULT_LEVEL = 1

_MAX_PLAIN_ZIP = 0xFFFFFFFF - (1 << 20)  # beyond this a zip64 record is needed: leave it to numpy


def _npy_bytes(array: np.ndarray) -> tuple[bytes, memoryview]:
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be stored without pickle")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue(), array.reshape(-1).data.cast("B")


def _dos_time(t: float) -> tuple[int, int]:
    lt = time.localtime(t)
    return ((lt.tm_hour << 11) | (lt.tm_min << 5) | (lt.tm_sec // 2),
            ((max(lt.tm_year, 1980) - 1980) << 9) | (lt.tm_mon << 5) | lt.tm_mday)


def write_npz(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool = False,
              level: int | None = None) -> None:
    """Write ``array`` as ``arr_0`` of an npz at ``path`` (deflated when ``compress``)."""
    header, data = _npy_bytes(array)
    size = len(header) + len(data)
    if size > _MAX_PLAIN_ZIP:
        with open(path, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, array)
        return
    crc = _deflate_lib.crc32(data, _deflate_lib.crc32(header))
    parts: list[bytes | memoryview]
    if compress:
        c = _deflate_lib.compressobj(_DEFAULT_LEVEL if level is None else level, _deflate_lib.DEFLATED, -15)
        parts = [c.compress(header), c.compress(data), c.flush()]
        method, payload_size = 8, sum(len(p) for p in parts)
    else:
        parts, method, payload_size = [header, data], 0, size
    name = b"arr_0.npy"
    mtime, mdate = _dos_time(time.time())
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, mtime, mdate, crc, payload_size, size,
                        len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, mtime, mdate, crc, payload_size,
                          size, len(name), 0, 0, 0, 0, 0o644 << 16, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + payload_size, 0)
    with open(path, "wb") as f:
        f.write(local)
        for p in parts:
            f.write(p)
        f.write(central)
        f.write(end)


def load_npz(path: str | Path) -> np.ndarray:
    """The ``arr_0`` array of an npz written by vre (or the seed tool), never unpickling."""
    with np.load(path, allow_pickle=False) as z:
        key: Any = "arr_0" if "arr_0" in z.files else z.files[0]
        return z[key]
