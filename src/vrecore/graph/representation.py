"""The Representation protocol: what every per-frame modality declares and computes."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

__all__ = ["Batch", "OutputSpec", "Representation", "Role", "optional_size", "parameter_names", "stored_dtype",
           "stored_float_dtype"]

_BASE_FIELDS = ("name", "dependencies")


@attrs.frozen
class Role:
    """A dependency slot of a representation type, filled by name in the config.

    Dependencies are taken by role (``depth``, ``normals``, ``semantic``...), not by type, so any
    plugin's depth map can feed any normals representation.
    """

    name: str
    optional: bool = False
    many: bool = False
    channels: int | None = None
    """Required channel count of the dependency's output, checked when the graph is built."""


@attrs.frozen
class OutputSpec:
    """What a representation outputs: channel count, disk dtype, and optional class names."""

    channels: int
    disk_dtype: str
    classes: tuple[str, ...] | None = None
    colors: tuple[tuple[int, int, int], ...] | None = None


@attrs.frozen(eq=False)
class Batch:
    """The input of one `compute` call: frame indices, decoded frames and dependency outputs."""

    indices: np.ndarray
    frames: np.ndarray | None
    """uint8 (B, H, W, 3) RGB frames when the type sets ``uses_frames``; otherwise None."""
    deps: Mapping[str, Any]
    """Role name → memory-form array (B, H, W, C); a tuple of arrays for a ``many`` role."""
    neighbours: Mapping[int, np.ndarray] = attrs.field(factory=dict)
    """Offset → uint8 (B, H, W, 3) RGB frames near each frame, for a type whose `frame_offsets` asks for
    them: in an export, the frames at ``neighbour_indices[offset]``, that is ``indices + offset``
    clamped to the video (so at its ends a neighbour can be the frame itself or a nearer one); in a
    stream, where no future frame exists, see `Representation.frame_offsets`."""
    neighbour_indices: Mapping[int, np.ndarray] = attrs.field(factory=dict)
    """Offset → the frame indices whose frames ``neighbours[offset]`` holds."""

    def __len__(self) -> int:
        return len(self.indices)


_STORED_FLOAT: contextvars.ContextVar[str | None] = contextvars.ContextVar("vre_stored_float", default=None)


@contextlib.contextmanager
def stored_float_dtype(dtype: str | None) -> Iterator[None]:
    """While converting one batch to its disk form, the run's ``output_dtype`` (None: the type's own): the one
    place a floating-point disk dtype is decided, so a float32 run never stores float16-rounded values."""
    token = _STORED_FLOAT.set(dtype)
    try:
        yield
    finally:
        _STORED_FLOAT.reset(token)


def stored_dtype(disk_dtype: str, output_dtype: str | None) -> str:
    """The dtype frames are stored in: ``output_dtype`` applies to floating-point disk forms only
    (class indices, booleans and uint8 images keep their type)."""
    if output_dtype is not None and np.dtype(disk_dtype).kind == "f":
        return output_dtype
    return disk_dtype


