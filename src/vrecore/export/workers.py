"""Worker processes on one machine: Strategy 1 (``workers=N``) and Strategy 2 (``placement``) of an export.

The main process plans (fingerprints, verification, preflight) and coordinates; each worker process
(started with ``spawn``) opens the video and the output folder itself, sets its group's models up
once on its device, and takes tasks (a chunk of frames for its group) from its group's queue one at a
time, so a slow worker never holds the end. Every worker writes into the one output folder (files are
renamed into place whole, records appended atomically). A worker that dies loses nothing the others
computed: its task goes to another worker of its group (or is left for the re-run when none is
left) and the run ends with an error naming it. Ctrl-C stops every worker after the frames in flight.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from vrecore.export.chunks import ChunkRunner, Task, TaskReport
from vrecore.export.schedule import Schedule, WorkerSlot

__all__ = ["WorkerJob", "WorkerRecord", "run_workers"]

log = logging.getLogger("vrecore.export.workers")


@attrs.frozen
class WorkerJob:
    """Everything a worker process needs to rebuild its share of the run (picklable)."""

    graph_config: dict[str, Any]
    plugins: dict[str, tuple[str, str | None]]
    """Plugins the parent registered in-process: distribution → (version, ``module:attribute``)."""
    video: str
    video_backend: str
    output_dir: str
    run_id: str
    need: dict[str, list[int]]
    todo: dict[str, list[int]]
    digests: dict[str, str]
    groups: dict[str, tuple[str, ...]]
    """Group → the representations it computes."""
    exception_mode: str = "stop"
    writers: int = 2
    durable: bool = False
    threads: int | None = None


@attrs.define
class WorkerRecord:
    """One worker of a run, as the run metadata lists it."""

    index: int
    group: str
    device: str
    pid: int | None = None
    tasks: int = 0
    frames: int = 0
    status: str = "starting"
    """starting, running, finished, failed (an error), died (killed or crashed)."""
    error: str | None = None
    stats: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def run_workers(job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], *, stop: threading.Event,
                on_report: Callable[[TaskReport], None]) -> list[WorkerRecord]:
    """Run ``schedule``'s tasks on one process per slot; returns what each worker did."""
    ctx = mp.get_context("spawn")
    task_queues = {g: ctx.Queue() for g in schedule.groups}
    events: Any = ctx.Queue()
    halt = ctx.Event()
    records = {s.index: WorkerRecord(s.index, s.group, s.device) for s in slots}
    procs = {}
    for slot in slots:
        p = ctx.Process(target=_worker_main, args=(job, slot, task_queues[slot.group], events, halt, os.getpid()),
                        name=f"vre-worker-{slot.index}", daemon=True)
        p.start()
        procs[slot.index] = p
        records[slot.index].pid = p.pid
    finished: set[int] = set()
    sent_sentinels = False

    def hand_out() -> None:
        for task in schedule.ready():
            task_queues[task.group].put(task)

    hand_out()
    try:
        while len(finished) < len(procs):
            if stop.is_set() and not halt.is_set():
                halt.set()
            if schedule.finished and not sent_sentinels:
                for g, q in task_queues.items():
                    for _ in range(sum(1 for s in slots if s.group == g)):
                        q.put(None)  # nothing left: each worker leaves when it takes one
                sent_sentinels = True
            try:
                kind, index, *rest = events.get(timeout=0.2)
            except queue.Empty:
                _check_dead(procs, records, finished, schedule, slots, hand_out)
                continue
            record = records[index]
            if kind == "ready":
                record.status = "running"
            elif kind == "take":
                schedule.take(index, rest[0])
            elif kind == "done":
                report: TaskReport = rest[0]
                schedule.finish(index, report.task.id)
                record.tasks += 1
                record.frames += len(report.task.frames)
                on_report(report)
                hand_out()
            elif kind == "error":
                record.status, record.error = "failed", rest[0]
                if job.exception_mode == "stop" or rest[1]:
                    halt.set()  # a failure stops every worker, as it stops a single process
            elif kind == "finished":
                record.stats = rest[0]
                if record.status == "running":
                    record.status = "finished"
                finished.add(index)
                procs[index].join(timeout=10)
                alive = [s.index for s in slots if s.group == record.group and s.index not in finished]
                if schedule.orphaned(index, requeue=bool(alive) and not halt.is_set()):
                    hand_out()  # it failed holding tasks: another worker takes them, or the re-run does
                if not alive:
                    schedule.lose_group(record.group)
    finally:
        halt.set()
        for p in procs.values():
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return [records[i] for i in sorted(records)]


def _check_dead(procs: Mapping[int, Any], records: Mapping[int, WorkerRecord], finished: set[int], schedule: Schedule,
                slots: Sequence[WorkerSlot], hand_out: Callable[[], None]) -> None:
    """A worker that exited without saying "finished" died: its tasks go to a live worker of its group,
    or are left for the re-run."""
    for index, p in procs.items():
        if index in finished or p.is_alive():
            continue
        finished.add(index)
        record = records[index]
        code = p.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        group = record.group
        alive = [s.index for s in slots if s.group == group and s.index not in finished]
        held = sorted(schedule.held.get(index, set()) - schedule.done)
        tasks = schedule.orphaned(index, requeue=bool(alive))
        what = schedule.describe([t.id for t in tasks]) if tasks else "no task in flight"
        fate = "handed to another worker" if alive and held else "left for the re-run" if held else ""
        hint = ""
        if record.status == "starting" and code == 1:
            hint = (" before it started: a script that runs an export with workers needs its code under "
                    "`if __name__ == '__main__':` (worker processes import it again), as multiprocessing requires")
        record.status = "died"
        record.error = (f"worker {index} (pid {p.pid}, {record.device}) died ({how}){hint}; "
                        f"{what}{' ' + fate if fate else ''}")
        log.error("%s", record.error)
        if not alive:
            schedule.lose_group(group)
        hand_out()


