"""An export kept by a registered store other than the folder (the zarr store, local or at a URL), read for
training like an export folder (`vrecore.data.sources.ExportSource`): picklable, each DataLoader worker opens
the store again and lists each task once."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.data.sources import ExportSource, FrameKey, StoredTask
from vrecore.errors import ConfigError, StorageError
from vrecore.store.base import Store
from vrecore.store.location import choose_store

__all__ = ["StoreSource", "open_store_source"]


def open_store_source(location: str | os.PathLike[str]) -> StoreSource | None:
    """The export at ``location`` when a store other than the directory store keeps it (a URL of one, or a
    registered suffix such as ``.zarr``); None for an export folder."""
    choice = choose_store(location, what="path")
    if choice.extension.name == "directory":
        return None
    store = choice.open()
    names = store.representations()
    if not names:
        raise ConfigError(f"'{location}' holds no export of the '{choice.extension.name}' store; give the "
                          f"output_dir of `vre export`")
    name = os.fspath(location).rstrip("/").rpartition("/")[2].removesuffix(".zarr") or "export"
    return StoreSource(store, os.fspath(location), name)


class StoreSource(ExportSource):
    """One export (one video) in a `vrecore.store.Store`, read only."""

    def __init__(self, store: Store, location: str, video: str) -> None:
        super().__init__(store.root, video)
        self.store, self.location = store, location
        self._frames: dict[str, dict[int, tuple[int, int]]] = {}
        self._runs: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"StoreSource({self.location!r}, video={self.video!r})"

    @property
    def tasks(self) -> dict[str, StoredTask]:
        if self._tasks is None:
            self._tasks = {name: self._stored_task(name) for name in self.store.representations()
                           if self._stat(name)}
        return self._tasks

    def metadata(self, name: str) -> dict[str, Any]:
        return self.store.read_metadata(name) or {}

    def graph_config(self) -> dict[str, dict[str, Any]]:
        specs: dict[str, dict[str, Any]] = {}
        for run in sorted(self.store.read_run_metadata(), key=lambda r: str(r.get("started"))):
            for name, spec in ((run.get("graph") or {}).get("representations") or {}).items():
                if isinstance(spec, dict) and spec.get("type"):
                    specs[name] = {"type": spec["type"], "dependencies": spec.get("dependencies") or {},
                                   "parameters": spec.get("parameters") or {}}
        for name, task in self.tasks.items():
            if task.type_name:
                specs[name] = task.spec()
        return specs

    def _stat(self, task: str) -> dict[int, tuple[int, int]]:
        if task not in self._frames:
            self._frames[task] = self.store.stat_frames(task, "npz")
        return self._frames[task]

    def frames(self, task: str) -> set[int]:
        return set(self._stat(task))

    def frame_keys(self, task: str, frames: Any) -> dict[int, FrameKey]:
        from vrecore.store.verify import latest_records

        _, latest = latest_records(self.store.read_records(task))
        stats = self._stat(task)
        return {f: ((latest.get(f) or {}).get("fp"), *stats.get(f, (-1, -1))) for f in frames}

    def path(self, task: str, frame: int) -> Path:
        return Path(f"{self.location}/{task}/{frame}")

    def read(self, task: str, frame: int) -> np.ndarray:
        try:
            array = self.store.read_frame(task, frame)
        except (OSError, ValueError) as e:
            raise StorageError(f"{self.location}: frame {frame} of '{task}' cannot be read ({type(e).__name__}: "
                               f"{e}); `vre verify {self.location} --repair` moves damaged frames aside and "
                               f"computes them again") from e
        form = self._disk_form(task)
        if form is not None and (tuple(array.shape) != tuple(form[0]) or array.dtype != form[1]):
            raise StorageError(f"{self.location}: frame {frame} of '{task}' holds {array.shape} {array.dtype}, "
                               f"expected {form[0]} {form[1]}; `vre verify {self.location} --repair`")
        return array

    def read_into(self, task: str, frame: int, out: np.ndarray) -> bool:
        """Read one frame into ``out`` (decoded in place when the store can: the zarr store's chunks)."""
        into = getattr(self.store, "read_frame_into", None)
        form = self._disk_form(task)
        if into is not None and form is not None and out.dtype == form[1] and out.size == int(np.prod(form[0])):
            try:
                if into(task, frame, out):
                    return True
            except (OSError, ValueError) as e:
                raise StorageError(f"{self.location}: frame {frame} of '{task}' cannot be read ({type(e).__name__}: "
                                   f"{e}); `vre verify {self.location} --repair` moves damaged frames aside and "
                                   f"computes them again") from e
        out[...] = self.read(task, frame).reshape(out.shape)
        return True
