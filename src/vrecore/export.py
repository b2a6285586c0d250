"""Batch export: run a representation graph over a video's frames and store every frame.

Frames are processed in chunks: one decode per frame (a prefetching thread decodes the next chunk
while the current one computes), every representation of the graph computes its part of the
chunk in topological order with its own batch size, dependencies computed in this run come from
memory and earlier ones from disk, and writer threads convert, compress and store the results.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, ExportError, VreError, WeightsError
from vrecore.frames import FrameSource, open_video, select_frames
from vrecore.graph import Graph, Node
from vrecore.metadata import write_representation_metadata
from vrecore.representation import Batch, Representation
from vrecore.store import DirectoryStore, Store, required_folders

__all__ = ["ExportResult", "RepresentationStats", "dependency_inputs", "finish_output", "run_export"]

log = logging.getLogger("vrecore.export")
EXCEPTION_MODES = ("stop", "skip")


@attrs.define
class RepresentationStats:
    """What one run did for one representation."""

    name: str
    batch_size: int
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    compute_seconds: float = 0.0
    failed_frames: list[int] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    batch_size_changes: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def seconds_per_frame(self) -> float | None:
        return self.compute_seconds / self.computed if self.computed else None

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["seconds_per_frame"] = self.seconds_per_frame
        return d


@attrs.define
class ExportResult:
    """The outcome of `run_export`: per-representation stats and where metadata and log went."""

    run_id: str
    output_dir: Path
    frames: list[int]
    stats: dict[str, RepresentationStats]
    started: str
    ended: str
    seconds: float
    status: str
    error: str | None
    log_file: Path
    metadata_file: Path

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        """A table of frames computed / skipped / failed and time per frame."""
        rows = [("representation", "computed", "skipped", "failed", "batch", "ms/frame")]
        for s in self.stats.values():
            spf = s.seconds_per_frame
            rows.append((s.name, str(s.computed), str(s.skipped), str(s.failed), str(s.batch_size),
                         f"{spf * 1000:.1f}" if spf is not None else "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in rows]
        lines.append(f"run {self.run_id}: {self.status} in {self.seconds:.1f}s, {len(self.frames)} frames selected; "
                     f"output {self.output_dir}")
        return "\n".join(lines)


def run_export(graph: Graph, video: FrameSource | str | os.PathLike[str], output_dir: str | os.PathLike[str] | Store, *,
               frames: Any = None, overwrite: bool = False, exception_mode: str = "stop", device: str = "cpu",
               writers: int = 2, progress: bool = False, video_backend: str = "auto", threads: int | None = None,
               config: Mapping[str, Any] | None = None, raise_on_error: bool = True) -> ExportResult:
    """Export every selected frame of every representation of ``graph`` into ``output_dir``
    (a folder, or any `vrecore.store.Store`).

    A re-run computes only what is missing; ``overwrite`` recomputes and replaces. With
    ``exception_mode="skip"`` a failing representation is recorded and the others go on.
    ``threads`` caps torch's and OpenCV's compute threads for the run (on a busy machine two threads
    per process can be several times slower than one); None leaves the libraries' defaults.
    """
    if exception_mode not in EXCEPTION_MODES:
        raise ConfigError(f"exception_mode {exception_mode!r} is not one of {', '.join(EXCEPTION_MODES)}")
    if writers < 1:
        raise ConfigError(f"writers must be at least 1, got {writers}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or null, got {threads!r}")
    source = video if isinstance(video, FrameSource) else open_video(video, video_backend)
    owns_source = source is not video
    try:
        store = output_dir if isinstance(output_dir, Store) else DirectoryStore(output_dir)
        export = _Export(graph, source, store, select_frames(frames, source.num_frames), overwrite=overwrite,
                         exception_mode=exception_mode, device=device, writers=writers, progress=progress,
                         config=config, threads=threads)
        result = export.run()
    finally:
        if owns_source:
            source.close()
    if export.user_error is not None and raise_on_error:
        raise export.user_error
    if not result.ok and raise_on_error:
        raise ExportError(f"{result.error} (the log is {result.log_file}; frames already written are kept)")
    return result


# -- shared with the streaming engine (vrecore.streaming.graph): one way to feed and finish a node --
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



def dependency_inputs(rep: Representation, gather: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """Role → memory-form input of ``rep``'s dependencies, as `compute` receives them in `Batch.deps`.

    ``gather(name)`` returns the batch of the dependency called ``name``; a ``many`` role gets a
    tuple of them, in config order.
    """
    deps: dict[str, Any] = {}
    for role, dep in rep.dependencies.items():
        deps[role] = tuple(gather(d.name) for d in dep) if isinstance(dep, tuple) else gather(dep.name)
    return deps


def finish_output(node: Node, out: Any, n: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """Check what ``compute`` returned for a batch of ``n`` frames and resize it to the node's output size.

    The output size is the node's ``output_size`` setting, else the frame size (H, W).
    """
    out = np.asarray(out)
    rep = node.representation
    spec = rep.output_spec()
    if out.ndim != 4 or out.shape[0] != n or out.shape[-1] != spec.channels:
        raise ValueError(f"compute() returned shape {out.shape}; expected ({n}, H, W, {spec.channels}) "
                         f"(a bug in the {node.type_name} plugin)")
    return rep.resize(out, node.settings.output_size or frame_shape)


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (host MemoryError, torch's OutOfMemoryError, CUDA text)."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def release_accelerator_memory() -> None:
    """Return cached accelerator memory after an out-of-memory error (no-op without torch/CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Stop(Exception):
    """Internal: a representation failed with exception_mode=stop."""


class _Export:
    def __init__(self, graph: Graph, source: FrameSource, store: Store, selected: np.ndarray, *,
                 overwrite: bool, exception_mode: str, device: str, writers: int, progress: bool,
                 config: Mapping[str, Any] | None, threads: int | None = None) -> None:
        self.graph, self.source, self.store = graph, source, store
        self.selected = [int(i) for i in selected]
        self.overwrite, self.exception_mode, self.device = overwrite, exception_mode, device
        self.writers, self.progress, self.config, self.threads = writers, progress, config, threads
        self._restore_threads: list[Callable[[], None]] = []
        self.run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.stats = {n.name: RepresentationStats(n.name, n.settings.batch_size) for n in graph}
        self.batch_size = {n.name: n.settings.batch_size for n in graph}
        self.failed: dict[str, set[int]] = {n.name: set() for n in graph}
        self.set_up: list[Node] = []
        self.error: str | None = None
        self.user_error: VreError | None = None
        self._lock = threading.Lock()
        last: dict[str, int] = {n.name: k for k, n in enumerate(graph)}
        for k, n in enumerate(graph):
            for d in n.dependency_names:
                last[d] = max(last[d], k)
        self._last_use: dict[int, list[str]] = {}
        for name, k in last.items():
            self._last_use.setdefault(k + 1, []).append(name)

    # -- planning --------------------------------------------------------------------------------
    def plan(self) -> None:
        """Which frames each representation computes, writes, and reads back from disk."""
        selected = set(self.selected)
        self.todo: dict[str, set[int]] = {}
        on_disk: dict[str, set[int]] = {}
        for node in self.graph:
            s = node.settings
            if s.writes:
                done = set() if self.overwrite else self.store.done_frames(
                    node.name, required_folders(s.binary_format, s.image_format))
                self.todo[node.name] = selected - done
                self.stats[node.name].skipped = len(selected & done)
            else:
                self.todo[node.name] = set()
            # A dependency stored as npz by an earlier run is read back instead of recomputed.
            on_disk[node.name] = set() if self.overwrite else self.store.done_frames(node.name, ["npz"])
        self.need: dict[str, set[int]] = {}
        self.load: dict[str, set[int]] = {n.name: set() for n in self.graph}
        for node in reversed(self.graph.nodes):
            wanted = set().union(*(self.need[c] for c in self.graph.dependents(node.name)))
            from_disk = (wanted - self.todo[node.name]) & on_disk[node.name]
            self.load[node.name] = from_disk
            self.need[node.name] = self.todo[node.name] | (wanted - from_disk)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> ExportResult:
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        log_file = self.store.logs / f"log_{self.run_id}.txt"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("vrecore")
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(min(old_level or logging.INFO, logging.INFO))
        status = "ok"
        try:
            removed = self.store.remove_stale_temporaries(self.graph.names)
            log.info("run %s: video %s (%d frames), %d selected, representations %s%s", self.run_id,
                     self.source.path, self.source.num_frames, len(self.selected), ", ".join(self.graph.names),
                     f"; removed {removed} stale temporary files" if removed else "")
            self.plan()
            preflight([n for n in self.graph if n.representation.learned and self.need[n.name]])
            metadata_file = self._write_run_metadata(started, None, "running", None)
            self._loop()
        except _Stop:
            status = "failed"
        except KeyboardInterrupt:
            status, self.error = "interrupted", "interrupted by the user"
            raise
        except VreError as e:
            status, self.error, self.user_error = "failed", str(e), e
            log.error("%s", e)
        except Exception as e:  # a bug: recorded in the metadata and the log, then raised
            status, self.error = "failed", f"{type(e).__name__}: {e}"
            log.exception("run %s failed", self.run_id)
            raise
        finally:
            for node in self.set_up:
                with contextlib.suppress(Exception):
                    node.representation.teardown()
            for restore in self._restore_threads:
                restore()
            ended = datetime.now(timezone.utc)
            for node in self.graph:
                if node.settings.writes and self.stats[node.name].computed + self.stats[node.name].failed:
                    with self.store.lock(node.name):
                        write_representation_metadata(self.store, node)
            metadata_file = self._write_run_metadata(started, ended, status, self.error)
            log.info("run %s %s in %.2fs", self.run_id, status, time.perf_counter() - t0)
            root.removeHandler(handler)
            root.setLevel(old_level)
            handler.close()
        return ExportResult(self.run_id, self.store.root, self.selected, self.stats, started.isoformat(),
                            ended.isoformat(), time.perf_counter() - t0, status, self.error, log_file, metadata_file)

    def _chunks(self) -> Iterator[list[int]]:
        frames = sorted(set().union(*self.need.values()))
        size = max((self.batch_size[n.name] for n in self.graph if self.need[n.name]), default=1)
        for k in range(0, len(frames), size):
            yield frames[k:k + size]

    def _decode(self, chunks: Sequence[list[int]], out: queue.Queue[Any], stop: threading.Event) -> None:
        readers = [n for n in self.graph if n.representation.uses_frames or n.representation.frame_offsets()]
        last = self.source.num_frames - 1
        back = max((-d for n in readers for d in n.representation.frame_offsets() if d < 0), default=0)
        carried: dict[int, np.ndarray] = {}  # frames decoded for the previous chunk (neighbours): never twice
        try:
            for chunk in chunks:
                wanted_set: set[int] = set()
                for n in readers:
                    mine = self.need[n.name] & set(chunk)
                    wanted_set |= mine
                    for d in n.representation.frame_offsets():
                        wanted_set |= {min(max(i + d, 0), last) for i in mine}
                wanted = sorted(wanted_set)
                fresh = [i for i in wanted if i not in carried]
                got = self.source.get_batch(fresh) if fresh else None
                rows = {i: got[k] for k, i in enumerate(fresh)} if got is not None else {}
                rows.update({i: carried[i] for i in wanted if i in carried})
                decoded = np.stack([rows[i] for i in wanted]) if wanted else None
                carried = {i: rows[i] for i in wanted if i >= chunk[-1] - back}
                item = (chunk, {i: k for k, i in enumerate(wanted)}, decoded)
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the compute loop, which raises it
            out.put(e)
            return
        out.put(None)

    def _loop(self) -> None:
        self._limit_threads()
        chunks = list(self._chunks())
        if not chunks:
            log.info("nothing to do: every selected frame is already exported")
            return
        bars = self._progress_bars()
        decoded: queue.Queue[Any] = queue.Queue(maxsize=2)
        stop = threading.Event()
        decoder = threading.Thread(target=self._decode, args=(chunks, decoded, stop), name="vre-decode", daemon=True)
        decoder.start()
        pending: list[Future[None]] = []
        slots = threading.BoundedSemaphore(self.writers * 2)
        try:
            with ThreadPoolExecutor(self.writers, thread_name_prefix="vre-write") as pool:
                while True:
                    item = decoded.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    self._chunk(*item, pool=pool, slots=slots, pending=pending, bars=bars)
                    pending = _reap(pending)
                for f in pending:
                    f.result()
        finally:
            stop.set()
            for bar in bars.values():
                bar.close()

    def _progress_bars(self) -> dict[str, Any]:
        if not self.progress:
            return {}
        from tqdm import tqdm

        todo = [n.name for n in self.graph if self.todo[n.name]]
        return {name: tqdm(total=len(self.todo[name]), desc=name, position=k, unit="frame", leave=True,
                           dynamic_ncols=True) for k, name in enumerate(todo)}

    def _chunk(self, chunk: list[int], row_of: Mapping[int, int], frames: np.ndarray | None, *,
               pool: ThreadPoolExecutor, slots: threading.BoundedSemaphore, pending: list[Future[None]],
               bars: Mapping[str, Any]) -> None:
        memory: dict[str, dict[int, np.ndarray]] = {}
        chunk_set = set(chunk)
        for position, node in enumerate(self.graph):
            name = node.name
            memory[name] = {}
            # Outputs no later representation needs are dropped (writers hold their own reference),
            # so a chunk of wide maps (e.g. 133-class probabilities) does not pile up in memory.
            for done in self._last_use.get(position, ()):
                memory.pop(done, None)
            wanted = self.need[name] & chunk_set
            blocked = {i for i in wanted if any(i in self.failed[d] for d in node.dependency_names)}
            if blocked:
                self._fail(node, sorted(blocked), f"a dependency of '{name}' failed on these frames", None)
            ix = sorted(wanted - blocked)
            if not ix:
                continue
            if node.representation.learned and node not in self.set_up:
                log.info("setting up %s (%s) on %s", name, node.type_name, self.device)
                node.representation.setup(self.device)
                self.set_up.append(node)
                self._limit_threads()
            k = 0
            while k < len(ix):
                part = ix[k:k + self.batch_size[name]]
                try:
                    out, seconds = self._compute(node, part, memory, row_of, frames)
                except _Retry:
                    continue
                except _Stop:
                    raise
                except Exception as e:
                    self._fail(node, part, f"{type(e).__name__}: {e}", traceback.format_exc())
                    if self.exception_mode == "stop":
                        self.error = f"representation '{name}' failed on frames {part[0]}..{part[-1]}: {e}"
                        raise _Stop() from e
                    k += len(part)
                    continue
                k += len(part)
                shared = self._as_stored(node, out) if self.graph.dependents(name) else out
                for j, i in enumerate(part):
                    memory[name][i] = shared[j]
                stats = self.stats[name]
                stats.computed += sum(1 for i in part if i in self.todo[name])
                stats.compute_seconds += seconds * sum(1 for i in part if i in self.todo[name]) / len(part)
                to_write = [j for j, i in enumerate(part) if i in self.todo[name]]
                if to_write:
                    slots.acquire()
                    # Slicing (not fancy indexing) keeps a view: no copy of the batch.
                    rows = out if len(to_write) == len(part) else out[to_write]
                    fut = pool.submit(self._write, node, [part[j] for j in to_write], rows,
                                      seconds / len(part), bars.get(name))
                    fut.add_done_callback(lambda _f: slots.release())
                    pending.append(fut)

    def _compute(self, node: Node, part: list[int], memory: Mapping[str, Mapping[int, np.ndarray]],
                 row_of: Mapping[int, int], frames: np.ndarray | None) -> tuple[np.ndarray, float]:
        rep = node.representation
        deps = dependency_inputs(rep, lambda name: self._gather(name, part, memory))
        batch_frames = None
        if rep.uses_frames and frames is not None:
            rows = [row_of[i] for i in part]
            contiguous = rows == list(range(rows[0], rows[0] + len(rows)))
            batch_frames = frames[rows[0]:rows[0] + len(rows)] if contiguous else frames[rows]
        neighbours: dict[int, np.ndarray] = {}
        neighbour_indices: dict[int, np.ndarray] = {}
        if frames is not None:
            last = self.source.num_frames - 1
            for d in rep.frame_offsets():
                near = np.clip(np.asarray(part) + d, 0, last)
                neighbour_indices[d] = near
                neighbours[d] = frames[[row_of[int(i)] for i in near]]
        t = time.perf_counter()
        try:
            out = rep.compute(Batch(indices=np.asarray(part), frames=batch_frames, deps=deps, neighbours=neighbours,
                                    neighbour_indices=neighbour_indices))
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            release_accelerator_memory()
            old = self.batch_size[node.name]
            if min(old, len(part)) <= 1:
                raise
            new = max(1, min(old, len(part)) // 2)
            self.batch_size[node.name] = new
            self.stats[node.name].batch_size = new
            self.stats[node.name].batch_size_changes.append(
                {"frame": part[0], "from": old, "to": new, "error": f"{type(e).__name__}: {e}"[:300]})
            log.warning("%s: out of memory at batch size %d on frames %d..%d; retrying at %d", node.name, old,
                        part[0], part[-1], new)
            raise _Retry() from e
        seconds = time.perf_counter() - t
        return finish_output(node, out, len(part), self.source.frame_shape), seconds

    def _limit_threads(self) -> None:
        """Apply ``threads`` to OpenCV and (once a learned type has imported it) torch, restoring both at the end."""
        if self.threads is None:
            return
        import cv2

        if not self._restore_threads:
            before_cv = cv2.getNumThreads()
            cv2.setNumThreads(self.threads)
            self._restore_threads.append(lambda: cv2.setNumThreads(before_cv))
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != self.threads:
            before_torch = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            self._restore_threads.append(lambda: torch.set_num_threads(before_torch))

    def _as_stored(self, node: Node, out: np.ndarray) -> np.ndarray:
        """What dependents would read back from disk, so that a result never depends on whether its
        dependency was computed in this run or an earlier one (e.g. float32 depth stored as float16)."""
        s, rep = node.settings, node.representation
        if not s.export or s.binary_format == "none":
            return out
        disk = rep.to_disk(out)
        if s.output_dtype is not None:
            disk = disk.astype(s.output_dtype, copy=False)
        return rep.from_disk(disk)

    def _gather(self, dep: str, part: list[int], memory: Mapping[str, Mapping[int, np.ndarray]]) -> np.ndarray:
        have = memory.get(dep, {})
        rep = self.graph[dep].representation
        rows = [have[i] if i in have else rep.from_disk(self.store.read_frame(dep, i)[None])[0] for i in part]
        base = rows[0].base
        if base is not None and all(r.base is base for r in rows) and base.ndim == 4 and len(rows) > 0:
            # Consecutive rows of one computed batch: hand over a view instead of stacking a copy.
            start = _row_index(base, rows[0])
            if start is not None and all(_row_index(base, r) == start + k for k, r in enumerate(rows)):
                return base[start:start + len(rows)]
        return np.stack(rows)

    def _write(self, node: Node, indices: list[int], out: np.ndarray, seconds_per_frame: float, bar: Any) -> None:
        s, rep = node.settings, node.representation
        try:
            binary = None
            if s.binary_format != "none":
                binary = rep.to_disk(out)
                if s.output_dtype is not None:
                    binary = binary.astype(s.output_dtype)
            images = rep.make_images(out) if s.image_format != "none" else None
            formats = required_folders(s.binary_format, s.image_format)
            records = []
            for j, i in enumerate(indices):
                self.store.write_frame(node.name, i, None if binary is None else binary[j],
                                       s.binary_format == "npz-compressed",
                                       None if images is None else images[j], s.image_format)
                records.append({"frame": i, "run": self.run_id, "seconds": round(seconds_per_frame, 6),
                                "formats": formats})
            self.store.append_records(node.name, records)
        except Exception as e:
            self._fail(node, indices, f"writing failed: {type(e).__name__}: {e}", traceback.format_exc())
            with self._lock:
                self.stats[node.name].computed -= len(indices)
            if self.exception_mode == "stop":
                self.error = f"representation '{node.name}': writing frames {indices[0]}..{indices[-1]} failed: {e}"
                raise _Stop() from e
        finally:
            if bar is not None:
                bar.update(len(indices))

    def _fail(self, node: Node, frames: list[int], message: str, tb: str | None) -> None:
        with self._lock:
            stats = self.stats[node.name]
            new = [i for i in frames if i not in self.failed[node.name]]
            self.failed[node.name].update(new)
            stats.failed += sum(1 for i in new if i in self.todo[node.name])
            stats.failed_frames.extend(i for i in new if i in self.todo[node.name])
            stats.errors.append(f"frames {frames[0]}..{frames[-1]}: {message}")
        log.error("%s failed on frames %s: %s%s", node.name, _ranges(frames), message, f"\n{tb}" if tb else "")

    def _write_run_metadata(self, started: datetime, ended: datetime | None, status: str,
                            error: str | None) -> Path:
        from vrecore import __version__

        return self.store.write_run_metadata(self.run_id, {
            "run_id": self.run_id, "vre_version": __version__, "status": status, "error": error,
            "started": started.isoformat(), "ended": ended.isoformat() if ended else None,
            "seconds": (ended - started).total_seconds() if ended else None,
            "host": socket.gethostname(), "pid": os.getpid(), "video": str(self.source.path),
            "video_frames": self.source.num_frames, "fps": self.source.fps,
            "frames": _ranges(self.selected), "device": self.device, "overwrite": self.overwrite,
            "exception_mode": self.exception_mode, "config": dict(self.config) if self.config else None,
            "graph": self.graph.to_config(),
            "representations": {name: s.to_dict() for name, s in self.stats.items()},
        })


def _row_index(base: np.ndarray, row: np.ndarray) -> int | None:
    """Index of ``row`` within the 4-D ``base`` it was sliced from, or None."""
    offset = row.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    stride = base.strides[0]
    if row.shape != base.shape[1:] or offset % stride:
        return None
    return offset // stride


def _reap(pending: list[Future[None]]) -> list[Future[None]]:
    """Drop finished writes, re-raising a writer's failure in the compute loop."""
    still = []
    for f in pending:
        if f.done():
            f.result()
        else:
            still.append(f)
    return still


class _Retry(Exception):
    """Internal: the batch size was halved after an out-of-memory error; compute again."""


def _ranges(frames: Sequence[int]) -> str:
    """Compact text of sorted frame indices: '0..9, 12, 20..24' (ends inclusive)."""
    out, frames = [], sorted(frames)
    k = 0
    while k < len(frames):
        j = k
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        out.append(str(frames[k]) if j == k else f"{frames[k]}..{frames[j]}")
        k = j + 1
    return ", ".join(out)
