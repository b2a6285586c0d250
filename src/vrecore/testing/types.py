"""Representation types for tests (grey means, failures and out-of-memory on demand, learned stand-ins) and registering
throwaway plugins around a test."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np

from vrecore.graph.hookspecs import hookimpl
from vrecore.graph.representation import Batch, OutputSpec, Representation, Role
from vrecore.weights.representation import WeightedRepresentation, variant_field
from vrecore.weights.variants import WeightVariant

# ============================================================================================
# Section: representation types for engine tests (core and plugins)
# ============================================================================================
#
# Small, deterministic types that exercise the export engine: a grey mean of the frame, a slow
# one (kill -9 and streaming tests), one that runs out of memory above a batch size, one that
# fails on chosen frames. `register_test_types()` adds them to a registry as the distribution
# "vrecore-testing", exactly as a third-party plugin would.


TEST_DISTRIBUTION = "vrecore-testing"


@attrs.define(kw_only=True, eq=False)
class GreyMean(Representation):
    """Grey level of each pixel in [0, 1] plus ``offset`` (one float32 channel)."""

    type_name = "test/grey"
    uses_frames = True
    offset: float = 0.0

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float32")

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        return (batch.frames.mean(axis=-1, keepdims=True, dtype=np.float32) / 255.0 + self.offset)


@attrs.define(kw_only=True, eq=False)
class Slow(GreyMean):
    """GreyMean that sleeps ``seconds`` per batch (only for batches from frame ``slow_from`` on); with ``mark_dir``,
    each process that begins a batch leaves an empty file named by its pid there first (so a test knows which
    workers are at work)."""

    type_name = "test/slow"
    unfingerprinted_parameters = ("seconds", "slow_from", "mark_dir")  # sleeping longer changes no output
    seconds: float = 0.05
    slow_from: int = 0
    mark_dir: str = ""

    def compute(self, batch: Batch) -> np.ndarray:
        if self.mark_dir:
            (Path(self.mark_dir) / str(os.getpid())).touch()
        if max(int(i) for i in batch.indices) >= self.slow_from:
            time.sleep(self.seconds)
        return super().compute(batch)


@attrs.define(kw_only=True, eq=False)
class OutOfMemoryAbove(GreyMean):
    """GreyMean that raises MemoryError for batches larger than ``max_batch``; logs batch sizes."""

    type_name = "test/oom"
    max_batch: int = 2
    seen: list = attrs.field(factory=list, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def compute(self, batch: Batch) -> np.ndarray:
        with self._lock:
            self.seen.append(len(batch))
        if len(batch) > self.max_batch:
            raise MemoryError(f"test: batch of {len(batch)} does not fit (max {self.max_batch})")
        return super().compute(batch)


@attrs.define(kw_only=True, eq=False)
class OutOfMemoryOnce(GreyMean):
    """GreyMean that raises MemoryError on its first ``times`` calls (a transient accelerator OOM)."""

    type_name = "test/oom-once"
    times: int = 1
    calls: int = attrs.field(default=0, init=False)

    def compute(self, batch: Batch) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.times:
            raise MemoryError(f"test: out of memory on call {self.calls}")
        return super().compute(batch)


@attrs.define(kw_only=True, eq=False)
class FailOn(GreyMean):
    """GreyMean that raises RuntimeError when a batch holds one of ``frames``."""

    type_name = "test/fail"
    frames: list = attrs.field(factory=list)

    def compute(self, batch: Batch) -> np.ndarray:
        bad = sorted(set(int(i) for i in batch.indices) & set(self.frames))
        if bad:
            raise RuntimeError(f"test failure on frames {bad}")
        return super().compute(batch)


@attrs.define(kw_only=True, eq=False)
class Pooled(GreyMean):
    """GreyMean averaged over 2x2 blocks: computed at half the frame's size (its own size, `native_size`)."""

    type_name = "test/pooled"

    def compute(self, batch: Batch) -> np.ndarray:
        grey = super().compute(batch)
        b, h, w, _ = grey.shape
        return grey[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, 1).mean(axis=(2, 4))

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return max(1, input_size[0] // 2), max(1, input_size[1] // 2)


@attrs.define(kw_only=True, eq=False)
class Scaled(Representation):
    """Its ``source`` dependency times ``factor`` (any channel count, float32)."""

    type_name = "test/scaled"
    roles = (Role("source"),)
    factor: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=self.dependencies["source"].output_spec().channels, disk_dtype="float32")

    def compute(self, batch: Batch) -> np.ndarray:
        return batch.deps["source"].astype(np.float32) * np.float32(self.factor)


@attrs.define(kw_only=True, eq=False)
class Learned(GreyMean):
    """GreyMean declared as learned: counts setup/teardown calls (class-wide, per process)."""

    type_name = "test/learned"
    learned = True
    calls: ClassVar[list] = []
    weights: str = "v1"
    """A stand-in for a weights variant: recorded in the fingerprint, changes no value."""

    def weights_identity(self) -> dict[str, Any]:
        return {"variant": self.weights}

    def setup(self, device: str) -> None:
        Learned.calls.append(("setup", self.name, device))

    def teardown(self) -> None:
        Learned.calls.append(("teardown", self.name))


