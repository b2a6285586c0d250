"""vre's cache folder, and the small JSON records vre keeps there to start faster (what Hydra composed, which
plugins are installed). Light on purpose: the registry reads it before anything else is imported.

A record is a JSON file (never a pickle) named by the digest of what it depends on, written whole (a temporary
file, then a rename) and read back only when it parses and says the same format; a record that cannot be written
(a read-only home) is simply not kept. Each kind keeps its newest `KEEP` records.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "digest", "read_record", "settled", "switched_on", "write_record"]

KEEP = 256
_RECORD = re.compile(r"[0-9a-f]{64}\.json\Z")
SETTLE_SECONDS = 2.0
"""A file or folder changed this recently may change again within its timestamp's resolution: a record keyed on
its time is not written (git's "racily clean" rule)."""


def cache_dir() -> Path:
    """vre's cache folder: ``$VRE_CACHE``, else ``$XDG_CACHE_HOME/vre`` or ``~/.cache/vre``."""
    base = os.environ.get("VRE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vre")
    return Path(base)


def switched_on(variable: str) -> bool:
    """A record kind's switch: on unless the environment variable says ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


def digest(material: Any) -> str:
    """The name of the record for ``material`` (anything JSON can write)."""
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def settled(mtimes_ns: Iterable[int | None]) -> bool:
    """Whether every time is old enough for a record keyed on it (see `SETTLE_SECONDS`)."""
    limit = time.time_ns() - int(SETTLE_SECONDS * 1e9)
    return all(t is None or t < limit for t in mtimes_ns)


def read_record(kind: str, key: str, fmt: int) -> dict[str, Any] | None:
    """The record ``key`` of ``kind`` when it exists, parses and has format ``fmt``; else None."""
    try:
        record = json.loads((cache_dir() / kind / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == fmt else None


def write_record(kind: str, key: str, record: dict[str, Any]) -> bool:
    """Keep ``record`` (with its ``format``) as ``key`` of ``kind``; False when it could not be written."""
    folder = cache_dir() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(record))
            os.replace(temporary, folder / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _prune(folder)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _prune(folder: Path) -> None:
    """Remove the oldest records beyond `KEEP` (only files named as records are named)."""
    records = [e for e in os.scandir(folder) if _RECORD.match(e.name)]
    if len(records) <= KEEP:
        return
    records.sort(key=lambda e: e.stat().st_mtime_ns)
    for old in records[:len(records) - KEEP]:
        with contextlib.suppress(OSError):
            os.unlink(old.path)
