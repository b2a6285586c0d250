"""The executor: runs a representation graph on a batch of frames. Export, stream and workers share it.

For each representation in topological order it takes the frames that need it, feeds it its
dependencies by role (computed in this batch, or read back from a store), computes in batches of the
representation's size (halving the size after an out-of-memory error), checks and resizes the
output, and applies the stored-form rule: a dependent always receives what it would read back from
disk (e.g. a float32 depth stored as float16), so its result never depends on whether its dependency
was computed in the same run, an earlier run, or a live stream. Failures follow ``exception_mode``:
``stop`` raises `RepresentationFailed`, ``skip`` records them and leaves the dependents of the
failed frames out.
"""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from vrecore.errors import ConfigError, VreError, WeightsError
from vrecore.frames.video import ranges
from vrecore.graph.build import Graph, Node, output_shape
from vrecore.graph.devices import check_device, is_out_of_memory, release_accelerator_memory, thread_limit
from vrecore.graph.representation import Batch, Representation, stored_dtype, stored_float_dtype

__all__ = ["EXCEPTION_MODES", "Executor", "FrameProvider", "NodeOutput", "NodeStats", "RepresentationFailed",
           "VideoFrames", "dependency_inputs", "finish_output", "preflight"]

log = logging.getLogger("vrecore.graph.executor")
EXCEPTION_MODES = ("stop", "skip")


class RepresentationFailed(VreError):
    """A representation raised while computing (exception_mode="stop")."""

    exit_code = 1


