"""Many videos through one graph: each into ``<output_root>/<stem>``, models set up once, finished videos skipped.

`export_videos` runs every video of a list, a folder or a glob through the same graph in one process (or spreads
the videos over worker processes or Ray actors, `vrecore.export._many_pool`): the next video is opened while the
current one computes, a video that fails is recorded and the others go on, and a video finished by an earlier run
with the same graph, frames and video file is skipped from one small record (``<output_dir>/.logs/videos_done.json``)
without opening it or planning its frames.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import ConfigError
from vrecore.export.clip import Clip, ClipOutcome, ClipRunner, is_done
from vrecore.export.fingerprint import digest
from vrecore.graph.build import Graph

__all__ = ["VIDEO_SUFFIXES", "VideosResult", "export_videos", "list_videos", "plan_clips"]

log = logging.getLogger("vrecore.export.many")

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp")
"""What a folder given as ``videos`` is searched for (the files directly inside it)."""

_RUN_KEYS = ("frames", "overwrite", "on_mismatch", "exception_mode", "device", "writers", "video_backend", "threads",
             "durable", "store", "store_options", "config")
"""`run_export` arguments that `export_videos` hands on to each video's run."""


def list_videos(videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The videos named by ``videos``: a list of paths, a folder (its video files), a glob pattern, or a text file
    with one path per line (blank lines and ``#`` comments skipped; relative paths are relative to the file)."""
    if not isinstance(videos, (str, os.PathLike)):
        found = [str(v) for v in videos]
        if not found:
            raise ConfigError("videos is an empty list; name at least one video")
        return found
    spec = os.fspath(videos)
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not found:
            raise ConfigError(f"videos '{spec}': the folder holds no video file ({', '.join(VIDEO_SUFFIXES[:6])}...)")
        return found
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return [str(path)]
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"videos '{spec}': cannot read it as a list of videos ({e}); give a text file with "
                              f"one path per line, a folder or a glob") from None
        entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not entries:
            raise ConfigError(f"videos '{spec}': the list names no video (one path per line)")
        return [e if "://" in e or os.path.isabs(os.path.expanduser(e)) else str(path.parent / e) for e in entries]
    if glob.has_magic(spec):
        found = sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))
        if not found:
            raise ConfigError(f"videos '{spec}': the pattern matches no file")
        return found
    give = "give a folder of videos, a glob (quoted: 'clips/*.mp4') or a text file with one video per line"
    if path.exists():  # a device, a named pipe, a socket: never read as a list
        kind = next((what for test, what in ((path.is_char_device, "a character device"),
                                             (path.is_block_device, "a block device"), (path.is_fifo, "a named pipe"),
                                             (path.is_socket, "a socket")) if test()), "not a regular file")
        raise ConfigError(f"videos '{spec}' is {kind}, not a file or folder; {give}")
    raise ConfigError(f"videos '{spec}' does not exist; {give}")


@attrs.define
class VideosResult:
    """The outcome of `export_videos`: one `ClipOutcome` per video, in the list's order."""

    clips: list[ClipOutcome]
    seconds: float
    signal: int | None = None

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.clips)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.clips)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0 and self.count("interrupted") == 0

    @property
    def exit_code(self) -> int:
        """0 when every video is done or skipped, 130 (143) when interrupted, else 1."""
        if self.signal is not None or self.count("interrupted"):
            return 128 + (self.signal or 2)
        return 0 if self.ok else 1

    def summary(self) -> str:
        """A table of done / skipped / failed videos with frames and frames/s, then one line per failed video."""
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        rows = [("done", self.count("done"), f"{self.frames} frames computed, {rate:.1f} frames/s"),
                ("skipped", self.count("skipped"), "finished by an earlier run"),
                ("failed", self.count("failed"), "")]
        if self.count("interrupted"):
            rows.append(("interrupted", self.count("interrupted"), "the next run resumes them"))
        lines = [f"{len(self.clips)} videos in {self.seconds:.1f} s:"]
        lines += [f"  {name:<11} {n:>6}  {note}".rstrip() for name, n, note in rows]
        partial = [c for c in self.clips if c.status == "done" and c.failed_frames]
        if partial:
            lines.append(f"  {len(partial)} done video(s) have failed frames (exception_mode=skip); a re-run computes "
                         f"them again")
        lines += [f"  failed: {c.video}: {c.error}" for c in self.clips if c.status == "failed"]
        return "\n".join(lines)