@attrs.define(kw_only=True, eq=False)
class NeighbourDelta(Representation):
    """Grey level of the frame at t + ``delta`` minus that of frame t, and the neighbour's index
    (two float32 channels): shows which neighbour frame the engine handed over."""

    type_name = "test/neighbour-delta"
    uses_frames = True
    delta: int = 1

    def frame_offsets(self) -> tuple[int, ...]:
        return (self.delta,)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=2, disk_dtype="float32")

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        grey = batch.frames.mean(axis=-1, dtype=np.float32) / 255.0
        near = batch.neighbours[self.delta].mean(axis=-1, dtype=np.float32) / 255.0
        index = np.broadcast_to(batch.neighbour_indices[self.delta].astype(np.float32)[:, None, None], grey.shape)
        return np.stack([near - grey, index], axis=-1)


@attrs.define(kw_only=True, eq=False)
class MissingWeights(Learned):
    """A learned GreyMean whose weights are never there: `preflight` says so (setup would fail)."""

    type_name = "test/missing-weights"
    variant: str = "tiny"

    def preflight(self) -> None:
        from vrecore.errors import WeightsError

        raise WeightsError(f"weights {self.variant!r} are not in the cache (12 MB); run `vre weights fetch`")

    def setup(self, device: str) -> None:
        raise AssertionError("setup must not run when preflight failed")


@attrs.define(kw_only=True, eq=False)
class BrokenSetup(Learned):
    """A learned GreyMean whose `setup` raises (a model that cannot load)."""

    type_name = "test/broken-setup"

    def setup(self, device: str) -> None:
        raise RuntimeError("test: the model cannot be loaded")


@attrs.define(kw_only=True, eq=False, slots=False)
class WeightedGrey(WeightedRepresentation):
    """GreyMean times the ``scale`` tensor of its weights file (a safetensors holding just that tensor): the
    smallest learned type with declared weight variants. It declares none: tests set ``variants``."""

    type_name = "test/weighted-grey"
    uses_frames = True
    variants: ClassVar[dict[str, WeightVariant]] = {}

    variant: str = variant_field("tiny")
    _scale: float | None = attrs.field(default=None, init=False, repr=False)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float32")

    def setup(self, device: str) -> None:
        from vrecore.errors import WeightsError
        from vrecore.weights.loading import load_safetensors

        files = self.weights().files
        tensors = load_safetensors(next(p for f, p in files.items() if f.endswith(".safetensors")))
        if set(tensors) != {"scale"}:
            raise WeightsError(f"weights {self.weight_variant.name!r} hold {sorted(tensors)}, not one tensor 'scale'")
        self._scale = float(tensors["scale"])

    def compute(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None and self._scale is not None
        return batch.frames.mean(axis=-1, keepdims=True, dtype=np.float32) / 255.0 * np.float32(self._scale)


def scale_weights(scale: float) -> bytes:
    """The bytes of a weights file of `WeightedGrey`: a safetensors holding the tensor ``scale``."""
    from safetensors.numpy import save

    return save({"scale": np.array(scale, dtype=np.float32)})


class _TestTypesPlugin:
    @hookimpl
    def register_representations(self, register: Any) -> None:
        for cls in (GreyMean, Pooled, Slow, OutOfMemoryAbove, OutOfMemoryOnce, FailOn, Scaled, Learned, NeighbourDelta,
                    MissingWeights, BrokenSetup, WeightedGrey):
            register(cls.type_name, f"{__name__}:{cls.__name__}", description=(cls.__doc__ or "").strip(),
                     aliases=("test/grey-alias",) if cls is GreyMean else ())


TEST_TYPES_PLUGIN = _TestTypesPlugin()


def write_test_types_distribution(site: Path) -> Path:
    """A throwaway installed distribution in folder ``site`` whose entry point adds the test types.

    Put ``site`` on PYTHONPATH of a subprocess (e.g. the `vre` CLI) to give it the test types.
    """
    info = Path(site) / "vrecore_testing-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {TEST_DISTRIBUTION}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vre]\n{TEST_DISTRIBUTION} = {__name__}:TEST_TYPES_PLUGIN\n")
    return Path(site)


def register_plugin(plugin: Any, distribution: str, version: str = "0", registry: Any = None) -> Any:
    """Register a throwaway plugin object (its ``@hookimpl`` methods) as ``distribution`` into ``registry``
    (default: the global one), unless one is registered under that name; returns the registry."""
    from vrecore.graph.registry import get_registry

    registry = registry or get_registry()
    if not registry.has_plugin(distribution):
        registry.register_plugin(plugin, distribution, version)
    return registry


def unregister_plugin(distribution: str, registry: Any = None) -> None:
    """Undo `register_plugin` (nothing happens when no plugin is registered as ``distribution``)."""
    from vrecore.graph.registry import get_registry

    registry = registry or get_registry()
    if registry.has_plugin(distribution):
        registry.unregister_plugin(distribution)


def register_test_types(registry: Any = None) -> Any:
    """Register the test types (distribution "vrecore-testing") into ``registry`` (default: the global one)."""
    return register_plugin(TEST_TYPES_PLUGIN, TEST_DISTRIBUTION, "1.0", registry)  # the version its dist-info says


def unregister_test_types(registry: Any = None) -> None:
    """Undo `register_test_types`."""
    unregister_plugin(TEST_DISTRIBUTION, registry)


