"""The one worker-pool loop, on a transport played in-process: hand-out order, a dead worker's task, a failure."""
from __future__ import annotations

import threading
from typing import Any

from vrecore.export.chunks import Task, TaskReport
from vrecore.export.pool import run_pool
from vrecore.export.schedule import Group, Schedule, WorkerSlot
from vrecore.export.worker import Died, Done, Ended, Failed, Ready, WorkerEvent, WorkerJob


class PlayedTransport:
    """Workers that finish each task at once, except the first time ``script`` names it (task id → "die" or "fail")."""

    noun = "worker"

    def __init__(self, script: dict[int, str] | None = None) -> None:
        self.script = script or {}
        self.events: list[WorkerEvent] = []
        self.given: list[tuple[int, int]] = []
        """(worker, task id) in the order the pool handed them out."""
        self.halted = self.closed = False

    def start(self, job: WorkerJob, slot: WorkerSlot) -> int | None:
        self.events.append(Ready(slot.index, 1000 + slot.index))
        return None

    def submit(self, index: int, task: Task) -> None:
        self.given.append((index, task.id))
        what = self.script.pop(task.id, None)  # once: the task given again succeeds
        if what == "die":
            self.events.append(Died(index, "killed by SIGKILL"))
        elif what == "fail":
            self.events += [Failed(index, f"worker {index}: ValueError: bad\ntraceback", False)]
        else:
            self.events.append(Done(index, TaskReport(task, written={"r": list(task.frames)})))

    def retire(self, index: int) -> None:
        self.events.append(Ended(index, {"r": {"frames": index}}))

    def halt(self) -> None:
        self.halted = True

    def poll(self, timeout: float) -> list[WorkerEvent]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        self.closed = True


def _job(exception_mode: str = "stop") -> Any:
    return WorkerJob(graph_config={}, plugins={}, video="v.mp4", video_backend="auto", output_dir="out", run_id="r",
                     need={}, todo={}, digests={}, groups={}, exception_mode=exception_mode)


def _run(schedule: Schedule, slots: list[WorkerSlot], transport: PlayedTransport, mode: str = "stop") -> Any:
    reports: list[TaskReport] = []
    records = run_pool(_job(mode), schedule, slots, transport, stop=threading.Event(), on_report=reports.append)
    return records, reports


def test_every_task_is_handed_out_once_and_each_worker_is_recorded():
    schedule = Schedule([[0, 1], [2, 3], [4, 5]], [Group("*", "cpu", ("r",), ())])
    transport = PlayedTransport()
    records, reports = _run(schedule, [WorkerSlot(0, "*", "cpu"), WorkerSlot(1, "*", "cpu")], transport)
    assert sorted(t for _, t in transport.given) == [0, 1, 2] and schedule.finished and transport.closed
    assert sorted(f for r in reports for f in r.written["r"]) == [0, 1, 2, 3, 4, 5]
    assert [(r.pid, r.status, r.stats) for r in records] == [(1000, "finished", {"r": {"frames": 0}}),
                                                            (1001, "finished", {"r": {"frames": 1}})]
    assert sum(r.frames for r in records) == 6 and sum(r.tasks for r in records) == 3


def test_a_groups_chunk_waits_for_the_same_chunk_upstream():
    groups = [Group("cpu", "cpu", ("a",), ()), Group("cpu:1", "cpu:1", ("b",), ("cpu",))]
    schedule = Schedule([[0, 1], [2, 3]], groups)
    transport = PlayedTransport()
    _run(schedule, [WorkerSlot(0, "cpu", "cpu"), WorkerSlot(1, "cpu:1", "cpu:1")], transport)
    order = [t for _, t in transport.given]
    for k in (0, 1):  # task ids: chunk k of group g is k * 2 + g
        assert order.index(k * 2) < order.index(k * 2 + 1)
    assert schedule.finished and not schedule.lost


def test_a_dead_workers_task_goes_to_another_worker_of_its_group():
    schedule = Schedule([[0, 1], [2, 3], [4, 5]], [Group("*", "cpu", ("r",), ())])
    transport = PlayedTransport({0: "die"})
    records, reports = _run(schedule, [WorkerSlot(0, "*", "cpu"), WorkerSlot(1, "*", "cpu")], transport)
    assert transport.given[0] == (0, 0) and (1, 0) in transport.given, "worker 1 computed the dead one's chunk"
    assert sorted(f for r in reports for f in r.written["r"]) == [0, 1, 2, 3, 4, 5] and schedule.done == {0, 1, 2}
    assert records[0].status == "died"
    assert records[0].error == "worker 0 (pid 1000, cpu) died (killed by SIGKILL); frames 0..2 handed to another worker"
    assert records[1].status == "finished" and records[1].tasks == 3


def test_the_last_workers_death_leaves_its_task_for_the_rerun():
    schedule = Schedule([[0, 1], [2, 3]], [Group("*", "cpu", ("r",), ())])
    records, reports = _run(schedule, [WorkerSlot(0, "*", "cpu")], PlayedTransport({0: "die"}))
    assert records[0].error == "worker 0 (pid 1000, cpu) died (killed by SIGKILL); frames 0..2 left for the re-run"
    assert reports == [] and schedule.lost == {0, 1} and schedule.finished


def test_a_failure_stops_every_worker_unless_skipped():
    slots = [WorkerSlot(0, "*", "cpu"), WorkerSlot(1, "*", "cpu")]
    stopped = PlayedTransport({0: "fail"})
    records, _ = _run(Schedule([[k] for k in range(6)], [Group("*", "cpu", ("r",), ())]), slots, stopped)
    assert stopped.halted and len(stopped.given) == 2, "no task after the failure"
    assert records[0].status == "failed" and records[0].error.startswith("worker 0: ValueError: bad")
    skipped = PlayedTransport({0: "fail"})
    schedule = Schedule([[k] for k in range(6)], [Group("*", "cpu", ("r",), ())])
    records, reports = _run(schedule, slots, skipped, mode="skip")
    assert not skipped.halted and schedule.done == set(range(6)), "the failed task went to the other worker"
    assert [r.status for r in records] == ["failed", "finished"] and records[1].tasks == 6
