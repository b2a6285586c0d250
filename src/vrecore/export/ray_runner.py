"""`runner=ray`: the same export plan on Ray actors, for more than one machine.

Why plain actors and not Ray Data: each actor is one worker of `vrecore.export.workers` — it holds its
group's models, set up once on its device, and writes its frames straight into the shared output
folder — while the driver hands out the same tasks (a chunk of frames for a group) in the same
dependency order as the local runner, so re-entrancy, verification, fingerprints and metadata are
exactly those of a local export. Ray Data's ``map_batches`` would move every frame and output
through Ray's object store and decide the batching itself; here only task ids and small reports
travel.

Placement uses Ray's resources: an actor whose device is ``cuda`` or ``cuda:N`` asks for one GPU
(``num_gpus=1``) and runs on the GPU Ray gives it (``cuda`` inside the actor); the others ask for one
CPU. The video and the output folder must be reachable at the same path from every node (a shared
file system). Without ``ray_address`` a local Ray instance is started for the run (and left up for
the rest of the process, so that the next run in a session does not start it again).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from vrecore.errors import ConfigError
from vrecore.export.chunks import Task, TaskReport
from vrecore.export.schedule import Schedule, WorkerSlot
from vrecore.export.workers import WorkerJob, WorkerRecord, close_worker, open_worker

__all__ = ["check_ray_installed", "run_on_ray"]

log = logging.getLogger("vrecore.export.ray_runner")


class _Worker:
    """The body of a Ray actor: one worker of the run (see `vrecore.export.workers.open_worker`)."""

    def __init__(self, job: WorkerJob, slot: WorkerSlot) -> None:
        import os

        from vrecore.export.runlog import RunLog
        from vrecore.store.directory import DirectoryStore

        self.slot = slot
        self.runlog = RunLog(DirectoryStore(job.output_dir), job.run_id, suffix=f".ray{slot.index}")
        with self.runlog.capturing():
            self.runner = open_worker(job, slot)
        self.pid = os.getpid()

    def run(self, task: Task) -> tuple[TaskReport | None, str | None, bool]:
        """(report, None, _) when done, or (None, error, whether it stops the run) when the task failed."""
        from vrecore.errors import VreError

        reports: list[TaskReport] = []
        with self.runlog.capturing(), self.runner.executor.threads or _nothing():
            try:
                self.runner.run([task], prefetch=0, on_done=reports.append)
            except VreError as e:
                return None, f"actor {self.slot.index}: {e}", True
            except Exception as e:  # noqa: BLE001 - a bug: logged here with its traceback, reported in one line
                log.exception("actor %d failed", self.slot.index)
                return None, f"actor {self.slot.index}: {type(e).__name__}: {e}", False
        return reports[0], None, False

    def finish(self) -> dict[str, Any]:
        with self.runlog.capturing():
            return close_worker(self.runner)

    def process_id(self) -> int:
        return self.pid


class _nothing:  # noqa: N801 - a stand-in context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def check_ray_installed() -> None:
    """Raise a one-line ConfigError now, before anything is written, when Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("runner=ray needs Ray: pip install 'vrecore[ray]' (or pip install ray)")


def _connect(address: str | None, slots: Sequence[WorkerSlot]) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("runner=ray needs Ray: pip install 'vrecore[ray]' (or pip install ray)") from None
    if not ray.is_initialized():
        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices are not the user's business
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                  "log_to_driver": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            import os

            ray.init(num_cpus=max(len(slots), os.cpu_count() or 1), **kwargs)
    return ray


def _ray_device(device: str) -> tuple[str, dict[str, float]]:
    """The device inside the actor and the resources to ask Ray for."""
    if device.startswith("cuda"):
        return "cuda", {"num_gpus": 1, "num_cpus": 1}
    return device, {"num_cpus": 1}


def run_on_ray(job: WorkerJob, schedule: Schedule, slots: Sequence[WorkerSlot], *, stop: threading.Event,
               on_report: Callable[[TaskReport], None], address: str | None = None) -> list[WorkerRecord]:
    """Run ``schedule``'s tasks on one Ray actor per slot; returns what each actor did."""
    ray = _connect(address, slots)
    actor_class = ray.remote(_Worker)
    records = {s.index: WorkerRecord(s.index, s.group, s.device) for s in slots}
    actors: dict[int, Any] = {}
    for slot in slots:
        device, resources = _ray_device(slot.device)
        inner = WorkerSlot(slot.index, slot.group, device)
        actors[slot.index] = actor_class.options(**resources, name=None).remote(job, inner)
    for index, actor in actors.items():
        try:
            records[index].pid = ray.get(actor.process_id.remote(), timeout=600)
            records[index].status = "running"
        except Exception as e:  # noqa: BLE001 - set-up failures are reported per actor
            records[index].status, records[index].error = "failed", f"actor {index}: {_first_line(e)}"
            actors.pop(index)
    queued: dict[str, list[Task]] = {g: [] for g in schedule.groups}
    idle = {index for index in actors}
    in_flight: dict[Any, tuple[int, Task]] = {}
    halted = bool([r for r in records.values() if r.status == "failed"]) and job.exception_mode == "stop"

    def hand_out() -> None:
        for task in schedule.ready():
            queued[task.group].append(task)
        for index in sorted(idle):
            group = records[index].group
            if queued[group] and not halted and not stop.is_set():
                task = queued[group].pop(0)
                ref = actors[index].run.remote(task)
                in_flight[ref] = (index, task)
                schedule.take(index, task.id)
                idle.discard(index)

    hand_out()
    while in_flight:
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.2)
        for ref in done:
            index, task = in_flight.pop(ref)
            record = records[index]
            try:
                report, error, stops = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the actor died (killed, out of memory, its node gone)
                alive = [i for i in actors if i != index and records[i].group == record.group
                         and records[i].status == "running"]
                tasks = schedule.orphaned(index, requeue=bool(alive))
                record.status = "died"
                record.error = (f"actor {index} ({record.device}) died ({_first_line(e)}); "
                                f"{schedule.describe([t.id for t in tasks])} "
                                f"{'handed to another actor' if alive else 'left for the re-run'}")
                log.error("%s", record.error)
                actors.pop(index, None)
                if not alive:
                    schedule.lose_group(record.group)
                continue
            idle.add(index)
            if error is not None:
                record.status, record.error = "failed", error
                schedule.orphaned(index, requeue=False)
                halted = halted or stops or job.exception_mode == "stop"
                log.error("%s", error)
                continue
            schedule.finish(index, task.id)
            record.tasks += 1
            record.frames += len(task.frames)
            on_report(report)
        hand_out()
    for index, actor in actors.items():
        try:
            records[index].stats = ray.get(actor.finish.remote(), timeout=600)
            if records[index].status == "running":
                records[index].status = "finished"
        except Exception as e:  # noqa: BLE001
            records[index].status, records[index].error = "died", f"actor {index}: {_first_line(e)}"
        ray.kill(actor)
    return [records[i] for i in sorted(records)]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # Ray wraps a task's exception in a RayTaskError whose text starts with the actor's traceback header.
    lines = [line for line in text if line and not line.startswith(("ray::", "Traceback", "  "))]
    return (lines[-1] if lines else type(e).__name__)[:400]
