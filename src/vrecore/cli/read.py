"""`vre read OUT`: the quick look before training: tasks, types, shapes, dtypes, frames, missing frames, statistics."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from vrecore.frames.video import ranges

__all__ = ["describe", "main"]


def describe(dataset: Any, *, stats: bool) -> dict[str, Any]:
    """What `vre read` prints, as data."""
    missing = dataset.missing()
    statistics = dataset.compute_statistics() if stats else {}
    tasks = {}
    for task in dataset.task_names:
        entry: dict[str, Any] = {"type": dataset.task_types().get(task) or "raw", "shape": list(dataset.data_shape[task]),
                                 "dtype": dataset.dtypes[task], "frames": dataset.frame_counts()[task],
                                 "classification": task in dataset.classification_tasks,
                                 "missing": {video: ranges(frames) for video, frames in missing.get(task, {}).items()}}
        if task in statistics:
            s = statistics[task]
            entry["statistics"] = {"min": s.min.tolist(), "max": s.max.tolist(), "mean": s.mean.tolist(),
                                   "std": s.std.tolist()}
        tasks[task] = entry
    return {"path": str(dataset.path), "videos": dataset.videos, "items": len(dataset), "tasks": tasks}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vre read", description=(
        "Show what a training job would read from an export (or a folder of exports, or a pack): its tasks with "
        "type, item shape and dtype, frame counts and missing frames; --stats adds per-channel statistics."))
    parser.add_argument("path", help="an export folder, a folder of exports, a `vre pack` output, or a store's "
                                     "location (s3://bucket/x, out.zarr)")
    parser.add_argument("--tasks", help="comma-separated tasks (default: every stored one)")
    parser.add_argument("--stats", action="store_true", help="per-channel min, max, mean, std (cached in the dataset)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for --stats")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    ns = parser.parse_args(argv)
    if ns.workers < 0:
        from vrecore.errors import ConfigError

        raise ConfigError(f"--workers must be 0 or more, got {ns.workers}")
    from vrecore.data.dataset import MultiTaskDataset

    logger, handler = logging.getLogger("vrecore.data"), _Lines()
    logger.addHandler(handler)
    try:
        dataset = MultiTaskDataset(ns.path, ns.tasks.split(",") if ns.tasks else None, handle_missing="fill_zero",
                                   stats_workers=ns.workers, to_tensor=False)
        info = describe(dataset, stats=ns.stats)
    finally:
        logger.removeHandler(handler)
    if ns.json:
        print(json.dumps(info, indent=1))
        return 0
    videos = info["videos"]
    print(f"{info['path']}: {info['items']} items, {len(videos)} video(s)"
          + (f" ({', '.join(videos[:8])}{', ...' if len(videos) > 8 else ''})" if len(videos) > 1 else ""))
    rows = [("task", "type", "shape", "dtype", "frames", "missing")]
    for task, t in info["tasks"].items():
        lacking = "; ".join(f"{v}: {r}" if len(videos) > 1 else r for v, r in t["missing"].items()) or "-"
        kind = " (classes)" if t["classification"] else ""
        rows.append((task, t["type"] + kind, "x".join(map(str, t["shape"])), t["dtype"], str(t["frames"]), lacking))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    if ns.stats:
        print("statistics (per channel):")
        for task, t in info["tasks"].items():
            if "statistics" in t:
                s = t["statistics"]
                for key in ("min", "max", "mean", "std"):
                    print(f"  {task:<{widths[0]}}  {key:<4}  " + "  ".join(f"{v:.6g}" for v in s[key]))
    return 0


class _Lines(logging.Handler):
    """The reader's warnings (a type that cannot be built) as ``vre read: warning:`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"vre read: warning: {record.getMessage()}", file=sys.stderr)
