"""Batch export: run a representation graph over a video's frames and store every frame.

One frame's walk: the source decodes it (once, in a prefetching thread), the plan (`vrecore.export.plan`)
says which representations need it, the executor (`vrecore.graph.executor`) computes them in topological
order with their own batch sizes, and the writer threads (`vrecore.export.writer`) store the results and
their records; `vrecore.export.runlog` keeps the run's log and metadata.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import ConfigError, ExportError, StorageError, VreError
from vrecore.export.chunks import ChunkRunner, Task
from vrecore.export.fingerprint import graph_fingerprints, video_identity
from vrecore.export.metadata import write_representation_metadata
from vrecore.export.plan import ExportPlan, apply_plan, claim_fingerprints, make_plan, release_claims
from vrecore.export.runlog import ExportResult, RepresentationStats, RunLog, mark_dead_runs, new_run_id
from vrecore.frames.video import FrameSource, open_video, ranges, select_frames
from vrecore.graph.build import Graph
from vrecore.graph.devices import check_device, thread_limit
from vrecore.graph.executor import EXCEPTION_MODES, Executor, NodeStats, RepresentationFailed, preflight
from vrecore.store.base import Store
from vrecore.store.files import describe_os_error
from vrecore.store.location import choose_store, hide_secret_args, hide_secret_config

__all__ = ["ExportResult", "RepresentationStats", "run_export"]

log = logging.getLogger("vrecore.export.run")


def run_export(graph: Graph, video: FrameSource | str | os.PathLike[str], output_dir: str | os.PathLike[str] | Store, *,
               frames: Any = None, overwrite: bool = False, on_mismatch: str = "error", exception_mode: str = "stop",
               device: str = "cpu", writers: int = 2, progress: bool = False, video_backend: str = "auto",
               threads: int | None = None, durable: bool = False, workers: int = 1,
               devices: Sequence[str] | None = None, placement: Mapping[str, str] | None = None,
               runner: str = "local", ray_address: str | None = None, config: Mapping[str, Any] | None = None,
               raise_on_error: bool = True, store: str | None = None, store_options: Mapping[str, Any] | None = None,
               executor: Executor | None = None) -> ExportResult:
    """Export every selected frame of every representation of ``graph`` into ``output_dir``: a folder, a store's
    location (``SCHEME://...``, a registered suffix such as ``.zarr``, or ``store=NAME``: `vrecore.store.location`)
    opened with ``store_options`` (zarr: ``codec``, ``frames_per_shard``, ``storage_options``), or any `Store`.

    A re-run computes only what is missing or bad (stored frames are verified; corrupt files are
    moved to ``<out>/.quarantine`` and recomputed). Stored frames made differently (another video,
    parameters, output size or dtype, formats, weights or plugin version) stop the run before any
    compute, unless ``overwrite`` (recompute and replace) or ``on_mismatch="keep"`` (add frames,
    and record the folder as mixed). With ``exception_mode="skip"`` a failing representation is
    recorded and the others go on. ``threads`` caps torch's and OpenCV's compute threads for the run;
    ``durable`` fsyncs every file and its folder before the frame counts as done.

    SIGINT and SIGTERM (in the main thread) stop the run after the frames in flight are written;
    the result's status is then ``interrupted`` (a second signal exits at once).

    Scale-out (`vrecore.export.schedule`): ``workers`` processes share the chunks still to compute (each on
    the next of ``devices``, round-robin); ``placement`` maps representations to devices (``"*"`` for
    the rest), each device's group in its own processes; ``runner="ray"`` runs the same plan on Ray
    actors (``ray_address``: an existing cluster, e.g. ``"auto"``; none starts a local instance).

    ``executor``: an `Executor` of ``graph`` kept set up after the run (its owner tears it down), so that many
    videos set their models up once (`vrecore.export.many`); one process only.
    """
    if exception_mode not in EXCEPTION_MODES:
        raise ConfigError(f"exception_mode {exception_mode!r} is not one of {', '.join(EXCEPTION_MODES)}")
    if isinstance(writers, bool) or not isinstance(writers, int) or writers < 1:
        raise ConfigError(f"writers must be a positive integer, got {writers!r}")
    limit = thread_limit(threads)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if runner not in RUNNERS:
        raise ConfigError(f"runner {runner!r} is not one of {', '.join(RUNNERS)}")
    if devices is not None and (isinstance(devices, str) or not devices):
        raise ConfigError(f"devices must be a list of devices, e.g. [cuda:0,cuda:1], got {devices!r}")
    _check_placement(placement)
    if runner == "ray":
        from vrecore.export._ray import check_ray

        check_ray(ray_address)
    from vrecore.export.schedule import check_memory

    check_memory(graph)
    if isinstance(output_dir, Store) and store is not None:
        raise ConfigError(f"store={store!r} chooses the store of an output location; with a Store object as "
                          f"output_dir leave it unset")
    chosen = None if isinstance(output_dir, Store) else choose_store(output_dir, store=store)
    if chosen is not None:
        chosen.check_location()
        chosen.check_options(store_options or {})
    scale = _ScaleOut(workers, [str(d) for d in devices] if devices else None, dict(placement or {}), runner,
                      ray_address, video_backend)
    source = video if isinstance(video, FrameSource) else open_video(video, video_backend)
    made = _missing_folders(chosen.location) if chosen is not None and chosen.local else []
    export = None
    try:
        selected = [int(i) for i in select_frames(frames, source.num_frames)]
        if isinstance(output_dir, Store):
            kept = output_dir
        elif chosen is not None:
            kept = chosen.open(**dict(store_options or {}))
            kept.check_writable()
        export = _Export(graph, source, kept, selected, overwrite=overwrite, on_mismatch=on_mismatch,
                         exception_mode=exception_mode, device=device, writers=writers, progress=progress,
                         config=config, threads=limit, durable=durable, scale=scale,
                         reopen=(chosen.extension.name, chosen.location, dict(store_options or {})) if chosen else None,
                         executor=executor)
        result = export.run()
    finally:
        if source is not video:
            source.close()
        if export is None or not export.started:
            _remove_empty(made)  # refused before any work: leave no folder behind (only the empty ones it made)
    if raise_on_error and result.status == "interrupted":
        raise KeyboardInterrupt(f"export interrupted by signal {result.signal}; frames already written are kept")
    if raise_on_error and export.user_error is not None:
        raise export.user_error
    if raise_on_error and not result.ok:
        raise ExportError(f"{result.error} (the log is {result.log_file}; frames already written are kept)")
    return result


RUNNERS = ("local", "ray")
_CLAIM_TRIES = 5


def _check_placement(placement: Any) -> None:
    """``placement`` maps representation names (or ``"*"``) to device names."""
    if placement is None:
        return
    if not isinstance(placement, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                     for k, v in placement.items()):
        raise ConfigError(f"placement must map representations to devices, e.g. placement={{depth:cuda:0,'*':cpu}}, "
                          f"got {placement!r}")
    for d in set(placement.values()):
        check_device(d)


def _missing_folders(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders this run made, deepest first, as long as they are empty (rmdir never removes content)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@attrs.frozen
class _ScaleOut:
    """How many processes, on which devices, with which engine."""

    workers: int
    devices: list[str] | None
    placement: dict[str, str]
    runner: str
    ray_address: str | None
    video_backend: str

    @property
    def distributed(self) -> bool:
        return self.workers > 1 or bool(self.placement) or self.runner == "ray"


class _Interrupted(Exception):
    """Internal: a signal asked the run to stop."""


class _Export:
    """One export run: plan, then decode → execute → write, with bookkeeping around."""

    def __init__(self, graph: Graph, source: FrameSource, store: Store, selected: list[int], *, overwrite: bool,
                 on_mismatch: str, exception_mode: str, device: str, writers: int, progress: bool,
                 config: Mapping[str, Any] | None, threads: thread_limit, durable: bool, scale: _ScaleOut,
                 reopen: tuple[str, str, dict[str, Any]] | None = None, executor: Executor | None = None) -> None:
        self.graph, self.source, self.store, self.selected = graph, source, store, selected
        self.shared_executor = executor
        self.reopen = reopen
        """(store name, location, options) with which worker processes open the same store; None for a Store."""
        self.overwrite, self.on_mismatch, self.exception_mode = overwrite, on_mismatch, exception_mode
        self.device, self.writers, self.progress, self.config = device, writers, progress, config
        self.threads, self.durable, self.scale = threads, durable, scale
        self.worker_records: list[Any] = []
        self.groups: list[Any] = []
        self.run_id = new_run_id()
        self.stats = {n.name: RepresentationStats(n.name, n.settings.batch_size) for n in graph}
        self.error: str | None = None
        self.user_error: VreError | None = None
        self.stop = threading.Event()
        self.started = False
        """Whether the run wrote anything (its run metadata, the plan applied)."""
        self.signal: int | None = None
        self._lock = threading.Lock()

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> ExportResult:
        t0 = time.perf_counter()
        # Everything that can refuse the run happens before anything is written.
        executor = self.shared_executor or Executor(self.graph, device=self.device, exception_mode=self.exception_mode,
                                                    threads=self.threads, placement=self.scale.placement)
        executor.new_run()
        for d in self.scale.devices or ():
            check_device(d)
        if self.scale.distributed and self.reopen is None:
            raise ConfigError("workers, placement and runner=ray need an output location other processes can open "
                              "(a folder or a store's URL); pass it instead of a Store object")
        video, versions = video_identity(self.source), _plugin_versions()
        fingerprints = graph_fingerprints(self.graph, video, self.source.frame_shape, versions)
        plan = make_plan(self.graph, self.store, self.selected, fingerprints=fingerprints,
                         frame_shape=self.source.frame_shape, overwrite=self.overwrite, on_mismatch=self.on_mismatch,
                         run_id=self.run_id)
        working = [n for n in self.graph if n.representation.learned and plan.need[n.name]]
        preflight(working)
        if working:  # preflight may have fetched weights the lock now names (their commit and sha256)
            refreshed = graph_fingerprints(self.graph, video, self.source.frame_shape, versions)
            if refreshed != fingerprints:
                plan = make_plan(self.graph, self.store, self.selected, fingerprints=refreshed,
                                 frame_shape=self.source.frame_shape, overwrite=self.overwrite,
                                 on_mismatch=self.on_mismatch, run_id=self.run_id)
        if self.scale.distributed:
            from vrecore.export.schedule import make_groups

            self.groups = make_groups(self.graph, plan.need, device=self.device, placement=self.scale.placement)
        for _ in range(_CLAIM_TRIES):  # the last check: a refusal here stores nothing, like make_plan's
            if claim_fingerprints(plan, self.graph, self.store, self.run_id, overwrite=self.overwrite,
                                  on_mismatch=self.on_mismatch):
                break
            plan = make_plan(self.graph, self.store, self.selected, fingerprints=plan.fingerprints,
                             frame_shape=self.source.frame_shape, overwrite=self.overwrite,
                             on_mismatch=self.on_mismatch, run_id=self.run_id)
        else:
            raise StorageError(f"output_dir '{self.store.root}': other runs keep changing its representations' "
                               f"fingerprints; wait for them to finish and run again")
        self.plan = plan
        runlog = RunLog(self.store, self.run_id)
        status = "ok"
        self.started = True
        with runlog.capturing():
            try:
                self._start(plan, runlog)
                with self.threads, _signals_stop(self):
                    if self.scale.distributed:
                        self._distributed(plan)
                    else:
                        self._loop(plan, executor)
                if self.stop.is_set():
                    raise _Interrupted()
            except _Interrupted:
                status = "interrupted"
                self.error = f"interrupted by {signal.Signals(self.signal or 2).name}; frames already written are kept"
                removed = self.store.remove_own_temporaries(self.graph.names)
                log.warning("run %s %s (%d temporary files removed)", self.run_id, self.error, removed)
            except (RepresentationFailed, VreError) as e:
                status, self.error = "failed", str(e)
                if not isinstance(e, RepresentationFailed):
                    self.user_error = e
                log.error("%s", e)
            except OSError as e:
                status = "failed"
                self.user_error = StorageError(describe_os_error(e, f"output_dir '{self.store.root}'"))
                self.error = str(self.user_error)
                log.error("%s", self.error, exc_info=True)
            except BaseException as e:  # a bug: recorded in the metadata and the log, then raised
                status, self.error = "failed", f"{type(e).__name__}: {e}"
                log.exception("run %s failed", self.run_id)
                raise
            finally:
                if executor is not self.shared_executor:
                    executor.teardown()
                self._finish_stats(executor)
                ended = datetime.now(timezone.utc)
                for node in self.graph:
                    stats, check = self.stats[node.name], plan.checks.get(node.name)
                    touched = stats.computed or stats.failed or stats.quarantined or (check and check.adopt) or \
                        plan.decisions.get(node.name) in ("mix", "replace")
                    if node.settings.writes and touched:
                        try:
                            if write_representation_metadata(self.store, node, release=self.run_id):
                                plan.claimed.discard(node.name)  # released in the same write
                        except OSError as e:
                            log.error("%s: its metadata could not be written (%s)", node.name, e)
                try:
                    release_claims(plan, self.store, self.run_id)
                except OSError as e:
                    log.error("this run's claim on its folders could not be released (%s)", e)
                try:
                    runlog.write(self._run_fields(plan), status=status, error=self.error, ended=ended)
                except OSError as e:  # e.g. the disk is full: the error already says so
                    log.error("the run metadata could not be written (%s)", e)
                log.info("run %s %s in %.2fs", self.run_id, status, time.perf_counter() - t0)
        return ExportResult(self.run_id, self.store.root, self.selected, self.stats, runlog.started.isoformat(),
                            ended.isoformat(), time.perf_counter() - t0, status, self.error, runlog.log_file,
                            runlog.metadata_file, self.signal)

    def _start(self, plan: ExportPlan, runlog: RunLog) -> None:
        removed = self.store.remove_stale_temporaries(self.graph.names)
        log.info("run %s: video %s (%d frames), %d selected, representations %s%s", self.run_id, self.source.path,
                 self.source.num_frames, len(self.selected), ", ".join(self.graph.names),
                 f"; removed {removed} stale temporary files" if removed else "")
        for run, _ in mark_dead_runs(self.store):
            log.warning("run %s died (its process %s on this host is gone); recorded", run.get("run_id"), run["pid"])
        apply_plan(plan, self.store, self.run_id)
        for name, check in plan.checks.items():
            stats = self.stats[name]
            stats.skipped = plan.skipped[name]
            stats.quarantined = plan.quarantined.get(name, [])
            stats.recomputed_stale = len(check.stale & plan.todo[name])
            if stats.recomputed_stale:
                log.warning("%s: %d frame(s) were made under an earlier fingerprint; computing them again", name,
                            stats.recomputed_stale)
        runlog.write(self._run_fields(plan), status="running", error=None, ended=None)

    def _loop(self, plan: ExportPlan, executor: Executor) -> None:
        tasks = [Task(k, tuple(chunk)) for k, chunk in enumerate(plan.chunks(self.graph, executor.batch_size))]
        if not tasks:
            log.info("nothing to do: every selected frame is already exported")
            return
        bars = self._progress_bars(plan)
        runner = ChunkRunner(self.graph, self.source, self.store, executor, need=plan.need, todo=plan.todo,
                             digests=plan.digests, run_id=self.run_id, writers=self.writers, durable=self.durable,
                             exception_mode=self.exception_mode,
                             on_written=lambda name, ix: self._written(name, ix, bars), on_failed=self._write_failed)
        try:
            runner.run(tasks, stop=self.stop)
        finally:
            runner.writer.close()
            for bar in bars.values():
                bar.close()

    def _distributed(self, plan: ExportPlan) -> None:
        """The plan on worker processes or Ray actors (`vrecore.export.schedule`, `.pool`, `.worker`)."""
        from vrecore.export.pool import run_on_ray, run_workers
        from vrecore.export.schedule import Schedule, available_memory, cap_workers, worker_slots
        from vrecore.export.worker import WorkerJob, job_video, plugin_targets

        groups = self.groups
        chunks = list(plan.chunks(self.graph, {n.name: n.settings.batch_size for n in self.graph}))
        if not chunks or not groups[0].nodes:
            log.info("nothing to do: every selected frame is already exported")
            return
        schedule = Schedule(chunks, groups)
        workers, why = cap_workers(self.scale.workers, len(chunks), available_memory())
        if why:
            log.warning("workers=%d capped to %d worker(s) per group: %s", self.scale.workers, workers, why)
        slots = worker_slots(groups, workers, self.scale.devices)
        job = WorkerJob(
            graph_config=self.graph.to_config(), plugins=plugin_targets(), video=job_video(self.source),
            video_backend=self.scale.video_backend, store=self.reopen[0] if self.reopen else "directory",
            output_dir=self.reopen[1] if self.reopen else str(self.store.root), run_id=self.run_id,
            store_options=self.reopen[2] if self.reopen else {}, need={k: sorted(v) for k, v in plan.need.items()},
            todo={k: sorted(v) for k, v in plan.todo.items()}, digests=plan.digests, groups={g.name: g.nodes for g in groups},
            exception_mode=self.exception_mode, writers=self.writers, durable=self.durable, threads=self.threads.threads)
        log.info("%d %s over %s: %s", len(slots), "Ray actors" if self.scale.runner == "ray" else "worker processes",
                 len(chunks), ", ".join(f"{s.index}: {s.group} on {s.device}" for s in slots))
        bars = self._progress_bars(plan)

        def on_report(report: Any) -> None:
            for name, ix in report.written.items():
                self._written(name, ix, bars)

        try:
            if self.scale.runner == "ray":
                self.worker_records = run_on_ray(job, schedule, slots, stop=self.stop, on_report=on_report,
                                                 address=self.scale.ray_address)
            else:
                self.worker_records = run_workers(job, schedule, slots, stop=self.stop, on_report=on_report)
        finally:
            for bar in bars.values():
                bar.close()
        errors = [r.error for r in self.worker_records if r.status in ("died", "failed") and r.error]
        if errors and not self.stop.is_set():
            raise WorkerFailed("; ".join(e.splitlines()[0] for e in errors))
        if errors:
            log.warning("workers stopped: %s", "; ".join(e.splitlines()[0] for e in errors))

    # -- counts ------------------------------------------------------------------------------------
    def _written(self, name: str, indices: list[int], bars: Mapping[str, Any]) -> None:
        with self._lock:
            self.stats[name].computed += len(indices)
        if name in bars:
            bars[name].update(len(indices))

    def _write_failed(self, name: str, indices: list[int], message: str, tb: str) -> None:
        with self._lock:
            stats = self.stats[name]
            stats.failed += len(indices)
            stats.failed_frames.extend(indices)
            stats.errors.append(f"frames {ranges(indices)}: {message}")
        log.error("%s: writing frames %s failed: %s\n%s", name, ranges(indices), message, tb)

    def _finish_stats(self, executor: Executor) -> None:
        todo = getattr(self, "plan", None)
        all_stats: list[Mapping[str, Any]] = [attrs.asdict(st) for st in executor.stats.values()]
        if self.worker_records:  # the work was done by other processes: add up theirs
            all_stats = [st for record in self.worker_records for st in record.stats.values()]
        merged: dict[str, NodeStats] = {}
        for d in all_stats:
            m = merged.setdefault(d["name"], NodeStats(d["name"], d["batch_size"]))
            m.frames += d["frames"]
            m.seconds += d["seconds"]
            m.failed_frames += d["failed_frames"]
            m.errors += d["errors"]
            m.batch_size_changes += d["batch_size_changes"]
            m.batch_size = min(m.batch_size, d["batch_size"])
        for name, ex in merged.items():
            stats = self.stats[name]
            wanted = todo.todo[name] if todo is not None else set()
            failed = [i for i in ex.failed_frames if i in wanted]
            stats.failed += len(failed)
            stats.failed_frames.extend(failed)
            stats.errors.extend(ex.errors)
            stats.batch_size = ex.batch_size
            stats.batch_size_changes = ex.batch_size_changes
            stats.compute_seconds = ex.seconds / ex.frames * stats.computed if ex.frames else 0.0

    def _progress_bars(self, plan: ExportPlan) -> dict[str, Any]:
        if not self.progress:
            return {}
        from tqdm import tqdm

        todo = [n.name for n in self.graph if plan.todo[n.name]]
        return {name: tqdm(total=len(plan.todo[name]), desc=name, position=k, unit="frame", leave=True,
                           dynamic_ncols=True) for k, name in enumerate(todo)}

    def _run_fields(self, plan: ExportPlan) -> dict[str, Any]:
        return {
            "command": " ".join(hide_secret_args(sys.argv)), "video": str(self.source.path),
            "video_frames": self.source.num_frames, "fps": self.source.fps,
            "frames": ranges(self.selected), "frames_end_exclusive": True, "device": self.device, "overwrite": self.overwrite,
            "on_mismatch": self.on_mismatch, "exception_mode": self.exception_mode, "durable": self.durable,
            "signal": self.signal, "config": hide_secret_config(self.config),
            "graph": self.graph.to_config(), "fingerprints": plan.digests,
            "runner": self.scale.runner, "placement": self.scale.placement or None,
            "workers": [r.to_dict() for r in self.worker_records] or None,
            "representations": {name: s.to_dict() for name, s in self.stats.items()},
        }


@contextmanager
def _signals_stop(export: _Export) -> Iterator[None]:
    """In the main thread, SIGINT and SIGTERM ask the run to stop after the frames in flight; a second
    signal exits at once (files are renamed into place whole, so none is left half-written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if export.stop.is_set():
            os._exit(128 + signum)
        export.signal = signum
        export.stop.set()
        print(f"vre: {signal.Signals(signum).name}: stopping after the frames in flight "
              f"(again to stop at once)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class WorkerFailed(VreError):
    """A worker process or actor died or failed; the frames the others computed are kept."""

    exit_code = 1


def _plugin_versions() -> dict[str, str]:
    """Distribution → version of every loaded plugin and of core (recorded in fingerprints)."""
    from vrecore import __version__
    from vrecore.graph.registry import CORE_DISTRIBUTION, get_registry

    versions = dict(get_registry().versions)
    versions[CORE_DISTRIBUTION] = __version__
    return versions
