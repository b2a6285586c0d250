"""Verification of stored frames: a frame counts as done only when its files are what was written.

Two levels, both through any `vrecore.store.Store`:

* **quick** (every export plans with it; ~20 ms per 1,000 frames): each file's size and mtime are
  compared with the record appended when it was written. A file whose size differs is corrupt
  (truncated, emptied, replaced); one whose mtime differs but size matches (a copy, a touch) is
  re-read and its CRC-32 compared; a file with no record (a crash between the rename and the record,
  or an export of vre 0.1) is read and decoded in full, then recorded. A record made under another
  fingerprint marks the frame stale.
* **deep** (``vre verify OUT --deep``): every file is re-read, its CRC-32 compared with the record,
  and decoded in full: an npz must load without pickle as the declared shape and dtype (zip's own
  CRC catches damaged data), a preview must decode at the declared size.

The quick level does not see a file changed in place to other bytes of the same size while keeping
its mtime (deliberate tampering); the deep level does.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from vrecore.store.base import FileFacts, Store
from vrecore.store.npz import crc32, load_npz
from vrecore.store.safe_paths import NotRegularFileError

__all__ = ["DiskForm", "RepresentationCheck", "check_content", "check_frames", "latest_records", "quarantine"]

log = logging.getLogger("vrecore.store.verify")


@attrs.frozen
class DiskForm:
    """Shape and dtype of one stored frame, and the (height, width) of its previews."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def image_size(self) -> tuple[int, int]:
        return self.shape[0], self.shape[1]


@attrs.define
class RepresentationCheck:
    """The state of a representation's frames: complete, missing, corrupt (with why) or stale."""

    name: str
    complete: set[int] = attrs.field(factory=set)
    missing: set[int] = attrs.field(factory=set)
    corrupt: dict[int, list[str]] = attrs.field(factory=dict)
    """Frame → problems, each naming the file ("npz/5.npz: truncated ...")."""
    stale: set[int] = attrs.field(factory=set)
    adopt: list[dict[str, Any]] = attrs.field(factory=list)
    """Records to append: files found good without a current record (unrecorded, or touched)."""
    stale_reason: str = "made under an earlier fingerprint (kept with on_mismatch=keep)"
    metadata_problem: str | None = None
    """``missing`` or ``corrupt`` when the representation's metadata file cannot be read (`vre metadata` rebuilds it)."""

    @property
    def bad(self) -> int:
        return len(self.corrupt) + len(self.stale)


def latest_records(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[int, FileFacts]], dict[int, dict[str, Any]]]:
    """Per sub-folder the latest facts of each frame's file, and each frame's latest record."""
    facts: dict[str, dict[int, FileFacts]] = {}
    latest: dict[int, dict[str, Any]] = {}
    for r in records:
        frame = r.get("frame")
        if not isinstance(frame, int):
            continue
        latest[frame] = dict(r)
        for sub, f in (r.get("files") or {}).items():
            if isinstance(f, list) and len(f) == 3:
                facts.setdefault(sub, {})[frame] = f
    return facts, latest


