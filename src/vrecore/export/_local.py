"""The local transport of the worker pool: one spawned process per worker, tasks and events through queues.

Workers end with the main process, even when it is killed with -9 or by the out-of-memory killer
(`end_with_parent`), ignore Ctrl-C (the main process gets it and halts them after the frames in flight),
and a worker that exits without a word is reported dead with its exit code or signal.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from vrecore.export.chunks import Task
from vrecore.export.schedule import WorkerSlot
from vrecore.export.worker import (
    Died,
    Done,
    Ended,
    Failed,
    Ready,
    WorkerEvent,
    WorkerJob,
    close_worker,
    open_job_store,
    open_worker,
)

__all__ = ["LocalTransport", "end_with_parent"]


class LocalTransport:
    """Workers as ``spawn``-ed processes on this machine (`vrecore.export.pool.Transport`)."""

    noun = "worker"

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._events: Any = self._ctx.Queue()
        self._halt = self._ctx.Event()
        self._tasks: dict[int, Any] = {}
        self._procs: dict[int, Any] = {}
        self._ready: set[int] = set()
        self._gone: set[int] = set()
        """Workers that said "ended" or were found dead."""

    def start(self, job: WorkerJob, slot: WorkerSlot) -> int | None:
        tasks = self._tasks[slot.index] = self._ctx.Queue()
        p = self._ctx.Process(target=_worker_main, args=(job, slot, tasks, self._events, self._halt, os.getpid()),
                              name=f"vre-worker-{slot.index}", daemon=True)
        p.start()
        self._procs[slot.index] = p
        return p.pid

    def submit(self, index: int, task: Task) -> None:
        self._tasks[index].put(task)

    def retire(self, index: int) -> None:
        self._tasks[index].put(None)  # the worker leaves when it takes it

    def halt(self) -> None:
        self._halt.set()

    def poll(self, timeout: float) -> list[WorkerEvent]:
        # Exited before the queue is drained: all a worker said before it exited is read first.
        exited = [i for i, p in self._procs.items() if i not in self._gone and not p.is_alive()]
        out: list[WorkerEvent] = []
        try:
            item = self._events.get_nowait() if exited else self._events.get(timeout=timeout)
            while True:
                out.append(self._event(*item))
                item = self._events.get_nowait()
        except queue.Empty:
            pass
        return out + [self._died(i) for i in exited if i not in self._gone]

    def _event(self, kind: str, index: int, *rest: Any) -> WorkerEvent:
        if kind == "ready":
            self._ready.add(index)
            return Ready(index, rest[0])
        if kind == "done":
            return Done(index, rest[0])
        if kind == "error":
            return Failed(index, rest[0], rest[1])
        self._gone.add(index)
        self._procs[index].join(timeout=10)
        return Ended(index, rest[0])

    def _died(self, index: int) -> Died:
        """A worker that exited without saying "ended": killed or crashed."""
        self._gone.add(index)
        code = self._procs[index].exitcode
        cause = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        hint = ""
        if index not in self._ready and code == 1:
            hint = (" before it started: a script that runs an export with workers needs its code under "
                    "`if __name__ == '__main__':` (worker processes import it again), as multiprocessing requires")
        return Died(index, cause, hint)

    def close(self) -> None:
        self._halt.set()
        for p in self._procs.values():
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


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
    """A worker process: set up its group on its device, then compute the tasks it is given until told to stop."""
    end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us cleanly
    from vrecore.errors import VreError
    from vrecore.export.runlog import RunLog

    runlog = RunLog(open_job_store(job), job.run_id, suffix=f".w{slot.index}")
    runner = None
    try:
        with runlog.capturing():
            runner = open_worker(job, slot)
            events.put(("ready", slot.index, os.getpid()))

            def take() -> Iterator[Task]:
                while not halt.is_set():  # halt: Ctrl-C or a failure; no new task starts
                    try:
                        task = tasks.get(timeout=0.5)
                    except queue.Empty:
                        if os.getppid() != parent:  # the main process is gone
                            return
                        continue
                    if task is None:  # retired
                        return
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
        events.put(("ended", slot.index, close_worker(runner)))
        time.sleep(0.05)  # let the queue's feeder thread flush
