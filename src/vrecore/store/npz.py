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
import zipfile
import zlib
from typing import IO, Any, Protocol

import numpy as np

from vrecore.store.safe_paths import open_regular

__all__ = ["DiskForm", "crc32", "load_npy", "load_npz", "npz_bytes", "read_npz_into", "write_npz"]

DiskForm = tuple[tuple[int, ...], np.dtype]
"""What one stored frame must be: its shape and dtype (a representation's disk form)."""

try:
    from isal import isal_zlib as _deflate_lib

    _DEFAULT_LEVEL = 1
except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
    _deflate_lib = zlib  # type: ignore[assignment,misc]
    _DEFAULT_LEVEL = 1

def crc32(data: bytes | memoryview, value: int = 0) -> int:
    """CRC-32 (zlib's), with ISA-L's implementation when installed: ~13x faster (0.14 against 1.8 ms for a
    6 MB frame), so that checksumming every file written or verified costs almost nothing."""
    return int(_deflate_lib.crc32(data, value))


_MAX_PLAIN_ZIP = 0xFFFFFFFF - (1 << 20)  # beyond this a zip64 record is needed: leave it to numpy


def _npy_bytes(array: np.ndarray) -> tuple[bytes, memoryview]:
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be stored without pickle")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue(), array.reshape(-1).data.cast("B")


# Every entry carries this date (1980-01-01 00:00, the zip epoch) instead of the time of writing, so
# that equal arrays give byte-identical files: a re-run, another worker or another machine writing
# the same frame produces the same bytes and the same checksum.
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1


def npz_bytes(array: np.ndarray, *, compress: bool = False, level: int | None = None) -> list[bytes | memoryview]:
    """The bytes of an npz holding ``array`` as ``arr_0`` (deflated when ``compress``), in parts."""
    header, data = _npy_bytes(array)
    size = len(header) + len(data)
    if size > _MAX_PLAIN_ZIP:
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, array)
        return [buf.getvalue()]
    crc = _deflate_lib.crc32(data, _deflate_lib.crc32(header))
    parts: list[bytes | memoryview]
    if compress:
        c = _deflate_lib.compressobj(_DEFAULT_LEVEL if level is None else level, _deflate_lib.DEFLATED, -15)
        parts = [c.compress(header), c.compress(data), c.flush()]
        method, payload_size = 8, sum(len(p) for p in parts)
    else:
        parts, method, payload_size = [header, data], 0, size
    name = b"arr_0.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, _DOS_TIME, _DOS_DATE, crc, payload_size, size,
                        len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, _DOS_TIME, _DOS_DATE, crc,
                          payload_size, size, len(name), 0, 0, 0, 0, 0o644 << 16, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + payload_size, 0)
    return [local, *parts, central, end]


def write_npz(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool = False,
              level: int | None = None) -> None:
    """Write ``array`` as ``arr_0`` of an npz at ``path`` (deflated when ``compress``)."""
    with open(path, "wb") as f:
        for p in npz_bytes(array, compress=compress, level=level):
            f.write(p)


def load_npz(path: str | os.PathLike[str] | IO[bytes], *, expected: DiskForm | None = None) -> np.ndarray:
    """The ``arr_0`` array of an npz written by vre (or the seed tool), never unpickling.

    The whole member is read, so zip's CRC-32 catches damaged data; an npz holding objects (which
    only pickle could load) raises ValueError. With ``expected`` (a representation's disk form) a member
    whose npy header declares another shape or dtype is refused (ValueError) before any of its data is
    inflated, inflation stops at the array's size, and bytes after the array are refused: a small
    crafted file cannot make the reader allocate more than one frame.
    """
    if isinstance(path, (str, os.PathLike)) and expected is None:
        with open_regular(path) as f:  # a named pipe in place of a frame file must not block the reader
            return load_npz(f)
    if expected is None or not isinstance(path, (str, os.PathLike)):
        with np.load(path, allow_pickle=False) as z:
            key: Any = "arr_0" if "arr_0" in z.files else z.files[0]
            array = z[key]
        if expected is not None:
            _check_form(tuple(array.shape), array.dtype, expected)
        return array
    array = _read_npz(path, expected, None)
    assert array is not None  # without ``out`` there is always an array
    return array