def check_content(sub: str, data: bytes, expected: DiskForm | None,
                  load: Callable[[bytes], Any] | None = None) -> str | None:
    """Why ``data`` is not a good file of sub-folder ``sub`` (None when it is); ``load``: the store's reader of
    its disk-form bytes (default: an npz)."""
    if not data:
        return "empty file (0 bytes)"
    if sub == "npz":
        try:
            array = load(data) if load is not None else load_npz(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001 - every way a file can be broken ends here
            return f"not a readable npz ({type(e).__name__}: {_first_line(e)})"
        if expected is not None:
            if tuple(array.shape) != tuple(expected.shape):
                return f"holds shape {tuple(array.shape)}, expected {tuple(expected.shape)}"
            if str(array.dtype) != expected.dtype:
                return f"holds dtype {array.dtype}, expected {expected.dtype}"
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size = im.size
    except Exception as e:  # noqa: BLE001
        return f"not a readable {sub} image ({type(e).__name__}: {_first_line(e)})"
    if expected is not None and (size[1], size[0]) != expected.image_size:
        return f"image is {size[0]}x{size[1]}, expected {expected.image_size[1]}x{expected.image_size[0]}"
    return None


def check_frames(store: Store, name: str, subs: Sequence[str], frames: Iterable[int] | None = None, *,
                 expected: DiskForm | None = None, fingerprint: str | None = None, deep: bool = False,
                 run_id: str | None = None) -> RepresentationCheck:
    """Check the stored frames of one representation (``frames``: those to look at; None: every
    frame present or recorded). ``fingerprint``: the digest a current frame's record must carry."""
    stats = {sub: store.stat_frames(name, sub) for sub in subs}
    facts, latest = latest_records(store.read_records(name))
    if frames is None:
        wanted = set(latest).union(*(set(s) for s in stats.values()))
    else:
        wanted = set(frames)
    check = RepresentationCheck(name)
    for i in sorted(wanted):
        problems: list[str] = []
        new_facts: dict[str, FileFacts] = {}
        absent = False
        for sub in subs:
            st = stats[sub].get(i)
            if st is None:
                absent = True
                continue
            where = f"{sub}/{i}.{sub}"
            recorded = facts.get(sub, {}).get(i)
            if recorded is not None and not deep and st[0] == recorded[0] and st[1] == recorded[1]:
                continue  # the quick level: size and mtime as written
            if recorded is not None and not deep and st[0] != recorded[0]:
                problems.append(f"{where}: {st[0]} bytes, {recorded[0]} when written (truncated or replaced)")
                continue
            try:
                data = store.read_bytes(name, sub, i)  # a link below the output folder is refused (SymlinkRefused)
            except NotRegularFileError as e:  # e.g. a named pipe: never opened blocking, never trusted
                problems.append(f"{where}: {e.strerror}")
                continue
            except OSError as e:
                problems.append(f"{where}: cannot be read ({e.strerror or e})")
                continue
            crc = crc32(data)
            if recorded is not None and crc != recorded[2] and recorded[2] != 0:
                problems.append(f"{where}: content changed since it was written (CRC-32 {crc:08x}, "
                                f"written {recorded[2]:08x})")
                continue
            if recorded is None or deep:
                why = check_content(sub, data, expected, lambda b: store.load_array(name, b))
                if why is not None:
                    problems.append(f"{where}: {why}")
                    continue
            if recorded is None or st[1] != recorded[1]:
                new_facts[sub] = [len(data), st[1], crc]
        if problems:
            check.corrupt[i] = problems
            continue
        if absent:
            check.missing.add(i)
            continue
        record = latest.get(i)
        if new_facts:
            base: dict[str, Any] = dict(record) if record is not None else {"frame": i, "run": "unrecorded",
                                                                            "fp": fingerprint}
            base["verified_by"] = run_id
            base["files"] = {**(base.get("files") or {}), **new_facts}
            check.adopt.append(base)
            record = base
        if fingerprint is not None and record is not None and record.get("fp") not in (None, fingerprint):
            check.stale.add(i)
        else:
            check.complete.add(i)
    return check


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else ""


def quarantine(store: Store, check: RepresentationCheck, run_id: str, *, stale: bool = False) -> list[str]:
    """Move the corrupt files of ``check`` (and, with ``stale``, every file of its stale frames) into
    the store's quarantine; returns where they went."""
    moved = []
    subs = ("npz", "jpg", "png")
    present = {sub: store.stat_frames(check.name, sub) for sub in subs}
    for frame, problems in sorted(check.corrupt.items()):
        for sub in subs:
            if any(p.startswith(f"{sub}/") for p in problems) and frame in present[sub]:
                moved.append(store.quarantine(check.name, sub, frame, run_id))
        log.warning("%s: frame %d is bad (%s); moved to quarantine", check.name, frame, "; ".join(problems))
    if stale:
        for frame in sorted(check.stale):
            moved.extend(store.quarantine(check.name, sub, frame, run_id) for sub in subs if frame in present[sub])
    return moved
