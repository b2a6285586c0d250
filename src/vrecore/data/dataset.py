"""`MultiTaskDataset`: the frames of one export, or of a folder of exports, as ``({task: tensor}, name)`` items."""
from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.data import _checks
from vrecore.data.batching import MISSING_LABEL, Collated, MultiTaskItem, collate, shared_empty
from vrecore.data.index import build_index, find_present, open_sources, select_videos, store_location
from vrecore.data.normalize import normalization_modes, normalize, normalize_in_place
from vrecore.data.sources import FrameKey
from vrecore.data.splits import split_videos
from vrecore.data.statistics import TaskStatistics, frame_statistics, load_cached, statistics_key, statistics_pass, store_cached
from vrecore.data.tasks import TaskReader, VirtualTask, build_reader, build_virtual
from vrecore.errors import ConfigError

__all__ = ["MultiTaskDataset"]

log = logging.getLogger("vrecore.data")


class MultiTaskDataset:
    """The frames of an export (or of a folder of exports, one per video) as training items.

    An item is ``({task: array}, name)``: a torch tensor per task (numpy with ``to_tensor=False``), channels
    last (``channels_first`` for (C, H, W)); the name is the frame index, ``<video>/<frame>`` for a folder of
    exports. Tasks are the stored representations (``tasks=None``: all of them) read through their types,
    which come from the export's own metadata and the installed plugins:

    * class indices stay integer, int64 (H, W) (``one_hot``: float32 (H, W, C), for all class tasks or a list);
      masks are bool (H, W, 1); float16 is read as float32; uint8 images stay uint8 (float32 with
      ``handle_missing`` ``fill_nan`` or ``fill_none``, so that a missing frame can be NaN);
    * ``handle_missing``: ``raise`` (a frame missing from a task is an error naming both), ``drop`` (frames
      missing from any task are left out), ``fill_none`` (None; `collate_fn` makes it NaN), ``fill_zero``,
      ``fill_nan``; a missing class index is `MISSING_LABEL` (-1);
    * ``normalization``: None, ``"min_max"``, ``"standardization"`` or {task: mode} with a ``"*"`` default;
      class tasks and masks are never normalized. Per-channel statistics are computed in one pass
      (``stats_workers`` DataLoader workers) and cached in the dataset folder, or given (``statistics``:
      e.g. a training set's, applied to its test set);
    * ``virtual_tasks``: procedural tasks computed at read time from stored ones, as the export would:
      a list of names described by the export's runs, or {name: pipeline entry};
    * ``videos``: the videos to use (a folder of exports); see `split` and `split_videos`.

    Picklable, with no open handle: works in a ``torch.utils.data.DataLoader`` with workers. Importing it
    does not import torch.
    """

    def __init__(self, path: str | Path, tasks: Sequence[str] | None = None, *,
                 normalization: str | Mapping[str, str | None] | None = None, handle_missing: str = "raise",
                 statistics: Mapping[str, TaskStatistics] | None = None, channels_first: bool = False,
                 one_hot: bool | Sequence[str] = False,
                 virtual_tasks: Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None = None,
                 videos: Sequence[str] | None = None, types: Mapping[str, str | Mapping[str, Any]] | None = None,
                 stats_workers: int = 0, progress: bool | None = None, cache_statistics: bool = True,
                 to_tensor: bool = True) -> None:
        _checks.check_handle_missing(handle_missing)
        location, in_store = store_location(path)
        _checks.check_stats_workers(stats_workers)
        tasks, videos = _checks.names("tasks", tasks), _checks.names("videos", videos)
        if isinstance(one_hot, str):
            one_hot = [one_hot]
        self.path = location if "://" in location else Path(location)  # type: ignore[assignment]
        """The dataset's folder (a URL, as given, for an export at one)."""
        self.handle_missing = handle_missing
        self.channels_first = channels_first
        self.stats_workers = stats_workers
        self.progress = progress
        self.cache_statistics = cache_statistics
        self.to_tensor = to_tensor
        self._sources, self._multi = open_sources(location if in_store else Path(location))
        if videos is not None:
            self._sources = select_videos(self._sources, videos)
        self.videos = [s.video for s in self._sources]
        self._types = dict(types or {})
        self._specs = [self._source_specs(s) for s in self._sources]
        stored = sorted(set().union(*(set(s.tasks) for s in self._sources)))
        self._virtual_specs = _checks.virtual_specs(virtual_tasks)
        available = sorted(set(stored) | set(self._virtual_specs))
        self.task_names = list(tasks) if tasks is not None else available
        unknown = [t for t in self.task_names if t not in available]
        if unknown or not self.task_names:
            where = f"{self.path}" + (f" (videos: {', '.join(self.videos)})" if self._multi else "")
            raise ConfigError(f"task(s) {', '.join(map(repr, unknown)) or '(none)'} not stored in {where}; stored "
                              f"tasks: {', '.join(stored) or 'none'} (a task needs <name>/npz frames, or give it in "
                              f"virtual_tasks)")
        self._one_hot = set() if one_hot is True else set(one_hot or [])
        self._warned: set[str] = set()
        self._quiet = False
        self._readers: dict[tuple[str, str], TaskReader] = {}  # by (video, task)
        self._virtual: dict[tuple[str, str], VirtualTask] = {}
        self._built: dict[str, Any] = {}
        self._present = self._find_present()
        self._index = self._build_index()
        self._templates: dict[str, np.ndarray] = {}
        self._disk_forms: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        if one_hot is True:
            self._one_hot = {t for t in self.task_names if self._is_classification(t)}
            self._readers.clear()  # built to tell class tasks apart, before they knew they give one-hot maps
            self._virtual.clear()
        _checks.check_one_hot(self._one_hot, self.task_names, self._is_classification)
        self._normalization = normalization_modes(normalization, self.task_names, self._normalizable)
        self._given_statistics = _checks.given_statistics(statistics)
        self._statistics: dict[str, TaskStatistics] | None = None

    # -- what the dataset holds ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def names(self) -> list[str]:
        """Every item's name, in index order."""
        return [self._name(v, f) for v, f in self._index]

    def _name(self, v: int, frame: int) -> str:
        return f"{self.videos[v]}/{frame}" if self._multi else str(frame)

    @property
    def data_shape(self) -> dict[str, tuple[int, ...]]:
        """Task -> shape of one item (as returned: channels first when asked)."""
        return {t: tuple(self._arrange(self._template(t)).shape) for t in self.task_names}

    @property
    def dtypes(self) -> dict[str, str]:
        """Task -> numpy dtype of its items."""
        return {t: str(self._item_dtype(t)) for t in self.task_names}

    def _item_dtype(self, task: str) -> np.dtype:
        return np.dtype(np.float32) if task in self._normalization else self._template(task).dtype

    @property
    def classification_tasks(self) -> list[str]:
        """Tasks whose values are classes or masks (never normalized)."""
        return [t for t in self.task_names if not self._normalizable(t)]

    def task_types(self) -> dict[str, str | None]:
        """Task -> the type it is read through (None: read raw, its type could not be built here)."""
        out: dict[str, str | None] = {}
        for task in self.task_names:
            v = next((i for i, p in enumerate(self._present[task]) if p), 0)
            reader = self._virtual_task(v, task).reader if task in self._virtual_specs else self._reader(v, task)
            out[task] = reader.representation.type_name if reader.representation is not None else None
        return out

    def missing(self) -> dict[str, dict[str, list[int]]]:
        """Task -> video -> frames of the dataset's videos that the task lacks (some other task has them)."""
        out: dict[str, dict[str, list[int]]] = {}
        for task in self.task_names:
            for v, video in enumerate(self.videos):
                every = set().union(*(self._present[t][v] for t in self.task_names))
                lacking = sorted(every - self._present[task][v])
                if lacking:
                    out.setdefault(task, {})[video] = lacking
        return out

    def frame_counts(self) -> dict[str, int]:
        """Task -> frames stored (or computable, for a virtual task) over the dataset's videos."""
        return {t: sum(len(p) for p in self._present[t]) for t in self.task_names}

    def __repr__(self) -> str:
        return (f"MultiTaskDataset({str(self.path)!r}, {len(self)} items, {len(self.videos)} video(s), "
                f"tasks={self.task_names}, handle_missing={self.handle_missing!r}, "
                f"normalization={self._normalization or None})")

    # -- items -----------------------------------------------------------------------------------------
    def __getitem__(self, key: int | str | slice | Sequence[int]) -> Any:
        if isinstance(key, str):
            try:
                return self.get_item(self.names.index(key))
            except ValueError:
                raise KeyError(f"no item named {key!r}") from None
        if isinstance(key, slice):
            return self.collate_fn(self.__getitems__(list(range(*key.indices(len(self))))))
        if isinstance(key, (list, tuple)):
            return self.collate_fn(self.__getitems__([int(i) for i in key]))
        return self.get_item(int(key))  # type: ignore[arg-type]

    def __getitems__(self, indices: Sequence[int]) -> list[MultiTaskItem]:
        """Several items read straight into one batch (what a DataLoader asks for): `collate_fn` then returns
        that batch without copying; any other collate function gets the items (views into the batch)."""
        batch, names, missing = self._batch(indices)
        items = Collated((({t: None if missing[t][b] and self.handle_missing == "fill_none" else batch[t][b]
                            for t in batch}, name) for b, name in enumerate(names)))
        items.batch, items.names = batch, names
        return items

    def _batch(self, indices: Sequence[int]) -> tuple[dict[str, Any], list[str], dict[str, list[bool]]]:
        """({task: (B, ...)}, names, {task: missing per item}) of items ``indices``, with one copy of each
        stored frame where its type allows (the file's bytes go straight into the batch)."""
        for i in indices:
            if not -len(self) <= i < len(self):
                raise IndexError(f"item {i} out of range: the dataset has {len(self)} items")
        positions = [self._index[i] for i in indices]
        stats = self.statistics if self._normalization else None
        torch: Any = None
        shared = False
        if self.to_tensor:
            import torch
            from torch.utils.data import get_worker_info

            shared = get_worker_info() is not None  # a worker's batch goes to shared memory: no copy to send it
        out: dict[str, Any] = {}
        missing: dict[str, list[bool]] = {}
        for task in self.task_names:
            template = self._template(task)
            dtype = self._item_dtype(task)
            shape = (len(positions), *self._arrange(template).shape)
            if torch is not None:
                tensor = shared_empty(torch, shape, getattr(torch, dtype.name)) if shared else \
                    torch.empty(shape, dtype=getattr(torch, dtype.name))
                buffer = tensor.numpy()
                out[task] = tensor
            else:
                buffer = out[task] = np.empty(shape, dtype)
            missing[task] = []
            mode = self._normalization.get(task)
            for b, (v, frame) in enumerate(positions):
                slot = np.moveaxis(buffer[b], 0, -1) if self.channels_first and template.ndim == 3 else buffer[b]
                absent = frame not in self._present[task][v]
                missing[task].append(absent)
                if absent:
                    fill = self._fill(task)
                    slot[...] = fill if fill is not None else (MISSING_LABEL if dtype.kind == "i" else np.nan)
                    continue
                self._read_into(v, task, frame, slot)
                if mode is not None and stats is not None:
                    normalize_in_place(slot, stats[task], mode)
        return out, [self._name(v, f) for v, f in positions], missing

    def _read_into(self, v: int, task: str, frame: int, slot: np.ndarray) -> None:
        """``slot[...] = self._read(v, task, frame)``, with the stored bytes read straight into place when the
        task's conversion is a plain cast."""
        source = self._sources[v]
        disk = self._disk_forms.get(task)
        if (disk is not None and task not in self._virtual_specs and hasattr(source, "read_into")
                and self._reader(v, task).plain(disk[1], len(disk[0]))):
            target = slot if slot.dtype == disk[1] and slot.flags.c_contiguous and slot.size == int(np.prod(disk[0])) \
                else np.empty(disk[0], disk[1])
            if source.read_into(task, frame, target):
                if target is not slot:
                    np.copyto(slot, target.reshape(slot.shape), casting="unsafe")
                return
        slot[...] = self._read(v, task, frame).reshape(slot.shape)

    def get_item(self, index: int, subset_tasks: Sequence[str] | None = None) -> MultiTaskItem:
        """Item ``index`` with all tasks, or only ``subset_tasks``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range: the dataset has {len(self)} items")
        v, frame = self._index[index]
        tasks = self.task_names if subset_tasks is None else list(subset_tasks)
        stats = self.statistics if self._normalization else None
        data: dict[str, Any] = {}
        for task in tasks:
            if task not in self.task_names:
                raise KeyError(f"task {task!r} is not in this dataset; its tasks: {', '.join(self.task_names)}")
            x: np.ndarray | None
            if frame in self._present[task][v]:
                x = self._read(v, task, frame)
                mode = self._normalization.get(task)
                if mode is not None and stats is not None:
                    x = normalize(x, stats[task], mode)
            else:
                x = self._fill(task)
            data[task] = None if x is None else self._output(self._arrange(x))
        return data, self._name(v, frame)

    def _read(self, v: int, task: str, frame: int) -> np.ndarray:
        """A task's item array (channels last, not normalized)."""
        source = self._sources[v]
        if task in self._virtual_specs:
            virtual = self._virtual_task(v, task)
            disk = virtual.compute(frame, lambda name: source.read(name, frame))
            x = virtual.reader.item(disk)
        else:
            x = self._reader(v, task).item(source.read(task, frame))
        if self.handle_missing in ("fill_nan", "fill_none") and x.dtype.kind in "bu":
            x = x.astype(np.float32)  # so that a missing frame can be NaN in every batch
        return x

    def _fill(self, task: str) -> np.ndarray | None:
        if self.handle_missing == "fill_none":
            return None
        template = self._template(task)
        if template.dtype.kind == "i":
            return np.full(template.shape, 0 if self.handle_missing == "fill_zero" else MISSING_LABEL, template.dtype)
        if self.handle_missing == "fill_zero" or template.dtype.kind != "f":
            return np.zeros(template.shape, template.dtype)
        return np.full(template.shape, np.nan, template.dtype)

    def _arrange(self, x: np.ndarray) -> np.ndarray:
        return np.moveaxis(x, -1, 0) if self.channels_first and x.ndim == 3 else x

    def _output(self, x: np.ndarray) -> Any:
        if not self.to_tensor:
            return x
        import torch

        return torch.from_numpy(x)

    def _template(self, task: str) -> np.ndarray:
        """A task's item array of its first stored frame (its shape and dtype)."""
        if task not in self._templates:
            for v, frames in enumerate(self._present[task]):
                if frames:
                    frame = min(frames)
                    self._templates[task] = self._read(v, task, frame)
                    if task not in self._virtual_specs:
                        disk = self._sources[v].read(task, frame)
                        self._disk_forms[task] = (disk.shape, disk.dtype)
                    break
            else:
                raise ConfigError(f"task '{task}' has no frame in the dataset's videos; leave it out")
        return self._templates[task]

    def collate_fn(self, items: Sequence[MultiTaskItem]) -> tuple[dict[str, Any], list[str]]:
        """Stack items into a batch ({task: (B, ...)}, names); a missing (None) value becomes NaN, or
        `MISSING_LABEL` for class indices. Items from `__getitems__` are a batch already: returned as is."""
        if isinstance(items, Collated):
            return items.batch, list(items.names)
        shapes = {t: (self.data_shape[t], self.dtypes[t]) for t in items[0][0]} if items else {}
        return collate(items, shapes)

    # -- types -------------------------------------------------------------------------------------------
    def _source_specs(self, source: Any) -> dict[str, dict[str, Any]]:
        specs = source.graph_config()
        for task, given in self._types.items():
            spec = {"type": given} if isinstance(given, str) else dict(given)
            specs[task] = {"dependencies": {}, "parameters": {}, **spec}
        return specs

    def _warn(self, message: str) -> None:
        if not self._quiet and message not in self._warned:
            self._warned.add(message)
            log.warning(message)

    def _reader(self, v: int, task: str) -> TaskReader:
        key = (self.videos[v], task)
        if key not in self._readers:
            stored = self._sources[v].tasks[task]
            self._readers[key] = build_reader(task, self._specs[v], stored.metadata, provider=stored.provider,
                                              one_hot=task in self._one_hot, warn=self._warn, cache=self._built)
        return self._readers[key]

    def _virtual_task(self, v: int, task: str) -> VirtualTask:
        key = (self.videos[v], task)
        if key not in self._virtual:
            specs = dict(self._specs[v])
            given = self._virtual_specs[task]
            if given is not None:
                specs[task] = {"dependencies": {}, "parameters": {}, **given}
            stored = set(self._sources[v].tasks) - {task}
            self._virtual[key] = build_virtual(task, specs, stored, one_hot=task in self._one_hot, cache=self._built)
        return self._virtual[key]

    def _is_classification(self, task: str) -> bool:
        v = next(i for i, p in enumerate(self._present[task]) if p)
        reader = self._virtual_task(v, task).reader if task in self._virtual_specs else self._reader(v, task)
        return reader.is_classification

    def _normalizable(self, task: str) -> bool:
        return self._template(task).dtype.kind not in "bi" and not self._is_classification(task)

    # -- which frames ----------------------------------------------------------------------------------
    def _find_present(self) -> dict[str, list[set[int]]]:
        return find_present(self.task_names, self._sources, self._virtual_specs,
                            lambda v, task: self._virtual_task(v, task).read_from_disk)

    def _build_index(self) -> list[tuple[int, int]]:
        return build_index(self._present, self.task_names, self.videos, self.handle_missing, self._multi)

    # -- normalization and statistics ------------------------------------------------------------------
    @property
    def normalization(self) -> dict[str, str]:
        """Task -> normalization mode, for the normalized tasks."""
        return dict(self._normalization)

    @property
    def statistics(self) -> dict[str, TaskStatistics] | None:
        """The statistics the normalized tasks use (computed, cached or given); None without normalization."""
        if not self._normalization:
            return None
        if self._statistics is None:
            wanted = list(self._normalization)
            given = {t: s for t, s in self._given_statistics.items() if t in wanted}
            todo = [t for t in wanted if t not in given]
            computed = self.compute_statistics(todo) if todo else {}
            self._statistics = {**given, **computed}
            for task, stats in self._statistics.items():
                channels = self._template(task).shape[-1]
                if stats.channels != channels:
                    raise ConfigError(f"statistics of task '{task}' have {stats.channels} channel(s) but its items "
                                      f"have {channels}; give statistics computed on the same kind of data")
        return self._statistics

    def compute_statistics(self, tasks: Sequence[str] | None = None) -> dict[str, TaskStatistics]:
        """Per-channel statistics of ``tasks`` (default: every task that can be normalized) over the
        dataset's items, before normalization; from the cache when the frames are unchanged."""
        tasks = [t for t in (tasks if tasks is not None else self.task_names) if self._normalizable(t)]
        keys = {t: self._statistics_key(t) for t in tasks}
        cached = load_cached(self._cache_root(), keys) if self.cache_statistics else {}
        todo = [t for t in tasks if t not in cached]
        computed = self._statistics_pass(todo) if todo else {}
        if computed and self.cache_statistics:
            store_cached(self._cache_root(), {t: (keys[t], s) for t, s in computed.items()}, self._warn)
        return {t: cached[t] if t in cached else computed[t] for t in tasks}

    def _cache_root(self) -> Path:
        if not isinstance(self.path, Path):  # an export at a URL: the local folder its store keeps
            return Path(self._sources[0].root)
        return self.path if self.path.is_dir() else self.path.parent

    def _statistics_key(self, task: str) -> str:
        frames: list[FrameKey] = []
        per_video: dict[int, list[int]] = {}
        for v, f in self._index:
            per_video.setdefault(v, []).append(f)
        for v, source in enumerate(self._sources):
            mine = [f for f in per_video.get(v, []) if f in self._present[task][v]]
            if task in self._virtual_specs:
                spec_names = sorted(self._virtual_task(v, task).read_from_disk)
            else:
                spec_names = [task]
            for name in spec_names:
                keys = source.frame_keys(name, mine)
                frames.extend((source.video, name, f, *keys[f]) for f in mine)
        described = {"task": task, "specs": [s.get(task) for s in self._specs],
                     "virtual": self._virtual_specs.get(task), "one_hot": task in self._one_hot}
        return statistics_key(described, frames)

    def _statistics_pass(self, tasks: list[str]) -> dict[str, TaskStatistics]:
        raw = self._shallow_copy()  # read as stored: the statistics are what normalization then applies
        raw._normalization = {}
        return statistics_pass(len(raw), functools.partial(raw._frame_statistics, tasks), tasks,
                               workers=self.stats_workers, progress=self.progress)

    def _frame_statistics(self, tasks: list[str], i: int) -> dict[str, TaskStatistics]:
        """Item ``i``'s partial statistics of each of ``tasks`` that it has."""
        v, frame = self._index[i]
        return {t: frame_statistics(self._read(v, t, frame)) for t in tasks if frame in self._present[t][v]}

    # -- splits ----------------------------------------------------------------------------------------
    def split(self, fractions: Mapping[str, float], *, seed: int = 0) -> dict[str, MultiTaskDataset]:
        """Datasets of disjoint sets of videos (never of frames: neighbouring frames are nearly the same,
        so a split by frame leaks the test set into training). With normalization, the first split's
        statistics are used by every split (the usual train -> val/test rule)."""
        if not self._multi:
            raise ConfigError(f"{self.path} is one export (one video); a split by video needs a folder of exports "
                              f"(one sub-folder per video, as `vre export -m ... output_root=` writes them)")
        parts = split_videos(self.videos, fractions, seed=seed)
        out: dict[str, MultiTaskDataset] = {}
        for name, videos in parts.items():
            part = self._shallow_copy()
            part._select(videos)
            if out and self._normalization:
                first = next(iter(out.values()))
                part._given_statistics = dict(first.statistics or {})
            out[name] = part
        return out

    def _select(self, videos: list[str]) -> None:
        keep = [self.videos.index(v) for v in videos]
        self._sources = [self._sources[i] for i in keep]
        self._specs = [self._specs[i] for i in keep]
        self.videos = list(videos)
        self._present = {t: [p[i] for i in keep] for t, p in self._present.items()}
        self._statistics = None
        self._index = self._build_index()

    # -- pickling (DataLoader workers) -----------------------------------------------------------------
    def _shallow_copy(self) -> MultiTaskDataset:
        """A copy sharing this one's containers (not through pickling, which computes statistics)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __getstate__(self) -> dict[str, Any]:
        if self._normalization and self._statistics is None:
            _ = self.statistics  # computed once here, not in every worker
        for task in self.task_names:
            self._template(task)
            for v, frames in enumerate(self._present[task]):
                if frames:  # built here and pickled: a worker needs neither the plugins nor the registry
                    _ = self._virtual_task(v, task) if task in self._virtual_specs else self._reader(v, task)
        state = dict(self.__dict__)
        state["_built"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._quiet = True  # warnings were given in the process that made the dataset
