"""An export as the pictures see it: its representations, runs and frames, and previews made from the stored data.

Nothing here writes into the export. A preview is made as the export would have made it: the stored
array goes through the type's ``from_disk`` and ``make_images``; a frame stored only as a JPEG/PNG
preview is shown as it is. A representation whose type cannot be built here (its plugin is not
installed, or no metadata says what it is) is shown as a generic picture of its stored array, with
one warning.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, VreError
from vrecore.export.metadata import representation_folders
from vrecore.graph.representation import unit_to_uint8
from vrecore.store.base import FORMAT_FOLDERS, Store
from vrecore.store.directory import METADATA_FILE, RECORDS_FILE
from vrecore.store.location import check_local_path
from vrecore.store.npz import load_npz
from vrecore.store.safe_paths import open_regular

if TYPE_CHECKING:
    from vrecore.graph.representation import Representation

__all__ = ["ExportView", "StoredRepresentation", "generic_picture", "parse_ranges", "read_records", "run_frames"]

log = logging.getLogger("vrecore.visual")

Warn = Callable[[str], None]
_LEGACY_METADATA = "representation_metadata.json"  # vre 0.1's visible name


def _log_warning(message: str) -> None:
    log.warning("%s", message)


@attrs.define(eq=False)
class StoredRepresentation:
    """One representation folder of an export: its metadata, the frames of each file kind, its type's object."""

    name: str
    metadata: dict[str, Any]
    files: dict[str, set[int]]
    """Sub-folder (``npz``, ``jpg``, ``png``) → frames present there."""
    representation: Representation | None = None
    """Built from the metadata, for its previews; None when its type cannot be built here."""

    @property
    def type_name(self) -> str:
        return str(self.metadata.get("type") or "unknown")

    @property
    def family(self) -> str:
        return self.type_name.split("/", 1)[0]

    @property
    def frames(self) -> set[int]:
        """Frames with any stored file."""
        return set().union(*self.files.values()) if self.files else set()


def parse_ranges(text: Any, end_exclusive: bool = True) -> set[int]:
    """The frames of a compact range text as run metadata writes it: '0..10, 12' (ends exclusive; runs recorded
    before ``frames_end_exclusive`` was written have inclusive ends: pass end_exclusive=False for them)."""
    frames: set[int] = set()
    for part in str(text or "").split(","):
        a, sep, b = part.strip().partition("..")
        if a.isdigit() and (not sep or b.isdigit()):
            stop = (int(b) if end_exclusive else int(b) + 1) if sep else int(a) + 1
            frames.update(range(int(a), stop))
    return frames


def run_frames(run: Mapping[str, Any]) -> set[int]:
    """The frames a run record says it selected, whichever notation it was written in."""
    return parse_ranges(run.get("frames"), end_exclusive=bool(run.get("frames_end_exclusive")))


def read_records(folder: Path) -> Iterator[dict[str, Any]]:
    """The per-frame records of a representation folder, oldest first (torn lines skipped)."""
    for name in (RECORDS_FILE, "frames.jsonl"):
        path = folder / name
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("frame"), int):
                    yield record
        return


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _present(folder: Path) -> dict[str, set[int]]:
    files: dict[str, set[int]] = {}
    for sub in FORMAT_FOLDERS:
        frames: set[int] = set()
        try:
            with os.scandir(folder / sub) as it:
                for entry in it:
                    stem, dot, ext = entry.name.partition(".")
                    if dot and ext == sub and stem.isdigit():
                        frames.add(int(stem))
        except (FileNotFoundError, NotADirectoryError):
            continue
        files[sub] = frames
    return files


