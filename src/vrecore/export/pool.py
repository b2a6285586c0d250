"""The worker pool of a scaled-out export: one loop that hands a `Schedule`'s tasks to workers of any transport.

The main process plans (fingerprints, verification, preflight) and coordinates; each worker
(`vrecore.export.worker`: a local process, `vrecore.export._local`, or a Ray actor, `vrecore.export._ray`)
opens the video and the output folder itself, sets its group's models up once on its device, and computes
one task (a chunk of frames for its group) at a time, so a slow worker never holds the end. Every worker
writes into the one output folder (files are renamed into place whole, records appended atomically).
`run_pool` gives a ready task to each idle worker of its group, counts what each reports, hands a dead
worker's task to another worker of its group (or leaves it for the re-run when none is left), and on
Ctrl-C or a failure stops every worker after the frames in flight. A transport only starts workers,
passes tasks and reports events.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from vrecore.export.chunks import Task, TaskReport
from vrecore.export.schedule import Schedule, WorkerSlot
from vrecore.export.worker import Died, Done, Ended, Failed, Ready, WorkerEvent, WorkerJob

__all__ = ["Transport", "WorkerRecord", "run_on_ray", "run_pool", "run_workers"]

log = logging.getLogger("vrecore.export.pool")


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


class Transport(Protocol):
    """How workers are started and reached: local processes or Ray actors."""

    noun: str
    """What a worker is called in messages: "worker" or "actor"."""

    def start(self, job: WorkerJob, slot: WorkerSlot) -> int | None:
        """Start the worker of ``slot`` (it reports `Ready` once set up); its process id when known now."""
        ...

    def submit(self, index: int, task: Task) -> None:
        """Give worker ``index`` a task (it holds one at a time)."""
        ...

    def retire(self, index: int) -> None:
        """No more tasks for worker ``index``: it leaves after its task and reports `Ended`."""
        ...

    def halt(self) -> None:
        """Stop every worker after the frames in flight (Ctrl-C, or a failure that stops the run)."""
        ...

    def poll(self, timeout: float) -> list[WorkerEvent]:
        """What happened since the last call, waiting up to ``timeout`` seconds for something."""
        ...

    def close(self) -> None:
        """Release every worker still there (the run is over, or failed)."""
        ...


def run_pool(job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], transport: Transport, *,
             stop: threading.Event, on_report: Callable[[TaskReport], None]) -> list[WorkerRecord]:
    """Run ``schedule``'s tasks on one worker per slot over ``transport``; returns what each worker did."""
    return _Pool(job, schedule, slots, transport, stop, on_report).run()


class _Pool:
    """The bookkeeping of `run_pool`: who is live, idle, retired; what each did."""

    def __init__(self, job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], transport: Transport,
                 stop: threading.Event, on_report: Callable[[TaskReport], None]) -> None:
        self.job, self.schedule, self.transport, self.stop, self.on_report = job, schedule, transport, stop, on_report
        self.records = {s.index: WorkerRecord(s.index, s.group, s.device) for s in slots}
        self.queued: dict[str, list[Task]] = {g: [] for g in schedule.groups}
        self.live: set[int] = set()
        """Started and not yet ended or dead."""
        self.idle: set[int] = set()
        """Ready and holding no task."""
        self.retired: set[int] = set()
        self.halted = False

    def run(self) -> list[WorkerRecord]:
        try:
            for index, record in self.records.items():
                self.live.add(index)
                record.pid = self.transport.start(self.job, WorkerSlot(index, record.group, record.device))
            halt_sent = False
            while self.live:
                if self.stopping and not halt_sent:
                    self.transport.halt()
                    halt_sent = True
                self.hand_out()
                for event in self.transport.poll(0.2):
                    self.handle(event)
        finally:
            self.transport.close()
        return [self.records[i] for i in sorted(self.records)]

    @property
    def stopping(self) -> bool:
        return self.halted or self.stop.is_set()

    def hand_out(self) -> None:
        """Ready tasks to the idle workers of their group; a worker with nothing left to do is retired."""
        for task in self.schedule.ready():
            self.queued[task.group].append(task)
        for index in sorted(self.idle):
            queued = self.queued[self.records[index].group]
            if queued and not self.stopping:
                task = queued.pop(0)
                self.schedule.take(index, task.id)
                self.transport.submit(index, task)
                self.idle.discard(index)
            elif self.stopping or self.schedule.finished:
                self.retire(index)

    def retire(self, index: int) -> None:
        self.idle.discard(index)
        if index not in self.retired:
            self.retired.add(index)
            self.transport.retire(index)

    def handle(self, event: WorkerEvent) -> None:
        record = self.records[event.index]
        if event.index not in self.live:
            return
        if isinstance(event, Ready):
            record.pid = event.pid or record.pid
            record.status = "running"
            self.idle.add(event.index)
        elif isinstance(event, Done):
            self.schedule.finish(event.index, event.report.task.id)
            record.tasks += 1
            record.frames += len(event.report.task.frames)
            self.on_report(event.report)
            self.idle.add(event.index)
        elif isinstance(event, Failed):
            record.status, record.error = "failed", event.error
            log.error("%s", event.error.splitlines()[0])
            if self.job.exception_mode == "stop" or event.stops:
                self.halted = True  # a failure stops every worker, as it stops a single process
            self.retire(event.index)
        elif isinstance(event, Ended):
            record.stats = event.stats
            if record.status == "running":
                record.status = "finished"
            alive = self.leave(event.index)
            # It failed holding a task: another worker takes it, or the re-run does.
            self.schedule.orphaned(event.index, requeue=bool(alive) and not self.stopping)
            if not alive:
                self.schedule.lose_group(record.group)
        else:
            self.died(event)

    def leave(self, index: int) -> list[int]:
        """Forget worker ``index``; returns the live workers of its group that still take tasks."""
        self.live.discard(index)
        self.idle.discard(index)
        group = self.records[index].group
        return [i for i in self.live if self.records[i].group == group and self.records[i].status != "failed"]

    def died(self, event: Died) -> None:
        record = self.records[event.index]
        alive = self.leave(event.index)
        requeue = bool(alive) and not self.stopping
        tasks = self.schedule.orphaned(event.index, requeue=requeue)
        what = self.schedule.describe([t.id for t in tasks]) if tasks else "no task in flight"
        fate = f" handed to another {self.transport.noun}" if tasks and requeue else \
            " left for the re-run" if tasks else ""
        pid = f"pid {record.pid}, " if record.pid is not None else ""
        record.status = "died"
        record.error = (f"{self.transport.noun} {event.index} ({pid}{record.device}) died ({event.cause}){event.hint}; "
                        f"{what}{fate}")
        log.error("%s", record.error)
        if not alive:
            self.schedule.lose_group(record.group)


# -- the two transports ------------------------------------------------------------------------------------
def run_workers(job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], *, stop: threading.Event,
                on_report: Callable[[TaskReport], None]) -> list[WorkerRecord]:
    """Run ``schedule``'s tasks on one local process per slot; returns what each worker did."""
    from vrecore.export._local import LocalTransport

    return run_pool(job, schedule, slots, LocalTransport(), stop=stop, on_report=on_report)


def run_on_ray(job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], *, stop: threading.Event,
               on_report: Callable[[TaskReport], None], address: str | None = None) -> list[WorkerRecord]:
    """Run ``schedule``'s tasks on one Ray actor per slot (``address``: a cluster; none starts a local
    instance); returns what each actor did."""
    from vrecore.export._ray import RayTransport

    return run_pool(job, schedule, slots, RayTransport(address, len(slots)), stop=stop, on_report=on_report)
