"""Videos of `export_videos` spread over worker processes (``workers``) or Ray actors (``runner="ray"``).

Each process or actor builds the graph once, sets its models up once and exports the videos it is handed, one
after the other, with `vrecore.export.many.ClipRunner`; the outcomes come back to the caller as each video ends.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from vrecore.export.clip import Clip, ClipOutcome, ClipRunner
from vrecore.graph.build import Graph

__all__ = ["run_pool"]

_RUNNER: ClipRunner | None = None
"""The worker process's runner (built once by `_start_worker`)."""


def run_pool(graph: Graph, clips: list[Clip], record: Callable[[Clip, ClipOutcome], None], *, workers: int,
             runner: str, ray_address: str | None, run_kwargs: Mapping[str, Any]) -> int | None:
    """Export ``clips`` on ``workers`` processes or Ray actors; returns the signal number when interrupted."""
    from vrecore.export.worker import plugin_targets

    setup = (graph.to_config(), plugin_targets(), dict(run_kwargs))
    if runner == "ray":
        return _on_ray(setup, clips, record, workers, ray_address)
    pool = ProcessPoolExecutor(min(workers, len(clips)), mp_context=mp.get_context("spawn"),
                               initializer=_start_worker, initargs=(*setup, os.getpid()))
    futures: dict[Future[ClipOutcome], Clip] = {}
    interrupted = None
    try:
        futures = {pool.submit(_run_clip, clip): clip for clip in clips}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                clip = futures[future]
                outcome = _outcome(clip, future)
                record(clip, outcome)
                if outcome.status == "interrupted" and interrupted is None:
                    interrupted = 2
                    for other in pending:
                        other.cancel()
    except KeyboardInterrupt:
        interrupted = 2
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


def _outcome(clip: Clip, future: Future[ClipOutcome]) -> ClipOutcome:
    if future.cancelled():
        return ClipOutcome(clip.video, clip.output_dir, "interrupted", error="not started")
    error = future.exception()
    if error is not None:  # the worker process died (killed, out of memory)
        return ClipOutcome(clip.video, clip.output_dir, "failed", error=f"its worker process died: {error}")
    return future.result()


def _start_worker(graph_config: dict[str, Any], plugins: dict[str, Any], run_kwargs: dict[str, Any],
                  parent: int) -> None:
    global _RUNNER
    from vrecore.export._local import end_with_parent

    end_with_parent(parent)
    _RUNNER = _make_runner(graph_config, plugins, run_kwargs)


def _make_runner(graph_config: dict[str, Any], plugins: dict[str, Any], run_kwargs: dict[str, Any]) -> ClipRunner:
    from vrecore.graph.build import build_graph
    from vrecore.graph.registry import get_registry, register_from_targets

    register_from_targets(get_registry(), plugins)
    return ClipRunner(build_graph(graph_config), run_kwargs)


def _run_clip(clip: Clip) -> ClipOutcome:
    assert _RUNNER is not None
    try:
        return _RUNNER.run(clip)
    except KeyboardInterrupt:
        return ClipOutcome(clip.video, clip.output_dir, "interrupted", error="interrupted")


def _on_ray(setup: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], clips: list[Clip],
            record: Callable[[Clip, ClipOutcome], None], workers: int, ray_address: str | None) -> int | None:
    """The videos on ``workers`` Ray actors, each handed the next video as it finishes one."""
    from vrecore.export._ray import _connect

    ray = _connect(ray_address, workers)
    actor_class = ray.remote(num_cpus=1)(_ClipActor)
    actors = [actor_class.remote(*setup) for _ in range(min(workers, len(clips)))]
    queue = list(reversed(clips))
    running: dict[Any, tuple[Any, Clip]] = {}
    try:
        for actor in actors:
            if queue:
                clip = queue.pop()
                running[actor.run.remote(clip)] = (actor, clip)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, clip = running.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - the actor died; the video is recorded as failed
                outcome = ClipOutcome(clip.video, clip.output_dir, "failed", error=f"its Ray actor failed: {e}")
            record(clip, outcome)
            if queue:
                nxt = queue.pop()
                running[actor.run.remote(nxt)] = (actor, nxt)
    except KeyboardInterrupt:
        return 2
    finally:
        for actor in actors:
            ray.kill(actor)
    return None


class _ClipActor:
    """A Ray actor: the graph built and set up once, videos exported one by one."""

    def __init__(self, graph_config: dict[str, Any], plugins: dict[str, Any], run_kwargs: dict[str, Any]) -> None:
        self.runner = _make_runner(graph_config, plugins, run_kwargs)

    def run(self, clip: Clip) -> ClipOutcome:
        return self.runner.run(clip)