def _dependency_names(value: Any) -> list[str]:
    values = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else []
    names: list[str] = []
    for v in values:
        names.extend(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    return names


class ExportView:
    """Read-only access to an export folder: representations in graph order, runs, frames and previews.

    ``warn`` receives each warning once (a missing plugin, an unreadable file); by default they go to
    the ``vrecore.visual`` logger.
    """

    def __init__(self, root: str | os.PathLike[str], *, warn: Warn | None = None) -> None:
        from vrecore.store.location import choose_store

        choice = choose_store(root, what="output folder")
        self.location = os.fspath(root)
        """The export as the user gave it (a folder, or a store's URL)."""
        self.local = choice.local
        """Whether the export is on this machine (its pictures may go beside it)."""
        self.store: Store | None = None
        """The store that keeps the export; None for an export folder, read as files."""
        self._warn = warn or _log_warning
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        found: dict[str, StoredRepresentation] = {}
        if choice.extension.name == "directory":
            self.root = Path(check_local_path(root, "output folder"))
            if not self.root.is_dir():
                raise ConfigError(f"'{root}' is not a folder; give the output folder of an export (vre export "
                                  f"output_dir=...)")
            self.runs = self._load_runs()
            for folder in representation_folders(self.root):
                meta = _read_json(folder / METADATA_FILE) or _read_json(folder / _LEGACY_METADATA) or {}
                found[folder.name] = StoredRepresentation(folder.name, meta, _present(folder))
        else:  # any other store (a `.zarr` folder, an s3:// URL): only through the Store interface
            if choice.local and not Path(choice.location).is_dir():
                raise ConfigError(f"'{root}' is not a folder; give the location of an export (vre export "
                                  f"output_dir=...)")
            choice.check_location()
            self.store = choice.open()
            self.root = self.store.root
            self.runs = sorted(self.store.read_run_metadata(), key=lambda r: str(r.get("started") or ""))
            for name in self.store.representations():
                files = {sub: set(self.store.stat_frames(name, sub)) for sub in FORMAT_FOLDERS}
                files = {sub: frames for sub, frames in files.items() if frames}
                if files:
                    found[name] = StoredRepresentation(name, self.store.read_metadata(name) or {}, files)
        if not found:
            what = "representation folders (<name>/npz, jpg or png)" if self.store is None else "stored frames"
            raise ConfigError(f"'{root}' holds no {what}; give the output folder of an export")
        # The order the user wrote the config in (newest run first), then the graph's topological order.
        order = [n for run in reversed(self.runs) for n in [*self._configured(run), *self._graph(run)] if n in found]
        names = list(dict.fromkeys(order)) + sorted(set(found) - set(order))
        self.representations: dict[str, StoredRepresentation] = {n: found[n] for n in names}
        specs = self.specs()
        for rep in self.representations.values():
            rep.representation = self._build(rep.name, specs)

    # -- what the export is ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.representations)

    @property
    def latest_run(self) -> dict[str, Any] | None:
        return self.runs[-1] if self.runs else None

    def video(self) -> dict[str, Any]:
        """The source video's identity (frames, width, height, fps) as the metadata records it, plus its path."""
        info: dict[str, Any] = {}
        for rep in self.representations.values():
            video = (rep.metadata.get("fingerprint") or {}).get("video")
            if isinstance(video, dict):
                info = dict(video)
                break
        run = self.latest_run or {}
        info.setdefault("frames", run.get("video_frames"))
        info.setdefault("fps", run.get("fps"))
        if run.get("video"):
            info["path"] = run["video"]
        return info

    @property
    def fps(self) -> float | None:
        fps = self.video().get("fps")
        return float(fps) if fps else None

    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the video's frames, else of the first stored preview."""
        video = self.video()
        if video.get("width") and video.get("height"):
            return int(video["width"]), int(video["height"])
        for name, rep in self.representations.items():
            for frame in sorted(rep.frames)[:1]:
                image = self.preview(name, frame)
                if image is not None:
                    return int(image.shape[1]), int(image.shape[0])
        raise ConfigError(f"'{self.root}': no stored frame can be read; nothing to show")

    def frames(self, names: list[str] | None = None) -> list[int]:
        """Every frame stored by any of ``names`` (default: all representations), sorted."""
        reps = [self.representations[n] for n in (names or self.names)]
        return sorted(set().union(*(r.frames for r in reps)))

    def folder(self, name: str) -> Path:
        return self.root / name

    @property
    def label(self) -> str:
        """The export's name in messages and pages: its folder, resolved, or its URL."""
        return str(self.root.resolve()) if self.store is None or self.local else self.location

    def output_path(self, name: str, option: str) -> Path:
        """Where a picture goes by default: ``name`` beside the export when it is on this machine; an export in object
        storage has no such place: ``option`` (``--output DIR``) must name a local one."""
        if self.local:
            return self.root / name
        raise ConfigError(f"'{self.location}' is an export in object storage; give {option}, a local path for "
                          f"its {name.strip('.')} (vre writes no pictures into the store)")

    def records(self, name: str) -> Iterator[dict[str, Any]]:
        """The per-frame records of a representation, oldest first."""
        if self.store is None:
            yield from read_records(self.folder(name))
            return
        for record in self.store.read_records(name):
            if isinstance(record.get("frame"), int):
                yield record

    def _graph(self, run: Mapping[str, Any]) -> dict[str, Any]:
        reps = (run.get("graph") or {}).get("representations")
        return reps if isinstance(reps, dict) else {}

    def _configured(self, run: Mapping[str, Any]) -> list[str]:
        reps = (run.get("config") or {}).get("representations")
        return list(reps) if isinstance(reps, dict) else []

    def _load_runs(self) -> list[dict[str, Any]]:
        runs = []
        for path in sorted((self.root / ".logs").glob("run_metadata_*.json")):
            run = _read_json(path)
            if run is None:
                self.warn(f"{path} is not readable JSON; that run is left out")
                continue
            runs.append(run)
        return sorted(runs, key=lambda r: str(r.get("started") or ""))

    # -- building the types ----------------------------------------------------------------------
    def specs(self) -> dict[str, dict[str, Any]]:
        """name → {type, dependencies, parameters}: from the run graphs (newest wins), then each folder's metadata."""
        specs: dict[str, dict[str, Any]] = {}
        for run in self.runs:
            for name, spec in self._graph(run).items():
                if isinstance(spec, dict) and spec.get("type"):
                    specs[name] = {"type": spec["type"], "dependencies": spec.get("dependencies") or {},
                                   "parameters": spec.get("parameters") or {}}
        for name, rep in self.representations.items():
            meta = rep.metadata
            if meta.get("type"):
                specs[name] = {"type": meta["type"],
                               "dependencies": meta.get("dependency_roles") or meta.get("dependencies") or {},
                               "parameters": meta.get("parameters") or {}}
        return specs

    def _build(self, name: str, specs: Mapping[str, dict[str, Any]]) -> Representation | None:
        """The representation object of ``name`` (with its dependencies, as some previews need them)."""
        from vrecore.graph.build import build_graph

        if name not in specs:
            self.warn(f"representation '{name}' has no metadata saying its type ({METADATA_FILE}); its tiles show a "
                      f"generic picture of the stored array (`vre metadata {self.root}` cannot recover a type either)")
            return None
        closure: dict[str, dict[str, Any]] = {}
        stack = [name]
        while stack:
            current = stack.pop()
            if current in closure or current not in specs:
                continue
            closure[current] = specs[current]
            stack.extend(_dependency_names(specs[current]["dependencies"]))
        try:
            return build_graph({"representations": closure})[name].representation
        except VreError as e:
            reason = str(e).splitlines()[0]
        except Exception as e:  # noqa: BLE001 - a plugin's constructor failing must not stop the pictures
            reason = f"{type(e).__name__}: {e}"
        self.warn(f"representation '{name}' ({specs[name]['type']}): {reason}; its tiles show a generic picture of "
                  f"the stored array")
        return None

    # -- pictures --------------------------------------------------------------------------------
    def warn(self, message: str, key: str | None = None) -> None:
        """Say ``message`` once per ``key`` (default: the message itself)."""
        with self._lock:
            if (key or message) in self._warned:
                return
            self._warned.add(key or message)
        self._warn(message)

    def stored(self, name: str, frame: int) -> np.ndarray | None:
        """The stored (disk-form) array of a frame, or None when it has no readable npz."""
        rep = self.representations[name]
        if frame not in rep.files.get("npz", ()):
            return None
        if self.store is not None:
            try:
                return self.store.read_frame(name, frame)
            except (OSError, ValueError, VreError) as e:
                self.warn(f"{self.location}: frame {frame} of '{name}' cannot be read ({type(e).__name__}: {e}); its "
                          f"tile is blank (`vre verify {self.location} --repair` recomputes bad frames)",
                          key=f"npz:{name}")
                return None
        path = self.folder(name) / "npz" / f"{frame}.npz"
        try:
            with open_regular(path) as f:  # a named pipe is reported, never waited on
                return load_npz(f)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            self.warn(f"{path} cannot be read ({type(e).__name__}: {e}); its tile is blank (`vre verify "
                      f"{self.root} --repair` recomputes bad frames)", key=f"npz:{name}")
            return None

    def preview(self, name: str, frame: int) -> np.ndarray | None:
        """uint8 (H, W, 3) picture of a stored frame, or None when the frame is not stored (or unreadable)."""
        disk = self.stored(name, frame)
        if disk is not None:
            return self.picture(name, disk, frame)
        rep = self.representations[name]
        for sub in ("png", "jpg"):
            if frame in rep.files.get(sub, ()):
                path = self.folder(name) / sub / f"{frame}.{sub}"
                try:
                    if self.store is not None:
                        return _decode_image(self.store.read_bytes(name, sub, frame))
                    return _read_image(path)
                except (OSError, ValueError, VreError) as e:
                    self.warn(f"{path} cannot be read ({e}); its tile is blank", key=f"{sub}:{name}")
        return None

    def picture(self, name: str, disk: np.ndarray, frame: int = -1) -> np.ndarray:
        """The preview of one stored array of representation ``name``."""
        rep = self.representations[name]
        representation = rep.representation
        if representation is not None:
            try:
                image = representation.make_images(representation.from_disk(disk[None]))[0]
                if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
                    return image
                reason = f"it made a {image.dtype} array of shape {image.shape}, not uint8 (H, W, 3)"
            except Exception as e:  # noqa: BLE001 - one bad preview must not stop the others
                reason = f"{type(e).__name__}: {e}"
            self.warn(f"representation '{name}': its type's preview failed on frame {frame} ({reason}); showing a "
                      f"generic picture of the stored array", key=f"make_images:{name}")
            rep.representation = None
        return generic_picture(disk)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with open_regular(path) as f, Image.open(f) as im:
        return np.asarray(im.convert("RGB"))


def _decode_image(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _palette(n: int = 256) -> np.ndarray:
    """``n`` distinct colours (hues spread by the golden ratio), colour 0 black."""
    import cv2

    hues = (np.arange(n) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 230, np.uint8)], axis=1)[None]
    colours: np.ndarray = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    colours[0] = 0
    return colours