def read_npz_into(path: str | os.PathLike[str], out: np.ndarray, *, expected: DiskForm | None = None) -> bool:
    """Read an npz's only array into ``out`` when its dtype and element count match ``out`` (C-contiguous);
    False (``out`` untouched) for anything else. The zip member's CRC-32 is checked, as numpy.load does;
    ``expected`` as in `load_npz`.

    numpy.load reads a member in chunks through zipfile and inflates with zlib: two copies of a stored
    array, and a slow inflate of a deflated one. Here a member's bytes go straight into the caller's
    buffer (a slot of a batch), inflated by ISA-L when deflated."""
    if not out.flags.c_contiguous:
        return False
    return _read_npz(path, expected, out) is not None


def load_npy(data: bytes, *, expected: DiskForm | None = None) -> np.ndarray:
    """The array of an ``.npy`` file's bytes (a webdataset member), never unpickling; a header declaring more
    than ``data`` holds, or bytes after the array, are refused (ValueError) before anything is allocated."""
    array = _read_member(_Streamed(io.BytesIO(data)), len(data), expected, None)
    assert array is not None  # without ``out`` there is always an array
    return array


_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # a zip member's local header (APPNOTE 4.3.7)
_MAX_NPY_HEADER = 1 << 16  # numpy itself refuses headers over 10,000 bytes (max_header_size)
_CHUNK = 1 << 22  # inflated per call: the inflate never holds more than this beyond the array


class _Member(Protocol):
    def fill(self, view: memoryview) -> None: ...
    def finish(self) -> None: ...


def _read_npz(path: str | os.PathLike[str], expected: DiskForm | None, out: np.ndarray | None) -> np.ndarray | None:
    """The npz's array (in ``out`` when given; None when it does not fit ``out``), read within its bounds."""
    with open_regular(path) as file, zipfile.ZipFile(file) as z:
        infos = z.infolist()
        if not infos:
            raise ValueError("an npz without an array")
        info = next((i for i in infos if i.filename == "arr_0.npy"), infos[0])
        if out is not None and len(infos) != 1:
            return None
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with z.open(info) as stream:
                return _read_member(_Streamed(stream), info.file_size, expected, out)
    with open_regular(path, buffering=0) as f:
        if not 0 <= info.header_offset <= os.fstat(f.fileno()).st_size - info.compress_size:
            raise ValueError("truncated npz (its zip directory points outside the file)")
        f.seek(info.header_offset)
        local = _LOCAL_HEADER.unpack(_read_exactly(f, _LOCAL_HEADER.size))
        if local[0] != 0x04034B50:
            raise ValueError("not an npz (no zip member where its directory says)")
        f.seek(info.header_offset + _LOCAL_HEADER.size + local[9] + local[10])
        member: _Member = _Inflated(f, info.compress_size, info.CRC) if info.compress_type == zipfile.ZIP_DEFLATED \
            else _Stored(f, info.CRC)
        return _read_member(member, info.file_size, expected, out)