def export_videos(graph: Graph, videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  output_root: str | os.PathLike[str] | None = None, *, workers: int = 1, runner: str = "local",
                  ray_address: str | None = None, progress: bool = False,
                  on_clip: Callable[[ClipOutcome], None] | None = None, **run_kwargs: Any) -> VideosResult:
    """Export every video of ``videos`` (see `list_videos`) with ``graph`` into ``<output_root>/<video stem>``
    (without ``output_root``: ``<video folder>/<stem>_vre_export``), the folders ``vre export -m video=...`` makes.

    ``run_kwargs`` are `run_export`'s (``frames``, ``overwrite``, ``exception_mode``, ``device``...) and apply to
    each video. A video that fails (missing, undecodable, a representation failing) is recorded and the others go
    on; a video finished before with the same graph, frames and file (size and mtime) is skipped without being
    opened (``overwrite=True`` runs it again). ``workers`` processes (or ``runner="ray"``: Ray actors) take videos
    from one queue, each with the graph set up once. ``on_clip`` is called with each video's outcome.
    """
    unknown = set(run_kwargs) - set(_RUN_KEYS)
    if unknown:
        raise ConfigError(f"export_videos got unknown arguments {', '.join(sorted(unknown))}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if runner not in ("local", "ray"):
        raise ConfigError(f"runner {runner!r} is not one of local, ray")
    t0 = time.perf_counter()
    clips = plan_clips(graph, list_videos(videos), output_root, run_kwargs)
    outcomes: list[ClipOutcome | None] = [None] * len(clips)
    todo = []
    for clip in clips:
        if not run_kwargs.get("overwrite") and is_done(graph, clip):
            outcomes[clip.index] = ClipOutcome(clip.video, clip.output_dir, "skipped")
        else:
            todo.append(clip)
    bar = _Progress(len(clips), progress)
    for done in outcomes:
        if done is not None:
            bar.update(done)
            if on_clip:
                on_clip(done)

    def record(clip: Clip, outcome: ClipOutcome) -> None:
        outcomes[clip.index] = outcome
        bar.update(outcome)
        if on_clip:
            on_clip(outcome)

    signal_number = None
    try:
        if todo and (workers > 1 or runner == "ray"):
            from vrecore.export._many_pool import run_pool

            signal_number = run_pool(graph, todo, record, workers=workers, runner=runner, ray_address=ray_address,
                                     run_kwargs=run_kwargs)
        elif todo:
            signal_number = _run_here(graph, todo, record, run_kwargs)
    finally:
        bar.close()
    result = [o if o is not None else ClipOutcome(c.video, c.output_dir, "interrupted", error="not started")
              for c, o in zip(clips, outcomes, strict=True)]
    return VideosResult(result, time.perf_counter() - t0, signal_number)


def plan_clips(graph: Graph, videos: list[str], output_root: str | os.PathLike[str] | None,
               run_kwargs: Mapping[str, Any]) -> list[Clip]:
    """Each video's output folder (refusing two videos with one stem) and skip key."""
    from vrecore.export.run import _plugin_versions

    common = {"graph": graph.to_config(), "versions": _plugin_versions(), "frames": run_kwargs.get("frames"),
              "store": run_kwargs.get("store")}
    clips: list[Clip] = []
    seen: dict[str, str] = {}
    for k, video in enumerate(videos):
        stem = Path(video).stem
        out = str(Path(output_root) / stem) if output_root is not None else str(Path(video).parent / f"{stem}_vre_export")
        if out in seen:
            raise ConfigError(f"videos '{seen[out]}' and '{video}' would both export into {out} (same name); rename "
                              f"one, or export them in separate runs with separate output_root")
        seen[out] = video
        clips.append(Clip(k, video, out, digest({**common, "video": _file_identity(video)})))
    return clips


def _file_identity(video: str) -> list[Any]:
    """The video's absolute path, size and mtime (a stat, not an open): a changed file is planned again."""
    try:
        st = os.stat(video)
    except OSError:
        return [video, None, None]
    return [os.path.abspath(video), st.st_size, st.st_mtime_ns]


def _run_here(graph: Graph, clips: list[Clip], record: Callable[[Clip, ClipOutcome], None],
              run_kwargs: Mapping[str, Any]) -> int | None:
    """Clips in this process, each next one opened (its first frame decoded) while the current one computes."""
    runner = ClipRunner(graph, run_kwargs)
    opener = ThreadPoolExecutor(1, thread_name_prefix="vre-open")
    ahead: Future[Any] | None = opener.submit(runner.open, clips[0])
    try:
        for k, clip in enumerate(clips):
            current, ahead = ahead, (opener.submit(runner.open, clips[k + 1]) if k + 1 < len(clips) else None)
            outcome = runner.run(clip, current)
            record(clip, outcome)
            if outcome.status == "interrupted":
                return _signal_of(outcome)
    except KeyboardInterrupt:
        return 2
    finally:
        opener.shutdown(wait=True)
        if ahead is not None and not ahead.cancelled() and ahead.exception() is None:
            ahead.result().close()  # opened for a clip that never ran (an interruption)
        runner.close()
    return None


def _signal_of(outcome: ClipOutcome) -> int:
    return 15 if outcome.error and "SIGTERM" in outcome.error else 2


class _Progress:
    """One bar over the videos, with the frames computed and frames/s as its postfix."""

    def __init__(self, total: int, show: bool) -> None:
        self.bar: Any = None
        self.frames, self.t0 = 0, time.perf_counter()
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", dynamic_ncols=True)

    def update(self, outcome: ClipOutcome) -> None:
        self.frames += outcome.frames
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{self.frames} frames, {self.frames / elapsed:.1f} frames/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
