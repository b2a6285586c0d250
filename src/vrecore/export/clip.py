"""One video of `vrecore.export.many`: its run with a kept executor, and its skip record.

A video finished with the same graph, frames and video file (size and mtime) gets a record in
``<output_dir>/.logs/videos_done.json`` with the size and mtime of each representation's frame records and
metadata: a later run that finds it unchanged skips the video without opening it or planning its frames.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import VreError
from vrecore.graph.build import Graph
from vrecore.store.safe_paths import atomic_write, read_regular

__all__ = ["DONE_FILE", "Clip", "ClipOutcome", "ClipRunner", "is_done", "mark_done"]

log = logging.getLogger("vrecore.export.clip")

DONE_FILE = "videos_done.json"
"""Under ``<output_dir>/.logs/``: what `vrecore.export.many.export_videos` finished there (the skip record)."""


@attrs.frozen
class Clip:
    """One video of the list, where it goes, and the key its skip record must carry."""

    index: int
    video: str
    output_dir: str
    key: str


@attrs.define
class ClipOutcome:
    """What happened to one video: ``done``, ``skipped`` (finished before), ``failed`` or ``interrupted``."""

    video: str
    output_dir: str
    status: str
    frames: int = 0
    """Frames computed (all representations' frames count once per frame index)."""
    failed_frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    log_file: str | None = None


def _watched_files(graph: Graph, output_dir: str) -> list[Path]:
    """The files any later run that writes frames or metadata changes (one pair per stored representation)."""
    root = Path(output_dir)
    return [root / n.name / f for n in graph if n.settings.writes for f in (".frames.jsonl", ".repr_metadata.json")]


def is_done(graph: Graph, clip: Clip) -> bool:
    """Whether ``clip`` was finished by an earlier run with the same key, and its folder not written since
    (a few stats and one small read: the video is not opened, no frame is planned)."""
    try:
        record = json.loads(read_regular(clip.output_dir, f".logs/{DONE_FILE}"))  # never through a link
        if not isinstance(record, dict) or record.get("key") != clip.key:
            return False
        files = record.get("files") or {}
        return bool(files) and all(files.get(str(p)) == _stat(p) for p in _watched_files(graph, clip.output_dir))
    except (OSError, ValueError, VreError):
        return False


def _stat(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def mark_done(graph: Graph, clip: Clip, run_id: str) -> None:
    """Write ``clip``'s skip record (whole, by rename); a folder whose files are missing gets none."""
    try:
        files = {str(p): _stat(p) for p in _watched_files(graph, clip.output_dir)}
        data = json.dumps({"key": clip.key, "run_id": run_id, "video": clip.video, "files": files}).encode()
        # whole, by rename, and never through a link below the output folder
        atomic_write(clip.output_dir, f".logs/{DONE_FILE}", lambda f: f.write(data), f".{DONE_FILE}.{os.getpid()}.tmp")
    except (OSError, VreError) as e:  # the export itself is fine; the next run plans it again
        log.warning("%s: no skip record written (%s)", clip.output_dir, e)


class ClipRunner:
    """Runs clips one after the other with one graph, one executor (models set up once) and one set of writer
    threads."""

    def __init__(self, graph: Graph, run_kwargs: Mapping[str, Any]) -> None:
        from vrecore.export.writer import KeptWriterThreads
        from vrecore.graph.devices import thread_limit
        from vrecore.graph.executor import Executor

        self.graph, self.run_kwargs = graph, dict(run_kwargs)
        self.executor = Executor(graph, device=self.run_kwargs.get("device", "cpu"),
                                 exception_mode=self.run_kwargs.get("exception_mode", "stop"),
                                 threads=thread_limit(self.run_kwargs.get("threads")))
        self.writer_threads = KeptWriterThreads()

    def open(self, clip: Clip) -> Any:
        from vrecore.frames.video import open_video

        return open_video(clip.video, self.run_kwargs.get("video_backend", "auto"))

    def run(self, clip: Clip, source: Future[Any] | None = None) -> ClipOutcome:
        """Export one clip; every failure becomes its outcome (KeyboardInterrupt goes through)."""
        from vrecore.export.run import run_export

        t0 = time.perf_counter()
        opened = None
        try:
            opened = source.result() if source is not None else self.open(clip)
            with self.writer_threads.lent():
                result = run_export(self.graph, opened, clip.output_dir, executor=self.executor,
                                    raise_on_error=False, **self.run_kwargs)
        except VreError as e:
            return ClipOutcome(clip.video, clip.output_dir, "failed", seconds=time.perf_counter() - t0,
                               error=_one_line(e))
        except Exception as e:  # noqa: BLE001 - one video's bug must not stop the others; logged with its traceback
            log.error("video %s failed", clip.video, exc_info=True)
            return ClipOutcome(clip.video, clip.output_dir, "failed", seconds=time.perf_counter() - t0,
                               error=f"{type(e).__name__}: {_one_line(e)}")
        finally:
            if opened is not None:
                opened.close()
        computed = max((s.computed for s in result.stats.values()), default=0)
        failed = max((s.failed for s in result.stats.values()), default=0)
        outcome = ClipOutcome(clip.video, clip.output_dir, "done" if result.ok else result.status, computed, failed,
                              time.perf_counter() - t0, result.error and _one_line(result.error), str(result.log_file))
        if outcome.status == "done" and not failed:
            mark_done(self.graph, clip, result.run_id)
        return outcome

    def close(self) -> None:
        self.writer_threads.close()
        self.executor.teardown()


def _one_line(e: BaseException | str) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
