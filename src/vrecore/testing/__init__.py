"""Helpers for vre's tests and for plugin authors' tests.

Each helper family lives in its own clearly named section; nothing here is imported by vre at run
time, and heavy libraries are imported inside the functions.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import attrs
import numpy as np

from vrecore.graph.hookspecs import hookimpl
from vrecore.graph.representation import Batch, OutputSpec, Representation, Role
from vrecore.weights.variants import WeightedRepresentation, WeightVariant, variant_field

__all__ = ["BrokenSetup", "FailOn", "GreyMean", "Learned", "LocalHub", "MissingWeights", "NeighbourDelta",
           "OutOfMemoryAbove", "OutOfMemoryOnce", "RepresentationTestSuite", "Scaled", "Slow", "WeightedGrey",
           "populate_hub_cache", "register_plugin", "register_test_types", "scale_weights", "unregister_plugin",
           "unregister_test_types", "use_hub_cache",
           "write_test_types_distribution"]


# ============================================================================================
# Section: Hugging Face Hub cache (weights tests, offline)
# ============================================================================================
#
# `populate_hub_cache` lays files out exactly like huggingface_hub's cache (checked against
# huggingface_hub 2.4, file_download.py: `_hf_hub_download_to_cache_dir`, `_get_pointer_path`,
# `_cache_commit_hash_for_specific_revision`, `repo_folder_name`):
#
#   <cache_dir>/models--<org>--<name>/
#       blobs/<etag>                          file content; etag = sha256 (LFS files) or git blob sha1
#       snapshots/<commit>/<filename>         relative symlink -> ../../blobs/<etag> (copy if no symlinks)
#       refs/<revision>                       the commit hash, no newline (only when revision is a tag/branch)
#
# so that ``hf_hub_download(repo_id, filename, revision=...)`` with HF_HUB_OFFLINE=1 and
# HF_HUB_CACHE=<cache_dir> finds them through the real huggingface_hub code: offline, its HEAD call
# fails with OfflineModeIsEnabled, it resolves refs/<revision> (or takes a 40-hex revision as the
# commit) and returns snapshots/<commit>/<filename> when it exists.
#
# huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE from the environment once, at import time,
# into ``huggingface_hub.constants``, and every later call reads those module attributes. Setting
# the environment variables after import therefore has no effect: use `use_hub_cache`, which sets
# both the variables and the already-imported constants.

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Extensions the Hub stores through LFS by default (its default .gitattributes); files over 10 MiB
# are LFS too. LFS blobs are named by sha256, regular git files by their git blob sha1.
_LFS_SUFFIXES = frozenset(
    ".safetensors .bin .pt .pth .ckpt .h5 .onnx .msgpack .pkl .pickle .npy .npz .tflite .ot .model "
    ".gguf .zip .gz .tar .tgz .zst .xz .7z .parquet .arrow .joblib .pb .mlmodel .wasm".split()
)
_LFS_MIN_SIZE = 10 * 1024 * 1024


def _etag(filename: str, data: bytes) -> str:
    if PurePosixPath(filename).suffix.lower() in _LFS_SUFFIXES or len(data) > _LFS_MIN_SIZE:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def populate_hub_cache(
    cache_dir: str | os.PathLike[str],
    repo_id: str,
    revision: str,
    files: Mapping[str, bytes | os.PathLike[str]],
) -> str:
    """Put ``files`` (repo-relative name → bytes or a path to copy) into a huggingface_hub cache.

    ``revision`` is a 40-hex commit hash (used as the snapshot folder) or a branch/tag name (then a
    deterministic fake commit hash is derived and ``refs/<revision>`` points to it). Returns the
    commit hash. Calling it again for the same repo adds/replaces files, like a real cache.
    """
    if "/" not in repo_id or repo_id.startswith("/") or repo_id.endswith("/"):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    if not revision:
        raise ValueError("revision must not be empty")
    storage = Path(cache_dir) / "--".join(["models", *repo_id.split("/")])

    blobs: dict[str, tuple[str, bytes]] = {}
    for name, content in files.items():
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ".." in parts or "\\" in name:
            raise ValueError(f"file name {name!r} must be relative, '/'-separated, without '..'")
        data = bytes(content) if isinstance(content, (bytes, bytearray)) else Path(content).read_bytes()
        blobs[name] = (_etag(name, data), data)

    if _COMMIT_RE.match(revision):
        commit = revision
    else:
        h = hashlib.sha1(f"vre-test-commit\n{repo_id}\n{revision}\n".encode())
        for name in sorted(blobs):
            h.update(f"{name}\0{blobs[name][0]}\n".encode())
        commit = h.hexdigest()

    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = storage / "snapshots" / commit
    for name, (etag, data) in blobs.items():
        blob = storage / "blobs" / etag
        if not blob.exists():
            tmp = blob.with_name(etag + ".incomplete")
            tmp.write_bytes(data)
            os.replace(tmp, blob)
        pointer = snapshot.joinpath(*PurePosixPath(name).parts)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:  # no symlink support: huggingface_hub then copies the blob too
            shutil.copyfile(blob, pointer)

    if commit != revision:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return commit


def use_hub_cache(monkeypatch: Any, cache_dir: str | os.PathLike[str], *, offline: bool = True,
                  endpoint: str | None = None) -> Path:
    """Point huggingface_hub at ``cache_dir`` (and offline mode, and ``endpoint`` when given: a `LocalHub`, or a
    closed port to stand for a machine without network) for one test, via ``monkeypatch``.

    Sets HF_HUB_CACHE / HF_HUB_OFFLINE (/ HF_ENDPOINT) in the environment (for a later import) and the
    corresponding ``huggingface_hub.constants`` attributes (read by every hf_hub_download call).
    """
    cache = Path(cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True, raising=False)
    if endpoint is not None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    return cache


class LocalHub:
    """The part of the Hugging Face Hub that ``hf_hub_download`` talks to, served on 127.0.0.1 for tests.

    ``HEAD`` / ``GET /{repo_id}/resolve/{revision}/{filename}`` answer with the file and the headers
    huggingface_hub reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``); an unknown repo, revision or
    file is a 404 with the Hub's ``X-Error-Code``. `publish` moves a branch to a new commit, as a push does.
    Use as a context manager; `use_hub_cache(..., endpoint=hub.url)` points huggingface_hub at it.
    """

    def __init__(self) -> None:
        self.refs: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._server: Any = None

    def publish(self, repo_id: str, files: Mapping[str, bytes | os.PathLike[str]], branch: str = "main") -> str:
        """Make ``files`` the content of ``branch`` of ``repo_id`` at a new commit; returns the commit."""
        data = {name: bytes(c) if isinstance(c, (bytes, bytearray)) else Path(c).read_bytes() for name, c in files.items()}
        h = hashlib.sha1(f"vre-local-hub\n{repo_id}\n".encode())
        for name in sorted(data):
            h.update(f"{name}\0{_etag(name, data[name])}\n".encode())
        commit = h.hexdigest()
        self.commits.setdefault(repo_id, {})[commit] = data
        self.refs.setdefault(repo_id, {})[branch] = commit
        return commit

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _answer(self, handler: Any, body: bool) -> None:
        from urllib.parse import unquote

        self.requests.append((handler.command, handler.path))
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", handler.path.split("?")[0])
        error, data, commit = "RepoNotFound", None, None
        if match:
            repo_id, revision, filename = match.group(1), unquote(match.group(2)), unquote(match.group(3))
            if repo_id in self.commits:
                commit = self.refs[repo_id].get(revision, revision if revision in self.commits[repo_id] else None)
                error = "RevisionNotFound" if commit is None else "EntryNotFound"
                data = None if commit is None else self.commits[repo_id][commit].get(filename)
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", error)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", str(commit))
        handler.send_header("ETag", f'"{_etag(filename, data)}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def __enter__(self) -> LocalHub:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - the http.server protocol
                hub._answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, body=True)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="vre-local-hub").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ============================================================================================
# (other helper sections go below, each under its own header)
# ============================================================================================


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
    """GreyMean that sleeps ``seconds`` per batch."""

    type_name = "test/slow"
    unfingerprinted_parameters = ("seconds",)  # sleeping longer changes no output
    seconds: float = 0.05

    def compute(self, batch: Batch) -> np.ndarray:
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
        from vrecore.weights.variants import load_safetensors

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
        for cls in (GreyMean, Slow, OutOfMemoryAbove, OutOfMemoryOnce, FailOn, Scaled, Learned, NeighbourDelta,
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


# ============================================================================================
# Section: conformance suite for representation types (subclass it in a plugin's tests)
# ============================================================================================


class RepresentationTestSuite:
    """Checks every representation type must pass; a plugin's test subclasses it::

        class TestCanny(RepresentationTestSuite):
            type_name = "edges/canny"
            parameters = {"threshold1": 100}

    Override `dependency_arrays` for types with dependencies and `prepare` for learned types (e.g.
    to point them at test weights). Arrays are small; ``atol`` bounds batched-vs-unbatched drift.
    """

    type_name: str = ""
    parameters: dict[str, Any] = {}
    frame_shape: tuple[int, int] = (24, 32)
    batch: int = 3
    clip_length: int = 6
    """Frames of the random clip that types reading neighbour frames (`frame_offsets`) take them from."""
    atol: float = 1e-5
    entry_module: str | None = None
    """The plugin's entry module, checked to import without torch (None: derived from the provider)."""

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """Role → memory-form dependency arrays (n, H, W, C) for a batch of n frames."""
        return {}

    def dependency_representations(self) -> dict[str, Any]:
        """Role → Representation objects filling the roles (their output_spec is consulted)."""
        return {}

    def prepare(self, representation: Any, tmp_path: Path) -> None:
        """Called before `setup` (e.g. to set a local weights path)."""

    # -- helpers ---------------------------------------------------------------------------------
    def make(self, tmp_path: Path) -> Any:
        from vrecore.graph.registry import get_registry

        cls = get_registry().get(self.type_name).load()
        rep = cls(name="under_test", dependencies=self.dependency_representations(), **self.parameters)
        self.prepare(rep, tmp_path)
        if rep.learned:
            rep.setup("cpu")
        return rep

    def offsets(self) -> tuple[int, ...]:
        """The type's `frame_offsets` with these parameters (no set-up needed)."""
        from vrecore.graph.registry import get_registry

        cls = get_registry().get(self.type_name).load()
        return tuple(cls(name="under_test", dependencies=self.dependency_representations(),
                         **self.parameters).frame_offsets())

    def clip(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` random frames, smoothed a little so that images have structure (edges, regions)."""
        rng = np.random.default_rng(seed)
        frames = rng.integers(0, 256, (n, *self.frame_shape, 3), dtype=np.uint8)
        return ((frames.astype(np.uint16) + np.roll(frames, 1, axis=1) + np.roll(frames, 1, axis=2)) // 3
                ).astype(np.uint8)

    def batch_of(self, n: int, seed: int = 0, indices: np.ndarray | None = None) -> Batch:
        """A batch of ``n`` frames (or the frames ``indices`` of the clip): with neighbour frames, clamped
        to the clip as an export gives them, for a type that reads them."""
        offsets = self.offsets()
        frames = self.clip(max(n, self.clip_length) if offsets else n, seed)
        ix = np.arange(n) if indices is None else np.asarray(indices)
        deps = self.dependency_arrays(len(ix), np.random.default_rng(seed + 1))
        if not offsets:
            return Batch(indices=ix, frames=frames[ix], deps=deps)
        near = {d: np.clip(ix + d, 0, len(frames) - 1) for d in offsets}
        return Batch(indices=ix, frames=frames[ix], deps=deps, neighbours={d: frames[i] for d, i in near.items()},
                     neighbour_indices=near)

    def compute(self, rep: Any, batch: Batch) -> np.ndarray:
        out = np.asarray(rep.compute(batch))
        return rep.resize(out, self.frame_shape)

    # -- the checks ------------------------------------------------------------------------------
    def test_registered_by_a_plugin(self) -> None:
        from vrecore.graph.registry import get_registry

        entry = get_registry().types[self.type_name]
        assert entry.load().type_name == self.type_name, "the class's type_name must match its registration"

    def test_output_shape_dtype_and_images(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        spec = rep.output_spec()
        out = self.compute(rep, self.batch_of(self.batch))
        assert out.shape == (self.batch, *self.frame_shape, spec.channels)
        disk = rep.to_disk(out)
        assert disk.dtype == np.dtype(spec.disk_dtype)
        assert disk.shape[:3] == (self.batch, *self.frame_shape)
        images = rep.make_images(out)
        assert images.dtype == np.uint8 and images.shape == (self.batch, *self.frame_shape, 3)
        if spec.classes is not None:
            assert spec.colors is None or len(spec.colors) == len(spec.classes)

    def test_disk_round_trip(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        disk = rep.to_disk(self.compute(rep, self.batch_of(self.batch)))
        again = rep.to_disk(rep.from_disk(disk))
        np.testing.assert_array_equal(again, disk)

    def test_batched_equals_unbatched(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        # A type reading neighbours gets the whole clip, so that its last frames take the end rule too.
        n = self.clip_length if self.offsets() else self.batch
        batch = self.batch_of(n, seed=1)
        assert batch.frames is not None
        whole = self.compute(rep, batch)
        for i in range(n):
            one = Batch(indices=batch.indices[i:i + 1], frames=batch.frames[i:i + 1],
                         deps={k: (tuple(x[i:i + 1] for x in v) if isinstance(v, tuple) else v[i:i + 1])
                               for k, v in batch.deps.items()},
                         neighbours={d: f[i:i + 1] for d, f in batch.neighbours.items()},
                         neighbour_indices={d: ix[i:i + 1] for d, ix in batch.neighbour_indices.items()})
            np.testing.assert_allclose(self.compute(rep, one)[0].astype(np.float64),
                                        whole[i].astype(np.float64), atol=self.atol, rtol=0, equal_nan=True)

    def test_entry_module_imports_no_torch(self) -> None:
        import subprocess
        import sys

        from vrecore.graph.registry import get_registry

        entry = get_registry().types[self.type_name]
        module = self.entry_module or entry.provider.replace("-", "_")
        code = (f"import sys, {module}; from vrecore.graph.registry import get_registry; "
                f"get_registry().types['{self.type_name}'].load(); "
                f"print([m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "[]", r.stdout + r.stderr
