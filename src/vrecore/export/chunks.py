"""The work of one process on an export plan: decode, compute and store chunks of frames.

A `ChunkRunner` owns a frame source, an executor (`vrecore.graph.executor`) and writer threads
(`vrecore.export.writer`). `ChunkRunner.run` takes tasks (a chunk of frames for a group of
representations) from any iterable: the plan itself in a single-process export, a shared queue in a
worker process, one call at a time in a Ray actor. A decoding thread prepares the next task while
the current one computes, and a task counts as done only once its frames are written.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from vrecore.errors import SourceError, StorageError
from vrecore.export.writer import FrameWriter
from vrecore.frames.video import FrameSource
from vrecore.graph.build import Graph, Node
from vrecore.graph.executor import Executor, NodeOutput, VideoFrames
from vrecore.store.base import Store

__all__ = ["ChunkRunner", "Task", "TaskReport"]

log = logging.getLogger("vrecore.export.chunks")


@attrs.frozen
class Task:
    """Frames of a chunk to compute for one group of representations (``"*"``: all of them)."""

    id: int
    frames: tuple[int, ...]
    group: str = "*"


@attrs.define
class TaskReport:
    """What a task did: frames written and failed per representation."""

    task: Task
    written: dict[str, list[int]] = attrs.field(factory=dict)
    failed: dict[str, list[int]] = attrs.field(factory=dict)


class ChunkRunner:
    """Decodes, computes and stores tasks for the representations ``nodes`` of ``graph``.

    ``need`` and ``todo`` are the plan's frame sets per representation (computed; computed and
    stored). A dependency outside ``nodes`` (another group's, or stored by an earlier run) is read
    from the store.
    """

    def __init__(self, graph: Graph, source: FrameSource, store: Store, executor: Executor, *,
                 need: Mapping[str, Collection[int]], todo: Mapping[str, Collection[int]], digests: Mapping[str, str],
                 run_id: str, writers: int = 2, durable: bool = False, exception_mode: str = "stop",
                 on_written: Callable[[str, list[int]], None] | None = None,
                 on_failed: Callable[[str, list[int], str, str], None] | None = None) -> None:
        self.graph, self.source, self.store, self.executor = graph, source, store, executor
        self.nodes = executor.nodes
        self.need = {n.name: set(need.get(n.name, ())) for n in self.nodes}
        self.todo = {n.name: set(todo.get(n.name, ())) for n in self.nodes}
        self.exception_mode = exception_mode
        self._reports: dict[int, TaskReport] = {}
        self._lock = threading.Lock()
        self._on_written, self._on_failed = on_written, on_failed
        self.writer = FrameWriter(store, run_id, digests, writers=writers, durable=durable,
                                  exception_mode=exception_mode, on_written=self._written, on_failed=self._write_failed)
        self._readers = [n for n in self.nodes if n.representation.uses_frames or n.representation.frame_offsets()]
        self._back = max((-d for n in self._readers for d in n.representation.frame_offsets() if d < 0), default=0)
        self._carried: dict[int, np.ndarray] = {}

    # -- decoding ----------------------------------------------------------------------------------
    def decode(self, task: Task) -> tuple[Task, VideoFrames, dict[int, str]]:
        """The frames ``task`` needs (its own and the neighbours types ask for), each decoded once: frames
        of the previous task that a neighbour asks for again are kept."""
        frames = set(task.frames)
        last = self.source.num_frames - 1
        wanted: set[int] = set()
        for node in self._readers:
            mine = self.need[node.name] & frames
            wanted |= mine
            for d in node.representation.frame_offsets():
                wanted |= {min(max(i + d, 0), last) for i in mine}
        rows, bad = self._decode_frames(sorted(wanted - self._carried.keys()))
        rows.update({i: self._carried[i] for i in wanted if i in self._carried})
        top = max(task.frames, default=0)
        self._carried = {i: f for i, f in rows.items() if i >= top - self._back}
        return task, VideoFrames(rows, self.source.num_frames, self.source.frame_shape), bad

    def _decode_frames(self, indices: list[int]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """Decoded frames by index; with exception_mode=skip, frames that cannot be decoded are returned
        apart (index → why) instead of stopping the run."""
        if not indices:
            return {}, {}
        try:
            got = self.source.get_batch(indices)
            return {i: got[k] for k, i in enumerate(indices)}, {}
        except SourceError:
            if self.exception_mode != "skip":
                raise
        rows: dict[int, np.ndarray] = {}
        bad: dict[int, str] = {}
        for i in indices:
            try:
                rows[i] = self.source.get_batch([i])[0]
            except SourceError as e:
                bad[i] = str(e)
                log.warning("frame %d cannot be decoded and is skipped: %s", i, e)
        return rows, bad

    # -- computing ---------------------------------------------------------------------------------
    def compute(self, task: Task, frames: VideoFrames, bad: Mapping[int, str],
                should_stop: Callable[[], bool] | None = None) -> None:
        """Compute the task's frames of every representation (writes go on in the writer threads)."""
        chunk = set(task.frames)
        need = {name: wanted & chunk for name, wanted in self.need.items()}
        with self._lock:
            self._reports[task.id] = TaskReport(task)
        for node in self.nodes:
            offsets = (0, *node.representation.frame_offsets()) if node.representation.uses_frames else \
                node.representation.frame_offsets()
            undecodable = {i: bad[j] for i in need[node.name] for d in offsets
                           if (j := min(max(i + d, 0), self.source.num_frames - 1)) in bad}
            for i, why in undecodable.items():
                self.executor.fail_frames(node, [i], f"frame cannot be decoded: {why}")
                self._failed_in(task.id, node.name, [i])
            need[node.name] -= undecodable.keys()
        failed_before = {n.name: len(self.executor.failed[n.name]) for n in self.nodes}
        todo = self.todo

        def on_output(output: NodeOutput) -> None:
            self.writer.submit(output, [i for i in output.indices if i in todo[output.node.name]], tag=task.id)

        self.executor.run(frames, need, read_stored=self.read_stored, on_output=on_output, should_stop=should_stop)
        for node in self.nodes:
            failed = self.executor.failed[node.name]
            if len(failed) > failed_before[node.name]:
                self._failed_in(task.id, node.name, sorted(failed & chunk & todo[node.name]))

    def read_stored(self, node: Node, index: int) -> np.ndarray:
        """A dependency's stored frame, or one line naming the file and the fix."""
        try:
            return self.store.read_frame(node.name, index)
        except Exception as e:  # noqa: BLE001 - any unreadable file ends as one line naming it
            where = self.store.root / node.name / "npz" / f"{index}.npz"
            raise StorageError(f"representation '{node.name}': stored frame {index} ({where}) cannot be read "
                               f"({type(e).__name__}: {e}); run `vre verify {self.store.root} --repair`") from e

    # -- the pipeline ------------------------------------------------------------------------------
    def run(self, tasks: Iterable[Task], *, stop: Any = None,
            on_done: Callable[[TaskReport], None] | None = None, prefetch: int = 1) -> None:
        """Decode (in a thread, ``prefetch`` tasks ahead; 0: no thread, one task at a time), compute and store
        ``tasks`` until they end or ``stop`` (a threading or multiprocessing event) is set; ``on_done`` gets
        each task's report once its frames are written; a list of one task is decoded here too (a decoding thread
        would have nothing to overlap: a short clip)."""
        stop = stop or threading.Event()
        if prefetch == 0 or (isinstance(tasks, Sequence) and len(tasks) <= 1):
            # one task at a time, reported once written (a worker holds no task it has not started)
            try:
                for task in tasks:
                    if stop.is_set():
                        break
                    self.compute(*self.decode(task), should_stop=stop.is_set)
                    self.writer.wait_tag(task.id)
                    self._report_finished([task.id], on_done, all_written=True)
            finally:
                self.writer.drain()
            return
        decoded: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        halt = threading.Event()

        def offer(item: Any) -> bool:
            """Hand ``item`` to the compute loop, unless the run stops taking them (then False)."""
            while not (halt.is_set() or stop.is_set()):
                try:
                    decoded.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def decode_all() -> None:
            # Every hand-over gives up when the run stops: a plain put() of the last word (None, or an error) on a
            # full queue that nobody reads any more would keep this thread, and its decoded frames, for good.
            try:
                for task in tasks:
                    if halt.is_set() or stop.is_set() or not offer(self.decode(task)):
                        return
            except BaseException as e:  # handed to the compute loop, which raises it
                offer(e)
                return
            offer(None)

        decoder = threading.Thread(target=decode_all, name="vre-decode", daemon=True)
        decoder.start()
        pending = []
        try:
            while not stop.is_set():
                try:
                    item = decoded.get(timeout=0.1)
                except queue.Empty:  # (a stop set while waiting: the decoder then hands nothing more over)
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                task, frames, bad = item
                self.compute(task, frames, bad, should_stop=stop.is_set)
                pending.append(task.id)
                pending = self._report_finished(pending, on_done)
        finally:
            halt.set()
            self.writer.drain()
            decoder.join(timeout=5)
        self._report_finished(pending, on_done, all_written=True)

    def _report_finished(self, pending: Sequence[int], on_done: Callable[[TaskReport], None] | None, *,
                         all_written: bool = False) -> list[int]:
        still = []
        for task_id in pending:
            if all_written or self.writer.tag_done(task_id):
                with self._lock:
                    report = self._reports.pop(task_id)
                if on_done is not None:
                    on_done(report)
            else:
                still.append(task_id)
        return still

    def close(self) -> None:
        """Stop the writer threads and tear the executor's models down."""
        self.writer.close()
        self.executor.teardown()

    # -- counts ------------------------------------------------------------------------------------
    def _written(self, name: str, indices: list[int], tag: Any) -> None:
        with self._lock:
            report = self._reports.get(tag)
            if report is not None:
                report.written.setdefault(name, []).extend(indices)
        if self._on_written is not None:
            self._on_written(name, indices)

    def _failed_in(self, task_id: int, name: str, frames: list[int]) -> None:
        if not frames:
            return
        with self._lock:
            report = self._reports.get(task_id)
            if report is not None:
                report.failed.setdefault(name, []).extend(frames)

    def _write_failed(self, name: str, indices: list[int], message: str, tb: str, tag: Any) -> None:
        self._failed_in(tag, name, indices)
        if self._on_failed is not None:
            self._on_failed(name, indices, message, tb)
