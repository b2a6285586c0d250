"""`vre export [KEY=VALUE ...]`: export representations of a video (a Hydra app; ``-m`` runs one job per video)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from vrecore.cli._hydra import check_keys, resolve_config, run_hydra
from vrecore.cli._logging import cli_logging
from vrecore.cli._messages import hide_environment, print_error, remember_secret_values
from vrecore.errors import VreError

__all__ = ["main", "report_after_export", "run_export_config"]


def main(args: list[str]) -> int:
    """`vre export [KEY=VALUE ...]` (or ``--seed-config CFG``, the seed tool's config translated first)."""
    from vrecore._malloc import tune_malloc_for_frames

    tune_malloc_for_frames()
    if any(a == "--seed-config" or a.startswith("--seed-config=") for a in args):
        from vrecore.cli.convert_config import seed_export_args

        with seed_export_args(args) as hydra_args:
            return run_hydra("export", hydra_args)
    return run_hydra("export", args)


def run_export_config(cfg: Any, outcome: dict[str, Any] | None = None) -> int:
    """Run one export from a composed config; user mistakes become one line and exit code 2.
    ``outcome`` receives the video, output folder, status and error (for a multirun's table)."""
    outcome = {} if outcome is None else outcome
    try:
        config = resolve_config("export", cfg)
    except VreError as e:
        print_error("export", e)
        outcome.update(status="failed", error=hide_environment(str(e)))
        return e.exit_code
    from vrecore.store.location import HIDDEN, secret_values

    options = config.get("store_options")
    remember_secret_values(secret_values(options if isinstance(options, dict) else None), HIDDEN)
    outcome["video"] = config.get("video")
    undo_logging = cli_logging("export", errors=False)  # warnings (e.g. a frame quarantined) show; errors are ours
    try:
        return _export_from_config(config, outcome)
    finally:
        undo_logging()


def _export_from_config(config: dict[str, Any], outcome: dict[str, Any]) -> int:
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    try:
        check_keys("export", config)
        if config.get("videos") is not None:
            return _export_videos(config, outcome)
        video = config.get("video")
        if video is None:
            from vrecore.frames.sample import sample_clip

            video = str(sample_clip())
            print(f"vre: no video given, using the embedded sample clip {video}", file=sys.stderr)
        output_dir = config.get("output_dir")
        stem = Path(video).stem
        if output_dir is None:
            root = config.get("output_root")
            output_dir = str(Path(root) / stem if root else Path(video).parent / f"{stem}_vre_export")
        outcome["output_dir"] = output_dir
        graph = build_graph(config)
        progress = config.get("progress")
        result = run_export(
            graph, video, output_dir, frames=config.get("frames"), overwrite=bool(config.get("overwrite")),
            on_mismatch=config.get("on_mismatch", "error"), exception_mode=config.get("exception_mode", "stop"),
            device=config.get("device", "cpu"), writers=config.get("writers", 2), threads=config.get("threads"),
            durable=bool(config.get("durable")), progress=sys.stderr.isatty() if progress is None else progress,
            workers=config.get("workers", 1), devices=config.get("devices"), placement=config.get("placement"),
            runner=config.get("runner", "local"), ray_address=config.get("ray_address"),
            video_backend=config.get("video_backend", "auto"), store=config.get("store"),
            store_options=config.get("store_options") or None, config=config, raise_on_error=False)
    except VreError as e:
        print_error("export", e)
        outcome.update(status="failed", error=hide_environment(str(e)).splitlines()[0])
        return e.exit_code
    print(result.summary(), file=sys.stderr)
    if config.get("report"):
        report_after_export(result.output_dir)
    failed = sum(s.failed for s in result.stats.values())
    outcome.update(status=result.status, error=result.error and result.error.splitlines()[0],
                   frames=f"{len(result.frames)} x {len(result.stats)} representations: "
                          f"{sum(s.computed for s in result.stats.values())} computed, "
                          f"{sum(s.skipped for s in result.stats.values())} skipped, {failed} failed")
    if result.ok and failed:
        print(f"vre export: warning: {failed} frame(s) failed and were skipped (exception_mode=skip); the log says "
              f"why: {result.log_file}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"vre export: {result.error} (log: {result.log_file})", file=sys.stderr)
        return result.exit_code
    if not result.ok:
        print_error("export", f"{result.error} (log: {result.log_file}; frames already written are kept)")
        return result.exit_code
    return 0



def _export_videos(config: dict[str, Any], outcome: dict[str, Any]) -> int:
    """`vre export videos=... output_root=OUT`: every video through one graph in this process (or over
    ``workers`` processes / Ray actors); a summary table at the end; exit 1 when a video failed."""
    from vrecore.errors import ConfigError
    from vrecore.export.many import export_videos
    from vrecore.graph.build import build_graph

    for key in ("video", "output_dir"):
        if config.get(key) is not None:
            raise ConfigError(f"videos= and {key}= together: videos= exports each video into <output_root>/<stem>; "
                              f"give output_root instead of {key}" if key == "output_dir" else
                              "videos= and video= together: name the videos in one of them")
    if config.get("placement"):
        raise ConfigError("placement is for one video; with videos= each worker process runs the whole graph")
    graph = build_graph(config)
    progress = config.get("progress")
    result = export_videos(
        graph, config["videos"], config.get("output_root"), workers=config.get("workers", 1),
        runner=config.get("runner", "local"), ray_address=config.get("ray_address"),
        progress=sys.stderr.isatty() if progress is None else progress, frames=config.get("frames"),
        overwrite=bool(config.get("overwrite")), on_mismatch=config.get("on_mismatch", "error"),
        exception_mode=config.get("exception_mode", "stop"), device=config.get("device", "cpu"),
        writers=config.get("writers", 2), threads=config.get("threads"), durable=bool(config.get("durable")),
        video_backend=config.get("video_backend", "auto"), store=config.get("store"),
        store_options=config.get("store_options") or None, config=config)
    print(f"vre export: {result.summary()}", file=sys.stderr)
    outcome.update(video=str(config["videos"]), output_dir=config.get("output_root"),
                   status="ok" if result.ok else "failed",
                   frames=f"{len(result.clips)} videos: {result.count('done')} done, {result.count('skipped')} "
                          f"skipped, {result.count('failed')} failed",
                   error=None if result.ok else f"{result.count('failed')} video(s) failed")
    if config.get("report"):
        for clip in result.clips:
            if clip.status == "done":
                report_after_export(clip.output_dir)
    return result.exit_code


def report_after_export(output_dir: str | os.PathLike[str]) -> Path | None:
    """`vre export ... report=true`: write the report and say where; a report that cannot be written is a warning
    (the export's outcome and exit status stay those of the export)."""
    from vrecore.visual.report import write_report

    try:
        path = write_report(output_dir, warn=lambda m: print(f"vre export: warning: {m}", file=sys.stderr))
    except VreError as e:
        print(f"vre export: warning: no report: {e}", file=sys.stderr)
        return None
    print(f"vre export: report {path}", file=sys.stderr)
    return path
