"""Bookkeeping of an export run: its id, log file, per-representation statistics and run metadata."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from vrecore.store.base import Store
from vrecore.store.safe_paths import open_append

__all__ = ["ExportResult", "RepresentationStats", "RunLog", "mark_dead_runs", "new_run_id", "process_gone"]


def new_run_id() -> str:
    """A run id that sorts by start time: ``YYYYmmdd-HHMMSS-xxxxxx``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@attrs.define
class RepresentationStats:
    """What one run did for one representation."""

    name: str
    batch_size: int
    computed: int = 0
    """Frames computed and stored by this run."""
    skipped: int = 0
    """Selected frames already stored and verified."""
    failed: int = 0
    compute_seconds: float = 0.0
    failed_frames: list[int] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    batch_size_changes: list[dict[str, Any]] = attrs.field(factory=list)
    quarantined: list[str] = attrs.field(factory=list)
    """Bad files found among the selected frames and moved to ``<out>/.quarantine`` (then recomputed)."""
    recomputed_stale: int = 0
    """Selected frames made under an earlier fingerprint, computed again."""

    @property
    def seconds_per_frame(self) -> float | None:
        return self.compute_seconds / self.computed if self.computed else None

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["seconds_per_frame"] = self.seconds_per_frame
        return d


@attrs.define
class ExportResult:
    """The outcome of `run_export`: per-representation stats and where metadata and log went."""

    run_id: str
    output_dir: Path
    frames: list[int]
    stats: dict[str, RepresentationStats]
    started: str
    ended: str
    seconds: float
    status: str
    """ok, failed or interrupted."""
    error: str | None
    log_file: Path
    metadata_file: Path
    signal: int | None = None
    """The signal that interrupted the run (SIGINT, SIGTERM), if one did."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        """What the `vre` command exits with: 0, 1 (failed), 128 + the signal (interrupted)."""
        if self.status == "interrupted":
            return 128 + (self.signal or 2)
        return 0 if self.ok else 1

    def summary(self) -> str:
        """A table of frames computed / skipped / failed and time per frame."""
        rows = [("representation", "computed", "skipped", "failed", "batch", "ms/frame")]
        for s in self.stats.values():
            spf = s.seconds_per_frame
            rows.append((s.name, str(s.computed), str(s.skipped), str(s.failed), str(s.batch_size),
                         f"{spf * 1000:.1f}" if spf is not None else "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in rows]
        lines.append(f"run {self.run_id}: {self.status} in {self.seconds:.1f}s, {len(self.frames)} frames selected; "
                     f"output {self.output_dir}")
        return "\n".join(lines)


class _QuietFileHandler(logging.FileHandler):
    """A log file that stays silent when it cannot be written (a full disk is reported once, by the run); opened
    below the output folder without following a link."""

    def __init__(self, root: Path, rel: str) -> None:
        self._root, self._rel = root, rel
        super().__init__(root / rel, encoding="utf-8")

    def _open(self) -> Any:
        return os.fdopen(open_append(self._root, self._rel), "a", encoding="utf-8")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


class RunLog:
    """The run's log file (``<out>/.logs/log_<run>.txt``) and run metadata (``run_metadata_<run>.json``)."""

    def __init__(self, store: Store, run_id: str, *, suffix: str = "") -> None:
        self.store, self.run_id = store, run_id
        self.started = datetime.now(timezone.utc)
        self._log_rel = f"{store.logs.name}/log_{run_id}{suffix}.txt"
        self.log_file = store.root / self._log_rel
        self.metadata_file = store.logs / f"run_metadata_{run_id}.json"
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Send vrecore's log records (INFO and up) to the run's log file meanwhile."""
        handler = _QuietFileHandler(self.store.root, self._log_rel)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("vrecore")
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(min(old_level or logging.INFO, logging.INFO))
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            handler.close()

    def write(self, fields: Mapping[str, Any], *, status: str, error: str | None, ended: datetime | None) -> Path:
        """Write the run metadata (again): ``fields`` plus status, times, host and process."""
        from vrecore import __version__

        with self._lock:
            return self.store.write_run_metadata(self.run_id, {
                "run_id": self.run_id, "vre_version": __version__, "status": status, "error": error,
                "started": self.started.isoformat(), "ended": ended.isoformat() if ended else None,
                "seconds": (ended - self.started).total_seconds() if ended else None,
                "host": socket.gethostname(), "pid": os.getpid(), **fields,
            })


def process_gone(host: Any, pid: Any) -> bool:
    """Whether process ``pid`` of ``host`` has ended; known on this host only (another host's never counts)."""
    if host != socket.gethostname() or isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    try:  # a killed child nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


def mark_dead_runs(store: Store) -> list[tuple[dict[str, Any], bool]]:
    """Record as ``died`` every run whose metadata says ``running`` but whose process on this host is gone
    (killed with -9, by the out-of-memory killer...); returns each one's run metadata and whether it could
    be rewritten (not on a read-only output)."""
    logs = store.root / ".logs"
    if logs.is_symlink() or not logs.is_dir():
        return []
    died = []
    for path in sorted(logs.glob("run_metadata_*.json")):
        if path.is_symlink() or not path.is_file():
            continue  # (only regular files are read: a named pipe would block)
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(run, dict) or run.get("status") != "running" or not process_gone(run.get("host"),
                                                                                          run.get("pid")):
            continue
        run.update(status="died", error=f"process {run['pid']} ended without finishing the run (killed, e.g. by "
                                        f"kill -9 or the out-of-memory killer); frames already written are kept",
                   died_noticed=datetime.now(timezone.utc).isoformat())
        run_id = str(run.get("run_id") or path.stem[len("run_metadata_"):])
        try:
            store.write_run_metadata(run_id, run)
        except OSError:
            died.append((run, False))
        else:
            died.append((run, True))
    return died