# -- feeding and finishing one representation ---------------------------------------------------------
def dependency_inputs(rep: Representation, gather: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """Role → memory-form input of ``rep``'s dependencies, as `compute` receives them in `Batch.deps`;
    a ``many`` role gets a tuple of them, in config order."""
    deps: dict[str, Any] = {}
    for role, dep in rep.dependencies.items():
        deps[role] = tuple(gather(d.name) for d in dep) if isinstance(dep, tuple) else gather(dep.name)
    return deps


def finish_output(node: Node, out: Any, n: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """Check what ``compute`` returned for ``n`` frames and resize it to the node's output size
    (its ``output_size`` setting, its own size with ``native``, else the frame size: `output_shape`)."""
    out = np.asarray(out)
    spec = node.representation.output_spec()
    if out.ndim != 4 or out.shape[0] != n or out.shape[-1] != spec.channels:
        raise ValueError(f"compute() returned shape {out.shape}; expected ({n}, H, W, {spec.channels}) "
                         f"(a bug in the {node.type_name} plugin)")
    return node.representation.resize(out, output_shape(node, frame_shape))


def stores_binary(node: Node) -> bool:
    """Whether ``node``'s frames are stored as arrays (what dependents then see is the stored form)."""
    return node.settings.export and node.settings.binary_format != "none"


def to_stored(node: Node, memory: np.ndarray) -> np.ndarray:
    """The disk form of a memory-form batch in its stored dtype (`vrecore.graph.representation.stored_dtype`): a floating-point
    result is cast once, to the run's ``output_dtype`` when set (`stored_float_dtype`)."""
    with stored_float_dtype(node.settings.output_dtype):
        disk = np.asarray(node.representation.to_disk(memory))
    dtype = stored_dtype(str(disk.dtype), node.settings.output_dtype)
    return disk if str(disk.dtype) == dtype else disk.astype(dtype)


def preflight(nodes: Sequence[Node]) -> None:
    """Ask every learned representation that has work whether `setup` will find its weights, before
    anything is decoded; all the problems are raised together, one line each."""
    problems = []
    for node in nodes:
        try:
            node.representation.preflight()
        except WeightsError as e:
            problems.append(f"representation '{node.name}' ({node.type_name}): {e}")
    if problems:
        raise WeightsError("\n".join(problems))


# -- frames ------------------------------------------------------------------------------------------
class FrameProvider(Protocol):
    """Where a batch's decoded frames (and neighbour frames) come from."""

    frame_shape: tuple[int, int]

    def batch_frames(self, rep: Representation, part: Sequence[int]) -> dict[str, Any]:
        """``frames``, ``neighbours`` and ``neighbour_indices`` of `Batch` for ``part`` (frame indices), and
        ``indices`` when the frames handed over are not those of ``part`` (a stream's earlier frame)."""
        ...


class VideoFrames:
    """Frames decoded for a chunk of a video: frame i, and neighbours at ``clamp(i + offset)``."""

    def __init__(self, decoded: Mapping[int, np.ndarray], num_frames: int, frame_shape: tuple[int, int]) -> None:
        self.decoded, self.num_frames, self.frame_shape = decoded, num_frames, frame_shape

    def _stack(self, indices: Sequence[int]) -> np.ndarray:
        rows = [self.decoded[int(i)] for i in indices]
        base = rows[0].base
        if base is not None and base.ndim == 4:  # consecutive rows of one decoded batch: a view
            start = _row_index(base, rows[0])
            if start is not None and all(_row_index(base, r) == start + k for k, r in enumerate(rows)):
                return base[start:start + len(rows)]
        return np.stack(rows)

    def batch_frames(self, rep: Representation, part: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self._stack(part) if rep.uses_frames else None}
        offsets = rep.frame_offsets()
        if offsets:
            near = {d: np.clip(np.asarray(part) + d, 0, self.num_frames - 1) for d in offsets}
            out["neighbours"] = {d: self._stack(ix.tolist()) for d, ix in near.items()}
            out["neighbour_indices"] = near
        return out


def neighbour_frames(graph_nodes: Sequence[Node], frames: Collection[int], num_frames: int) -> set[int]:
    """Every frame a chunk must decode: its own frames that readers need, and their neighbours."""
    wanted = set(frames)
    for node in graph_nodes:
        for d in node.representation.frame_offsets():
            wanted |= {min(max(i + d, 0), num_frames - 1) for i in frames}
    return wanted


# -- the executor ------------------------------------------------------------------------------------
@attrs.define
class NodeStats:
    """What the executor did for one representation: frames computed and seconds spent, failures,
    batch-size changes after out-of-memory errors."""

    name: str
    batch_size: int
    frames: int = 0
    seconds: float = 0.0
    failed_frames: list[int] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    batch_size_changes: list[dict[str, Any]] = attrs.field(factory=list)
    retries: int = 0
    failures: int = 0
    """Frames failed so far (``failed_frames`` may be cleared by a caller; this is not)."""


@attrs.frozen(eq=False)
class NodeOutput:
    """One computed batch of one representation."""

    node: Node
    indices: list[int]
    memory: np.ndarray
    """The memory form (B, H, W, C) at the output size."""
    stored: np.ndarray | None
    """The disk form in its stored dtype, when dependents needed it (else None: `to_stored` makes it)."""
    seconds: float


class _Retry(Exception):
    """Internal: the batch size was reduced after an out-of-memory error; compute again."""


class Executor:
    """Runs the representations of ``graph`` (or the given ``nodes``) over batches of frames.

    ``device``: where learned representations run, or ``placement``: representation name → device
    (``"*"`` for the rest). Learned representations are set up on first work (or all at once by
    `setup`) and torn down by `teardown`. ``threads`` caps compute threads (`thread_limit`).
    ``quiet_failures`` logs only the 1st, 10th, 100th and every 1000th failure of a representation
    (a live stream), instead of each with its traceback (an export's log).
    """

    def __init__(self, graph: Graph, *, nodes: Sequence[Node] | None = None, device: str = "cpu",
                 placement: Mapping[str, str] | None = None, exception_mode: str = "stop",
                 threads: thread_limit | None = None, quiet_failures: bool = False) -> None:
        if exception_mode not in EXCEPTION_MODES:
            raise ConfigError(f"exception_mode {exception_mode!r} is not one of {', '.join(EXCEPTION_MODES)}")
        self.graph = graph
        self.nodes: tuple[Node, ...] = tuple(nodes if nodes is not None else graph.nodes)
        self.device, self.placement = device, dict(placement or {})
        for d in {device, *self.placement.values()}:
            check_device(d)
        self.exception_mode = exception_mode
        self.threads = threads
        self.quiet_failures = quiet_failures
        self.last_error: dict[str, str] = {}
        """Representation → the message of its latest failure."""
        self.stats = {n.name: NodeStats(n.name, n.settings.batch_size) for n in self.nodes}
        self.batch_size = {n.name: n.settings.batch_size for n in self.nodes}
        self.failed: dict[str, set[int]] = {n.name: set() for n in self.nodes}
        self.broken: dict[str, str] = {}
        """Representations whose set-up failed (exception_mode=skip) → why."""
        self._set_up: list[Node] = []
        names = {n.name for n in self.nodes}
        self._has_dependents = {n.name: any(d.name != n.name and n.name in d.dependency_names for d in self.nodes)
                                for n in self.nodes}
        last: dict[str, int] = {n.name: k for k, n in enumerate(self.nodes)}
        for k, n in enumerate(self.nodes):
            for d in n.dependency_names:
                if d in names:
                    last[d] = max(last[d], k)
        self._drop_after: dict[int, list[str]] = {}
        for name, k in last.items():
            self._drop_after.setdefault(k + 1, []).append(name)

    def new_run(self) -> None:
        """Start counting afresh (an executor kept set up over several runs); what was set up stays set up."""
        self.stats = {n.name: NodeStats(n.name, self.batch_size[n.name]) for n in self.nodes}
        self.failed = {n.name: set() for n in self.nodes}
        self.last_error = {}

    def device_of(self, node: Node) -> str:
        """The device ``node`` runs on."""
        return self.placement.get(node.name, self.placement.get("*", self.device))

    # -- lifecycle ---------------------------------------------------------------------------------
    def setup(self, nodes: Sequence[Node] | None = None) -> None:
        """Set up the learned representations among ``nodes`` (default: all) now, in graph order."""
        for node in nodes if nodes is not None else self.nodes:
            if node.representation.learned:
                self._ensure_set_up(node)

    def _ensure_set_up(self, node: Node) -> bool:
        """Set ``node`` up if needed; False when its set-up failed (exception_mode=skip)."""
        if node.name in self.broken:
            return False
        if node in self._set_up or not node.representation.learned:
            return True
        device = self.device_of(node)
        log.info("setting up %s (%s) on %s", node.name, node.type_name, device)
        try:
            node.representation.setup(device)
        except Exception as e:
            message = f"set-up failed: {type(e).__name__}: {e}"
            if self.exception_mode == "stop":
                if isinstance(e, VreError):
                    raise
                raise RepresentationFailed(f"representation '{node.name}' ({node.type_name}) {message}") from e
            log.error("representation '%s' (%s) %s; it and its dependents are skipped", node.name, node.type_name,
                      message, exc_info=True)
            self.broken[node.name] = message
            self.stats[node.name].errors.append(message)
            return False
        self._set_up.append(node)
        if self.threads is not None:
            self.threads.apply()  # a set-up may have imported torch
        return True

    def teardown(self) -> None:
        """Tear down what was set up (idempotent); a later batch sets it up again."""
        set_up, self._set_up = self._set_up, []
        for node in reversed(set_up):
            try:
                node.representation.teardown()
            except Exception:  # noqa: BLE001 - one failing teardown must not hide the others
                log.warning("tearing down %s failed", node.name, exc_info=True)

    # -- one batch of frames -----------------------------------------------------------------------
    def run(self, frames: FrameProvider, need: Mapping[str, Collection[int]], *,
            read_stored: Callable[[Node, int], np.ndarray] | None = None,
            on_output: Callable[[NodeOutput], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict[str, np.ndarray]:
        """Compute ``need[name]`` (frame indices) of every representation.

        A dependency's frames come from this call when computed here, else from ``read_stored(node,
        index)`` (its stored disk form). ``on_output`` receives every computed batch. ``should_stop``
        is asked between batches; when true, the call returns early. Returns the outputs of the
        last batch per representation (memory form), as a stream of one frame uses them.
        """
        shared: dict[str, dict[int, np.ndarray]] = {}
        last: dict[str, np.ndarray] = {}
        for position, node in enumerate(self.nodes):
            name = node.name
            for done in self._drop_after.get(position, ()):
                shared.pop(done, None)  # outputs no later representation needs (writers hold their own)
            shared[name] = {}
            wanted = sorted(need.get(name, ()))
            if not wanted:
                continue
            blocked = [i for i in wanted if any(i in self.failed.get(d, ()) for d in node.dependency_names)]
            if blocked:
                culprit = next(d for d in node.dependency_names if set(blocked) & self.failed.get(d, set()))
                self._fail(node, blocked, f"dependency '{culprit}' failed", None)
                wanted = [i for i in wanted if i not in set(blocked)]
            if not wanted:
                continue
            if not self._ensure_set_up(node):
                self._fail(node, wanted, self.broken[name], None)
                continue
            k = 0
            while k < len(wanted):
                if should_stop is not None and should_stop():
                    return last
                part = wanted[k:k + self.batch_size[name]]
                try:
                    output = self._compute(node, part, frames, shared, read_stored)
                except _Retry:
                    continue
                except (RepresentationFailed, VreError):
                    raise
                except Exception as e:
                    self._fail(node, part, f"{type(e).__name__}: {e}", traceback.format_exc(),
                               quiet=self.quiet_failures and self.exception_mode == "stop")
                    if self.exception_mode == "stop":
                        frames_text = f"frame {part[0]}" if len(part) == 1 else f"frames {ranges(part)}"
                        raise RepresentationFailed(f"representation '{name}' ({node.type_name}) failed on "
                                                   f"{frames_text}: {type(e).__name__}: {e}") from e
                    k += len(part)
                    continue
                k += len(part)
                if self._has_dependents[name]:
                    rows = output.memory if output.stored is None or not stores_binary(node) else \
                        node.representation.from_disk(output.stored)
                    for j, i in enumerate(part):
                        shared[name][i] = rows[j]
                last[name] = output.memory
                if on_output is not None:
                    on_output(output)
        return last

    def _compute(self, node: Node, part: list[int], frames: FrameProvider, shared: Mapping[str, Mapping[int, np.ndarray]],
                 read_stored: Callable[[Node, int], np.ndarray] | None) -> NodeOutput:
        rep = node.representation
        deps = dependency_inputs(rep, lambda dep: self._gather(dep, part, shared, read_stored))
        fields = {"indices": np.asarray(part), **frames.batch_frames(rep, part)}
        batch = Batch(deps=deps, **fields)
        t = time.perf_counter()
        try:
            out = rep.compute(batch)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            self._after_out_of_memory(node, part, e)
            raise _Retry() from e
        memory = finish_output(node, out, len(part), frames.frame_shape)
        seconds = time.perf_counter() - t
        stats = self.stats[node.name]
        stats.retries = 0
        stats.frames += len(part)
        stats.seconds += seconds
        stored = to_stored(node, memory) if stores_binary(node) and self._has_dependents[node.name] else None
        return NodeOutput(node, list(part), memory, stored, seconds)

    def _after_out_of_memory(self, node: Node, part: list[int], e: BaseException) -> None:
        """Halve the batch size; at one frame, retry once after freeing cached memory."""
        release_accelerator_memory()
        stats = self.stats[node.name]
        old = min(self.batch_size[node.name], len(part))
        if old <= 1:
            if stats.retries >= 1:
                stats.retries = 0
                raise e from None
            stats.retries += 1
            log.warning("%s: out of memory on frame %d at batch size 1; retrying once after freeing memory",
                        node.name, part[0])
            return
        new = max(1, old // 2)
        self.batch_size[node.name] = stats.batch_size = new
        stats.batch_size_changes.append({"frame": part[0], "from": old, "to": new,
                                         "error": f"{type(e).__name__}: {e}"[:300]})
        log.warning("%s: out of memory at batch size %d on frames %s; retrying at %d", node.name, old,
                    ranges(part), new)

    def _gather(self, dep: str, part: list[int], shared: Mapping[str, Mapping[int, np.ndarray]],
                read_stored: Callable[[Node, int], np.ndarray] | None) -> np.ndarray:
        have = shared.get(dep, {})
        node = self.graph[dep]
        rows = []
        for i in part:
            if i in have:
                rows.append(have[i])
            elif read_stored is not None:
                rows.append(node.representation.from_disk(read_stored(node, i)[None])[0])
            else:
                raise RuntimeError(f"frame {i} of '{dep}' was neither computed nor stored (an engine bug)")
        base = rows[0].base
        if base is not None and base.ndim == 4:  # consecutive rows of one computed batch: a view, no copy
            start = _row_index(base, rows[0])
            if start is not None and all(_row_index(base, r) == start + k for k, r in enumerate(rows)):
                return base[start:start + len(rows)]
        return np.stack(rows)

    def fail_frames(self, node: Node, frames: Sequence[int], message: str) -> None:
        """Record frames of ``node`` as failed before computing (e.g. they cannot be decoded); its
        dependents then skip them too."""
        self._fail(node, frames, message, None)

    def _fail(self, node: Node, frames: Sequence[int], message: str, tb: str | None, *, quiet: bool = False) -> None:
        new = [i for i in frames if i not in self.failed[node.name]]
        self.failed[node.name].update(new)
        stats = self.stats[node.name]
        stats.failed_frames.extend(new)
        self.last_error[node.name] = message
        stats.failures += len(new)
        count = stats.failures
        if quiet:  # the caller raises it
            return
        if not self.quiet_failures:
            stats.errors.append(f"frames {ranges(frames)}: {message}")
            log.error("%s failed on frames %s: %s%s", node.name, ranges(frames), message, f"\n{tb}" if tb else "")
        elif count in (1, 10, 100) or count % 1000 == 0:
            stats.errors = [*stats.errors[-9:], f"frames {ranges(frames)}: {message}"]
            log.warning("representation '%s' failed on frame %s (%d failures so far): %s%s", node.name,
                        ranges(frames), count, message, f"\n{tb}" if tb and count == 1 else "")


def _row_index(base: np.ndarray, row: np.ndarray) -> int | None:
    """Index of ``row`` within the 4-D ``base`` it was sliced from, or None."""
    offset = row.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    stride = base.strides[0]
    if row.shape != base.shape[1:] or stride == 0 or offset % stride or not 0 <= offset // stride < len(base):
        return None
    return offset // stride