@attrs.define(kw_only=True, eq=False)
class Representation:
    """Base class of every representation type.

    A subclass declares its parameters as attrs fields (with validators), its dependency
    ``roles``, whether it reads decoded ``frames``, and implements `compute`. Arrays in memory
    are batched (B, H, W, C); one frame on disk is (H, W) when C == 1, else (H, W, C).
    """

    type_name: ClassVar[str] = ""
    roles: ClassVar[tuple[Role, ...]] = ()
    uses_frames: ClassVar[bool] = False
    learned: ClassVar[bool] = False
    moved_parameters: ClassVar[Mapping[str, str]] = {}
    """Parameters that became settings of every representation: old name → the setting that now decides (a
    config that still gives the parameter gets the setting, with one warning)."""
    unfingerprinted_parameters: ClassVar[tuple[str, ...]] = ()
    """Parameters that do not change the output (e.g. where weights are read from, when
    `weights_identity` already names their content); left out of the output's fingerprint."""

    name: str
    dependencies: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    """Role name → the Representation filling it (a tuple of them for a ``many`` role)."""

    def output_spec(self) -> OutputSpec:
        """Channels and disk dtype of this representation's output."""
        raise NotImplementedError(f"{type(self).__name__} must implement output_spec()")

    def compute(self, batch: Batch) -> np.ndarray:
        """Compute the memory form (B, h, w, C) for a batch of frames."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute()")

    def to_disk(self, memory: np.ndarray) -> np.ndarray:
        """Memory form (B, H, W, C) → disk form (B, H, W[, C]) in the spec's disk dtype (a floating-point one
        replaced by the run's ``output_dtype``, so that the result is cast once: see `stored_float_dtype`)."""
        dtype = self.output_spec().disk_dtype
        wanted = _STORED_FLOAT.get()
        if wanted is not None and np.dtype(dtype).kind == "f":
            dtype = wanted
        disk = memory.astype(dtype, copy=False)
        return disk[..., 0] if disk.shape[-1] == 1 else disk

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        """Disk form (B, H, W[, C]) → memory form (B, H, W, C); the inverse of `to_disk`."""
        return disk[..., None] if disk.ndim == 3 else disk

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) RGB previews of a batch. Default: [0, 1] floats as grey or RGB."""
        x = memory.astype(np.float32, copy=False)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        elif x.shape[-1] != 3:
            x = x[..., :3] if x.shape[-1] > 3 else np.concatenate(
                [x, np.zeros((*x.shape[:-1], 3 - x.shape[-1]), np.float32)], axis=-1)
        return unit_to_uint8(np.nan_to_num(x))

    def resize(self, memory: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Resize a memory-form batch to (H, W): bilinear for floats, nearest otherwise."""
        if memory.shape[1:3] == tuple(size):
            return memory
        import cv2

        h, w = size
        interp = cv2.INTER_LINEAR if memory.dtype.kind == "f" else cv2.INTER_NEAREST
        src = memory.view(np.uint8) if memory.dtype == np.bool_ else memory
        out = np.empty((len(memory), h, w, memory.shape[-1]), dtype=src.dtype)
        for i, frame in enumerate(src):
            for c0 in range(0, frame.shape[-1], 4):  # cv2.resize handles at most 4 channels at a time
                part = cv2.resize(np.ascontiguousarray(frame[..., c0:c0 + 4]), (w, h), interpolation=interp)
                out[i, ..., c0:c0 + 4] = part.reshape(h, w, -1)
        return out.view(np.bool_) if memory.dtype == np.bool_ else out

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) this type computes at, for inputs of ``input_size`` (the frame's size, or for a type that does not
        read frames the size of its first dependency): where ``output_size: native`` stores it. Default: the input's
        size. A type whose model works at a size of its own (a network's input size) returns that size; it must
        not need the weights loaded (verification asks before any set-up)."""
        return input_size

    def metadata(self) -> dict[str, Any]:
        """Extra facts stored with the output (e.g. class names and colours)."""
        spec = self.output_spec()
        meta: dict[str, Any] = {}
        if spec.classes is not None:
            meta["classes"] = list(spec.classes)
        if spec.colors is not None:
            meta["colors"] = [list(c) for c in spec.colors]
        return meta

    def frame_offsets(self) -> tuple[int, ...]:
        """Other frames of the video this type reads besides frame t, as offsets from t (e.g. ``(1,)``
        for optical flow from t to t+1); they arrive in `Batch.neighbours`, decoded once per run.

        A live stream has no future frames: there, for a positive offset d, `compute` receives the
        frame seen d processed frames earlier in ``frames`` and the newest frame in
        ``neighbours[d]`` (the same index in both for the first frames), and the result is that of
        the newest frame: "from d frames ago to now".
        """
        return ()

    def preflight(self) -> None:
        """Check quickly, computing nothing, that `setup` will find what it needs (weights files);
        raise `vrecore.errors.WeightsError` naming what is missing and how to get it. Called for
        every learned representation that has work, before the first frame is decoded."""

    def weights_identity(self) -> Mapping[str, Any] | None:
        """Which weights this representation computes with (variant, commit, sha256 of each file),
        recorded in the fingerprint of its output; None for types without weights."""
        return None

    def setup(self, device: str) -> None:
        """Load weights and move models to ``device``; called only when there is work to do."""

    def teardown(self) -> None:
        """Release what `setup` acquired."""

    def parameters(self) -> dict[str, Any]:
        """The type's parameters with their current values."""
        return {name: getattr(self, name) for name in parameter_names(type(self))}


def optional_size(value: Any) -> tuple[int, int] | None:
    """attrs converter of a ``[height, width]`` parameter (an input size, a resolution): None stays None,
    else a tuple of two positive ints; anything else is a ValueError the graph reports as a config error."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"expected [height, width] in pixels or null, got {value!r}")
    if any(isinstance(v, bool) or int(v) != v or v < 1 for v in value):
        raise ValueError(f"height and width must be positive integers, got {list(value)}")
    return int(value[0]), int(value[1])


def parameter_names(cls: type[Representation]) -> list[str]:
    """Names of the parameters a representation type accepts (its own attrs fields)."""
    return [f.name for f in attrs.fields(cls) if f.name not in _BASE_FIELDS and f.init]


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] values as uint8 0..255, rounded half up: ``(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)``, the same
    values computed in one buffer (a temporary per step page-faulted fresh memory each time: ~7x slower on a 540p
    float32 frame, for every preview of a float representation)."""
    y = np.clip(x, 0.0, 1.0)
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float64)
    y *= y.dtype.type(255)
    y += y.dtype.type(0.5)
    return y.astype(np.uint8)
