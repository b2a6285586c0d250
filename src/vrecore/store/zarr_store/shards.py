"""The zarr v3 layout of one representation: array metadata, one frame's chunk, and shards of whole chunks.

An array ``(frames, *frame shape)`` is chunked by frame (chunk ``(1, *shape)``) and sharded
(``sharding_indexed``: a shard holds ``frames_per_shard`` consecutive frames, their chunks one after the other,
then an index of (offset, length) per chunk, little-endian uint64, 2**64-1 for an absent chunk). The inner
codecs are ``bytes`` (little-endian) and ``zstd`` (or none): a chunk's bytes are the same whether they sit in a
shard or wait as a pending object, so a frame's CRC-32 is that of its chunk wherever it is.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from vrecore.errors import ConfigError

__all__ = ["CODECS", "ArrayLayout", "build_shard", "read_index"]

CODECS = ("zstd", "none")
_ABSENT = 2**64 - 1


def _fill_value(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return False
    return 0.0 if dtype.kind in "fc" else 0


class ArrayLayout:
    """Shape, dtype, codec and shard size of one representation's array, from or to its ``zarr.json``."""

    def __init__(self, frames: int, shape: tuple[int, ...], dtype: str, *, codec: str = "zstd", level: int = 1,
                 frames_per_shard: int = 8) -> None:
        if codec not in CODECS:
            raise ConfigError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
        if isinstance(frames_per_shard, bool) or not isinstance(frames_per_shard, int) or frames_per_shard < 1:
            raise ConfigError(f"frames_per_shard must be a positive integer, got {frames_per_shard!r}")
        self.frames, self.shape, self.dtype = int(frames), tuple(int(n) for n in shape), np.dtype(dtype)
        self.codec, self.level, self.frames_per_shard = codec, int(level), frames_per_shard
        self._zstd: Any = None

    # -- metadata --------------------------------------------------------------------------------------
    def to_json(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        inner: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if self.codec == "zstd":
            inner.append({"name": "zstd", "configuration": {"level": self.level, "checksum": False}})
        return {
            "zarr_format": 3, "node_type": "array", "shape": [self.frames, *self.shape],
            "data_type": self.dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [self.frames_per_shard, *self.shape]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _fill_value(self.dtype),
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [1, *self.shape], "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}], "index_location": "end"}}],
            "dimension_names": ["frame", *[None] * len(self.shape)],
            "attributes": dict(attributes),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ArrayLayout:
        """The layout of an array written by `to_json` (ValueError for any other)."""
        try:
            shape = doc["shape"]
            shard = doc["chunk_grid"]["configuration"]["chunk_shape"]
            (sharding,) = doc["codecs"]
            inner = sharding["configuration"]["codecs"]
            names = [c["name"] for c in inner]
            if sharding["name"] != "sharding_indexed" or names not in (["bytes"], ["bytes", "zstd"]):
                raise ValueError("not a vre array layout")
            level = inner[1]["configuration"].get("level", 1) if len(inner) == 2 else 1
            return cls(shape[0], tuple(shape[1:]), doc["data_type"], codec="zstd" if len(inner) == 2 else "none",
                       level=level, frames_per_shard=int(shard[0]))
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(f"unexpected zarr.json ({e})") from e

    # -- chunks ----------------------------------------------------------------------------------------
    def _codec(self) -> Any:
        if self._zstd is None:
            from numcodecs import Zstd

            self._zstd = Zstd(level=self.level)
        return self._zstd

    def encode(self, array: np.ndarray) -> bytes:
        """One frame's chunk."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"frame of shape {tuple(array.shape)}; the array holds {self.shape}")
        data = np.ascontiguousarray(array, dtype=self.dtype.newbyteorder("<"))
        if self.codec == "zstd":  # zstd reads the array itself, without the GIL: no copy to bytes first
            return bytes(self._codec().encode(data))
        return data.tobytes()

    def decode_into(self, data: bytes, out: np.ndarray) -> bool:
        """Decode one chunk straight into ``out`` (a C-contiguous array of the frame's dtype and size); False, leaving
        it alone, when ``out`` is not one (ValueError when the bytes are not a chunk)."""
        want = int(np.prod(self.shape)) * self.dtype.itemsize
        if out.dtype != self.dtype or out.nbytes != want or not out.flags.c_contiguous or \
                self.dtype.byteorder == ">" or (self.dtype.byteorder == "=" and np.little_endian is False):
            return False
        view = out.reshape(-1).view(np.uint8)
        if self.codec == "zstd":
            try:
                self._codec().decode(data, out=view)
            except (RuntimeError, ValueError) as e:
                raise ValueError(f"chunk does not decode ({e})") from e
        elif len(data) != want:
            raise ValueError(f"chunk holds {len(data)} bytes, expected {want} for {self.shape} {self.dtype}")
        else:
            view[:] = np.frombuffer(data, np.uint8)
        return True

    def decode(self, data: bytes) -> np.ndarray:
        """One frame from its chunk (ValueError when the bytes are not one)."""
        raw = bytes(self._codec().decode(data)) if self.codec == "zstd" else data
        want = int(np.prod(self.shape)) * self.dtype.itemsize
        if len(raw) != want:
            raise ValueError(f"chunk holds {len(raw)} bytes, expected {want} for {self.shape} {self.dtype}")
        return np.frombuffer(raw, dtype=self.dtype.newbyteorder("<")).astype(self.dtype, copy=False).reshape(self.shape)

    # -- shards ----------------------------------------------------------------------------------------
    @property
    def shard_key_suffix(self) -> str:
        """The zeros after a shard's number in its key (one per frame dimension)."""
        return "/0" * len(self.shape)

    def shard_of(self, frame: int) -> int:
        return frame // self.frames_per_shard

    def shard_frames(self, shard: int) -> range:
        """The frames a shard holds when complete (the last one may be shorter)."""
        start = shard * self.frames_per_shard
        return range(start, min(start + self.frames_per_shard, self.frames))

    @property
    def index_bytes(self) -> int:
        return 16 * self.frames_per_shard


def build_shard(layout: ArrayLayout, shard: int, chunks: Mapping[int, bytes]) -> list[bytes]:
    """A whole shard of ``chunks`` (frame → chunk bytes, frames of that shard), in parts (no copy of the chunks)."""
    body: list[bytes] = []
    index: list[tuple[int, int]] = []
    offset = 0
    start = shard * layout.frames_per_shard
    for frame in range(start, start + layout.frames_per_shard):
        data = chunks.get(frame)
        if data is None:
            index.append((_ABSENT, _ABSENT))
            continue
        index.append((offset, len(data)))
        body.append(data)
        offset += len(data)
    return [*body, b"".join(struct.pack("<QQ", *p) for p in index)]


def read_index(layout: ArrayLayout, shard: int, tail: bytes) -> dict[int, tuple[int, int]]:
    """Frame → (offset, length) of the chunks present in a shard, from its last `ArrayLayout.index_bytes`
    bytes (ValueError for a damaged index)."""
    if len(tail) != layout.index_bytes:
        raise ValueError(f"shard index of {len(tail)} bytes, expected {layout.index_bytes}")
    out = {}
    start = shard * layout.frames_per_shard
    for j in range(layout.frames_per_shard):
        offset, length = struct.unpack_from("<QQ", tail, 16 * j)
        if offset != _ABSENT:
            out[start + j] = (offset, length)
    return out


def dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode()
