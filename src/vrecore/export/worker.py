"""One worker of the export pool: the job it is given, what it builds from it, and the events it reports.

A worker (a local process, `vrecore.export._local`, or a Ray actor, `vrecore.export._ray`) rebuilds its
group's share of the run from a picklable `WorkerJob` (`open_worker`), computes the tasks it is given and
reports `Ready`, `Done`, `Failed` and `Ended`; its transport reports `Died` for it when it is gone without a word.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import ConfigError
from vrecore.export.chunks import ChunkRunner, TaskReport
from vrecore.export.schedule import WorkerSlot
from vrecore.store.base import Store

__all__ = ["Died", "Done", "Ended", "Failed", "Ready", "WorkerEvent", "WorkerJob", "close_worker", "job_video",
           "open_job_store", "open_worker", "plugin_targets"]

log = logging.getLogger("vrecore.export.worker")


@attrs.frozen
class WorkerJob:
    """Everything a worker needs to rebuild its share of the run (picklable)."""

    graph_config: dict[str, Any]
    plugins: dict[str, tuple[str, str | None]]
    """Plugins the parent registered in-process: distribution → (version, ``module:attribute``)."""
    video: str
    video_backend: str
    output_dir: str
    """Where the store keeps the export: a folder, or the URL of a registered store."""
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
    store: str = "directory"
    """The registered store that `output_dir` is opened with (each worker opens it itself)."""
    store_options: dict[str, Any] = attrs.field(factory=dict)
    """Options of the store's class (`run_export`'s ``store_options``)."""


# -- what a worker reports --------------------------------------------------------------------------------
@attrs.frozen
class Ready:
    """The worker has set its group up and takes tasks."""

    index: int
    pid: int | None = None


@attrs.frozen
class Done:
    """The worker finished a task: its frames are written."""

    index: int
    report: TaskReport


@attrs.frozen
class Failed:
    """The worker raised: ``error`` says why (one line, a traceback after it for a bug); it takes no more tasks."""

    index: int
    error: str
    stops: bool
    """A user error (`vrecore.errors.VreError`): it stops the run whatever ``exception_mode``."""


@attrs.frozen
class Ended:
    """The worker left (told to, or after a failure) and handed back its executor's statistics."""

    index: int
    stats: dict[str, Any]


@attrs.frozen
class Died:
    """The worker is gone without a word (killed, crashed, its node lost)."""

    index: int
    cause: str
    """'killed by SIGKILL', 'exit code 1', Ray's reason."""
    hint: str = ""


WorkerEvent = Ready | Done | Failed | Ended | Died


# -- what every worker runs --------------------------------------------------------------------------------
def open_worker(job: WorkerJob, slot: WorkerSlot) -> ChunkRunner:
    """What a worker (process or Ray actor) builds once: its graph, video, store, executor and writers."""
    from vrecore.frames.video import open_video
    from vrecore.graph.build import build_graph
    from vrecore.graph.devices import thread_limit
    from vrecore.graph.executor import Executor
    from vrecore.graph.registry import get_registry, register_from_targets
    register_from_targets(get_registry(), job.plugins)
    graph = build_graph(job.graph_config)
    nodes = [graph[n] for n in job.groups[slot.group]]
    executor = Executor(graph, nodes=nodes, device=slot.device, exception_mode=job.exception_mode,
                        threads=thread_limit(job.threads))
    source = open_video(job.video, job.video_backend)
    runner = ChunkRunner(graph, source, open_job_store(job), executor,
                         need={k: set(v) for k, v in job.need.items()}, todo={k: set(v) for k, v in job.todo.items()},
                         digests=job.digests, run_id=job.run_id, writers=job.writers, durable=job.durable,
                         exception_mode=job.exception_mode)
    log.info("worker %d (pid %d) on %s computes %s", slot.index, os.getpid(), slot.device,
             ", ".join(job.groups[slot.group]))
    return runner


def open_job_store(job: WorkerJob) -> Store:
    """The run's store, opened in this worker (its ``root`` keeps the worker's log: local to the worker's machine
    for a store at a URL)."""
    from vrecore.store.location import choose_store

    return choose_store(job.output_dir, store=job.store).open(**job.store_options)


def close_worker(runner: ChunkRunner | None) -> dict[str, Any]:
    """Close a worker's runner; returns its executor's statistics (per representation, as dicts)."""
    if runner is None:
        return {}
    try:
        runner.close()
    except BaseException:  # noqa: BLE001 - the worker is ending anyway
        log.warning("closing the worker failed", exc_info=True)
    return {name: attrs.asdict(s) for name, s in runner.executor.stats.items()}


def plugin_targets() -> dict[str, tuple[str, str | None]]:
    """The plugins this process registered, with their import paths, for `WorkerJob.plugins`."""
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    return {dist: (registry.versions.get(dist, "0"), target) for dist, target in registry.targets.items()}


def job_video(source: Any) -> str:
    """The path a worker reopens the video from (a FrameSource made in memory cannot be shared)."""
    path = Path(getattr(source, "path", ""))
    if not str(path) or not path.exists():
        raise ConfigError("workers > 1 needs a video file or an image folder (a frame source made in memory cannot "
                          "be opened by other processes); pass its path")
    return str(path)