# -- the worker process ----------------------------------------------------------------------------------
def open_worker(job: WorkerJob, slot: WorkerSlot) -> ChunkRunner:
    """What a worker (process or Ray actor) builds once: its graph, video, store, executor and writers."""
    from vrecore.frames.video import open_video
    from vrecore.graph.build import build_graph
    from vrecore.graph.executor import Executor, thread_limit
    from vrecore.graph.registry import get_registry, register_from_targets
    from vrecore.store.directory import DirectoryStore

    register_from_targets(get_registry(), job.plugins)
    graph = build_graph(job.graph_config)
    nodes = [graph[n] for n in job.groups[slot.group]]
    executor = Executor(graph, nodes=nodes, device=slot.device, exception_mode=job.exception_mode,
                        threads=thread_limit(job.threads))
    source = open_video(job.video, job.video_backend)
    runner = ChunkRunner(graph, source, DirectoryStore(job.output_dir), executor,
                         need={k: set(v) for k, v in job.need.items()}, todo={k: set(v) for k, v in job.todo.items()},
                         digests=job.digests, run_id=job.run_id, writers=job.writers, durable=job.durable,
                         exception_mode=job.exception_mode)
    log.info("worker %d (pid %d) on %s computes %s", slot.index, os.getpid(), slot.device,
             ", ".join(job.groups[slot.group]))
    return runner


def close_worker(runner: ChunkRunner | None) -> dict[str, Any]:
    """Close a worker's runner; returns its executor's statistics (per representation, as dicts)."""
    if runner is None:
        return {}
    try:
        runner.close()
    except BaseException:  # noqa: BLE001 - the worker is ending anyway
        log.warning("closing the worker failed", exc_info=True)
    return {name: attrs.asdict(s) for name, s in runner.executor.stats.items()}


def end_with_parent(parent: int, *, poll: float = 1.0) -> None:
    """Make this process end when process ``parent`` does, even by kill -9 or the out-of-memory killer: the
    kernel's parent-death signal on Linux, and a watchdog thread that polls the parent's pid everywhere (the
    signal fires when the parent *thread* ends, and it is not set if the parent died before this ran)."""
    import ctypes
    import ctypes.util

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)  # reparented: the main process is gone and nobody collects what we compute

    threading.Thread(target=watch, daemon=True, name="vre-parent-watchdog").start()


def _worker_main(job: WorkerJob, slot: WorkerSlot, tasks: Any, events: Any, halt: Any, parent: int) -> None:
    """A worker process: set up its group on its device, then compute tasks until told to stop."""
    end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us cleanly
    from vrecore.errors import VreError
    from vrecore.export.runlog import RunLog
    from vrecore.store.directory import DirectoryStore

    runlog = RunLog(DirectoryStore(job.output_dir), job.run_id, suffix=f".w{slot.index}")
    runner = None
    try:
        with runlog.capturing():
            runner = open_worker(job, slot)
            events.put(("ready", slot.index))

            def take() -> Iterator[Task]:
                while not halt.is_set():  # halt: Ctrl-C or a failure; no new task starts
                    try:
                        task = tasks.get(timeout=0.5)
                    except queue.Empty:
                        if os.getppid() != parent:  # the main process is gone
                            return
                        continue
                    if task is None:  # nothing left
                        return
                    events.put(("take", slot.index, task.id))
                    yield task

            with runner.executor.threads or contextlib.nullcontext():
                runner.run(take(), stop=halt, prefetch=0,
                           on_done=lambda report: events.put(("done", slot.index, report)))
    except VreError as e:
        events.put(("error", slot.index, f"worker {slot.index}: {e}", True))
    except BaseException as e:  # noqa: BLE001 - a bug: reported with its traceback, then the worker ends
        events.put(("error", slot.index, f"worker {slot.index}: {type(e).__name__}: {e}\n{traceback.format_exc()}",
                    False))
    finally:
        events.put(("finished", slot.index, close_worker(runner)))
        time.sleep(0.05)  # let the queue's feeder thread flush


def plugin_targets() -> dict[str, tuple[str, str | None]]:
    """The plugins this process registered, with their import paths, for `WorkerJob.plugins`."""
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    return {dist: (registry.versions.get(dist, "0"), target) for dist, target in registry.targets.items()}


def job_video(source: Any) -> str:
    """The path a worker reopens the video from (a FrameSource made in memory cannot be shared)."""
    path = Path(getattr(source, "path", ""))
    if not str(path) or not path.exists():
        from vrecore.errors import ConfigError

        raise ConfigError("workers > 1 needs a video file or an image folder (a frame source made in memory cannot "
                          "be opened by other processes); pass its path")
    return str(path)
