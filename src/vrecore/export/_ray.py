"""The Ray transport of the worker pool (`runner=ray`): one Ray actor per worker, for more than one machine.

Why plain actors and not Ray Data: each actor is one worker of `vrecore.export.pool` — it holds its
group's models, set up once on its device, and writes its frames straight into the shared output
folder — while the pool hands out the same tasks (a chunk of frames for a group) in the same
dependency order as local processes, so re-entrancy, verification, fingerprints and metadata are
exactly those of a local export. Ray Data's ``map_batches`` would move every frame and output
through Ray's object store and decide the batching itself; here only tasks and small reports travel.

Placement uses Ray's resources: an actor whose device is ``cuda`` or ``cuda:N`` asks for one GPU
(``num_gpus=1``) and runs on the GPU Ray gives it (``cuda`` inside the actor); the others ask for one
CPU. The video and the output folder must be reachable at the same path from every node (a shared
file system). Without an address (nor RAY_ADDRESS) a new local Ray instance is started for the run, never one
that another process on the machine started (left up for the rest of the process, so that the next run in a
session does not start it again). Ray is imported only here, when a run asks for it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any

from vrecore.errors import ConfigError
from vrecore.export.chunks import Task, TaskReport
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

__all__ = ["RayTransport", "check_ray"]

log = logging.getLogger("vrecore.export.ray")

CONTROL_TIMEOUT = 600.0
"""Seconds an actor may take to set up or to finish (a task itself may take as long as it needs)."""


class _Actor:
    """The body of a Ray actor: one worker of the run (see `vrecore.export.worker.open_worker`)."""

    def __init__(self, job: WorkerJob, slot: WorkerSlot) -> None:
        from vrecore.export.runlog import RunLog

        self.slot = slot
        self.runlog = RunLog(open_job_store(job), job.run_id, suffix=f".ray{slot.index}")
        with self.runlog.capturing():
            self.runner = open_worker(job, slot)

    def process_id(self) -> int:
        return os.getpid()

    def run(self, task: Task) -> tuple[TaskReport | None, str | None, bool]:
        """(report, None, _) when done, or (None, error, whether it stops the run) when the task failed."""
        from vrecore.errors import VreError

        reports: list[TaskReport] = []
        with self.runlog.capturing(), self.runner.executor.threads or contextlib.nullcontext():
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


class RayTransport:
    """Workers as Ray actors (`vrecore.export.pool.Transport`); ``actors``: how many the run starts."""

    noun = "actor"

    def __init__(self, address: str | None, actors: int) -> None:
        self._ray = _connect(address, actors)
        self._actor_class = self._ray.remote(_Actor)
        self._actors: dict[int, Any] = {}
        self._pending: dict[Any, tuple[str, int, float | None]] = {}
        """A call in flight → (``ready``, ``run`` or ``finish``, actor index, deadline)."""
        self._later: list[WorkerEvent] = []
        """Events known without Ray's answer (a retired actor that never set up)."""

    def start(self, job: WorkerJob, slot: WorkerSlot) -> int | None:
        device, resources = _ray_device(slot.device)
        actor = self._actor_class.options(**resources).remote(job, WorkerSlot(slot.index, slot.group, device))
        self._actors[slot.index] = actor
        self._pending[actor.process_id.remote()] = ("ready", slot.index, time.monotonic() + CONTROL_TIMEOUT)
        return None  # the actor's process id comes with its Ready

    def submit(self, index: int, task: Task) -> None:
        self._pending[self._actors[index].run.remote(task)] = ("run", index, None)

    def retire(self, index: int) -> None:
        actor = self._actors.get(index)
        if actor is None:  # its set-up failed: nothing to collect
            self._later.append(Ended(index, {}))
        else:
            self._pending[actor.finish.remote()] = ("finish", index, time.monotonic() + CONTROL_TIMEOUT)

    def halt(self) -> None:
        """Nothing to tell the actors: a task runs to its end, and the pool hands out no more."""

    def poll(self, timeout: float) -> list[WorkerEvent]:
        out, self._later = self._later, []
        if not self._pending:
            if not out:
                time.sleep(timeout)
            return out
        done, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=0 if out else timeout)
        for ref in done:
            out.append(self._answer(*self._pending.pop(ref)[:2], ref))
        now = time.monotonic()
        for ref, (kind, index, deadline) in list(self._pending.items()):
            if deadline is not None and now > deadline:
                del self._pending[ref]
                out.append(self._overdue(kind, index))
        return out

    def _answer(self, kind: str, index: int, ref: Any) -> WorkerEvent:
        try:
            value = self._ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the actor failed to set up, or died (killed, out of memory, node gone)
            self._drop(index)
            if kind == "ready" and not _lost(e):
                return Failed(index, f"actor {index}: {_first_line(e)}", False)
            return Died(index, _first_line(e))
        if kind == "ready":
            return Ready(index, value)
        if kind == "finish":
            self._drop(index)
            return Ended(index, value)
        report, error, stops = value
        return Done(index, report) if error is None else Failed(index, error, stops)

    def _overdue(self, kind: str, index: int) -> WorkerEvent:
        self._drop(index)
        if kind == "ready":
            return Failed(index, f"actor {index}: not set up within {CONTROL_TIMEOUT:.0f} s (does the cluster have "
                                 f"the resources it asks for, e.g. a GPU?)", False)
        return Died(index, f"did not finish within {CONTROL_TIMEOUT:.0f} s")

    def _drop(self, index: int) -> None:
        actor = self._actors.pop(index, None)
        if actor is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)

    def close(self) -> None:
        for index in list(self._actors):
            self._drop(index)


def check_ray(address: str | None) -> None:
    """Raise a one-line ConfigError now, before anything is written, when Ray is not installed, or when this
    process is connected to one Ray instance and ``address`` names another (Ray keeps one connection a process:
    the run would silently go to the first)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)
    ray = sys.modules.get("ray")
    if ray is None or not address or address == "auto" or "://" in address or not ray.is_initialized():
        return
    current = ray.get_runtime_context().gcs_address
    if address != current:
        raise ConfigError(f"ray_address={address} names another cluster, but this process is already connected to "
                          f"Ray at {current}; leave ray_address unset to use that one, or run in a new process")


RAY_MISSING = "runner=ray needs Ray: pip install 'vrecore[ray]' (or pip install ray)"


def _connect(address: str | None, actors: int) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    if not ray.is_initialized():
        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices are not the user's business
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                  "log_to_driver": False}
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address, **kwargs)
        else:  # "local": a new instance, never one another process on this machine started (Ray's default)
            ray.init(address="local", num_cpus=max(actors, os.cpu_count() or 1), **kwargs)
    return ray


def _ray_device(device: str) -> tuple[str, dict[str, float]]:
    """The device inside the actor and the resources to ask Ray for."""
    if device.startswith("cuda"):
        return "cuda", {"num_gpus": 1, "num_cpus": 1}
    return device, {"num_cpus": 1}


def _lost(e: BaseException) -> bool:
    """Whether ``e`` says the actor itself was lost (its process or node gone, or cancelled before it ran), rather
    than that its set-up raised: a death, whenever it happens."""
    from ray.exceptions import RayActorError

    return isinstance(e, RayActorError) and not e.actor_init_failed


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # Ray wraps a task's exception in a RayTaskError whose text starts with the actor's traceback header.
    lines = [line for line in text if line and not line.startswith(("ray::", "Traceback", "  "))]
    return (lines[-1] if lines else type(e).__name__)[:400]