_PALETTE = _palette()


def generic_picture(disk: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, 3) picture of any stored frame, knowing nothing of its type.

    uint8 RGB is shown as it is; booleans in white on black; one-channel integer maps with few values
    (class maps) as one colour per value; anything else is scaled from its 1st to its 99th percentile (NaN black):
    one channel as grey, two as red and green, more as their first three.
    """
    a = np.asarray(disk)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or 0 in a.shape:
        raise ConfigError(f"a stored frame of shape {disk.shape} cannot be drawn as a picture")
    if a.dtype == np.uint8 and a.shape[2] == 3:
        return a
    if a.dtype == np.bool_:
        return np.repeat(a[:, :, :1].view(np.uint8) * np.uint8(255), 3, axis=2)
    if a.dtype.kind in "ui" and a.shape[2] == 1:
        values = np.unique(a[::8, ::8])
        if len(values) <= 64 and values.min() >= 0:
            return _PALETTE[a[:, :, 0].astype(np.int64) % len(_PALETTE)]
    x = a[:, :, :3].astype(np.float32)
    sample = x[::4, ::4]
    finite = sample[np.isfinite(sample)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    x = np.nan_to_num((x - lo) / (hi - lo if hi > lo else 1.0), nan=0.0, posinf=1.0, neginf=0.0)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    elif x.shape[2] == 2:
        x = np.concatenate([x, np.zeros_like(x[:, :, :1])], axis=2)
    return unit_to_uint8(x)