def _read_member(member: _Member, size: int, expected: DiskForm | None, out: np.ndarray | None) -> np.ndarray | None:
    """Parse the npy header, check it against ``expected`` and the member's size, then read the data."""
    prefix = bytearray(10)
    member.fill(memoryview(prefix))
    if bytes(prefix[:6]) != b"\x93NUMPY" or prefix[6] not in (1, 2):
        raise ValueError("not an npy array (no NUMPY magic of version 1 or 2)")
    if prefix[6] == 1:
        length, more = struct.unpack("<H", prefix[8:10])[0], b""
    else:
        tail = bytearray(2)
        member.fill(memoryview(tail))
        more = bytes(tail)
        length = struct.unpack("<I", bytes(prefix[8:10]) + more)[0]
    if length > _MAX_NPY_HEADER:
        raise ValueError(f"its npy header claims {length} bytes (a crafted or damaged file)")
    text = bytearray(length)
    member.fill(memoryview(text))
    stream = io.BytesIO(bytes(prefix) + more + bytes(text))
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which only pickle could load")
    if expected is not None:
        _check_form(tuple(shape), dtype, expected)
    header_size = len(prefix) + len(more) + length
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if header_size + nbytes < size:
        raise ValueError(f"its member holds {size - header_size - nbytes} bytes after its array (a crafted or "
                         f"damaged file)")
    if header_size + nbytes > size:
        raise ValueError(f"truncated npz (its member has {size} bytes, its array needs {header_size + nbytes})")
    if out is not None:
        if fortran or dtype != out.dtype or out.size != int(np.prod(shape, dtype=object)):
            return None
        target = out
    else:
        target = np.empty(shape[::-1] if fortran else shape, dtype)
    member.fill(target.reshape(-1).view(np.uint8).data)
    member.finish()
    return target.T if fortran else target


def _check_form(shape: tuple[int, ...], dtype: np.dtype, expected: DiskForm) -> None:
    want_shape, want_dtype = tuple(expected[0]), np.dtype(expected[1])
    if shape != want_shape or dtype != want_dtype:
        raise ValueError(f"its array is {dtype} {shape}, the representation stores {want_dtype} {want_shape}")


def _read_exactly(f: Any, size: int) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise ValueError(f"truncated npz ({len(data)} of {size} bytes)")
    return data


class _Stored:
    """A stored member's bytes, read from the file at its data."""

    def __init__(self, f: Any, crc: int) -> None:
        self._f, self._expected_crc, self._crc = f, crc, 0

    def fill(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            n = self._f.readinto(view[done:])
            if not n:
                raise ValueError(f"truncated npz ({done} of {len(view)} bytes)")
            done += n
        self._crc = crc32(view, self._crc)

    def finish(self) -> None:
        if self._crc != self._expected_crc:
            raise ValueError("CRC-32 mismatch (the file was damaged after it was written)")


class _Inflated:
    """A deflated member inflated by ISA-L in bounded steps: never more than asked for, plus one chunk."""

    def __init__(self, f: Any, compressed: int, crc: int) -> None:
        self._f, self._left, self._expected_crc, self._crc = f, compressed, crc, 0
        self._inflate = _deflate_lib.decompressobj(-15)

    def _input(self) -> bytes:
        tail: bytes = self._inflate.unconsumed_tail
        if tail:
            return tail
        data: bytes = self._f.read(min(self._left, _CHUNK))
        self._left -= len(data)
        return data

    def fill(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            data = self._input()
            chunk = self._inflate.decompress(data, min(len(view) - done, _CHUNK))
            if not chunk and (not data or self._inflate.eof):
                raise ValueError(f"truncated npz ({done} of {len(view)} bytes)")
            view[done:done + len(chunk)] = chunk
            self._crc = crc32(chunk, self._crc)
            done += len(chunk)

    def finish(self) -> None:
        while not self._inflate.eof:
            data = self._input()
            if self._inflate.decompress(data, 1):
                raise ValueError("its member holds more data than its array (a crafted or damaged file)")
            if not data and not self._inflate.eof:
                raise ValueError("truncated npz (its deflated data ends early)")
        if self._inflate.unused_data or self._inflate.unconsumed_tail or self._left:
            raise ValueError("its member holds bytes after its deflated data (a crafted or damaged file)")
        if self._crc != self._expected_crc:
            raise ValueError("CRC-32 mismatch (the file was damaged after it was written)")


class _Streamed:
    """A member of another compression, through zipfile (which stops at its declared size and checks its CRC)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def fill(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            n = self._stream.readinto(view[done:])
            if not n:
                raise ValueError(f"truncated npz ({done} of {len(view)} bytes)")
            done += n

    def finish(self) -> None:
        if self._stream.read(1):
            raise ValueError("its member holds more data than its array (a crafted or damaged file)")
