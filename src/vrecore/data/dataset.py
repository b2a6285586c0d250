"""`MultiTaskDataset`: the frames of one export, or of a folder of exports, as ``({task: tensor}, name)`` items."""
from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.data.sources import FrameKey, find_exports
from vrecore.data.statistics import TaskStatistics, frame_statistics, load_cached, merge_all, statistics_key, store_cached
from vrecore.data.tasks import TaskReader, VirtualTask, build_reader, build_virtual
from vrecore.errors import ConfigError
from vrecore.store.location import check_local_path

__all__ = ["HANDLE_MISSING", "NORMALIZATIONS", "MultiTaskDataset", "MultiTaskItem", "collate", "split_videos"]

log = logging.getLogger("vrecore.data")

HANDLE_MISSING = ("raise", "drop", "fill_none", "fill_zero", "fill_nan")
NORMALIZATIONS = ("min_max", "standardization")
MISSING_LABEL = -1
"""Class index of a missing frame of a class-index task (pass it as ``ignore_index`` to the loss)."""

MultiTaskItem = tuple[dict[str, Any], str]


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
        if handle_missing not in HANDLE_MISSING:
            raise ConfigError(f"handle_missing {handle_missing!r} is not one of {', '.join(HANDLE_MISSING)}")
        path = check_local_path(path, "path")
        if isinstance(stats_workers, bool) or not isinstance(stats_workers, int) or stats_workers < 0:
            raise ConfigError(f"stats_workers must be 0 or more, got {stats_workers!r}")
        tasks, videos = _names("tasks", tasks), _names("videos", videos)  # a string is one name, not its letters
        if isinstance(one_hot, str):
            one_hot = [one_hot]
        if isinstance(virtual_tasks, str):
            virtual_tasks = [virtual_tasks]
        self.path = Path(path)
        self.handle_missing = handle_missing
        self.channels_first = channels_first
        self.stats_workers = stats_workers
        self.progress = progress
        self.cache_statistics = cache_statistics
        self.to_tensor = to_tensor
        self._sources, self._multi = _open_sources(self.path)
        if videos is not None:
            self._sources = _select_videos(self._sources, videos)
        self.videos = [s.video for s in self._sources]
        self._types = dict(types or {})
        self._specs = [self._source_specs(s) for s in self._sources]
        stored = sorted(set().union(*(set(s.tasks) for s in self._sources)))
        self._virtual_specs = self._virtual_specs_of(virtual_tasks)
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
        wrong = [t for t in sorted(self._one_hot) if t not in self.task_names or not self._is_classification(t)]
        if wrong:
            what = "a class task" if len(wrong) == 1 else "class tasks"
            classes = ", ".join(t for t in self.task_names if self._is_classification(t)) or "none"
            raise ConfigError(f"one_hot names {', '.join(map(repr, wrong))}, not {what} of the dataset "
                              f"(class tasks: {classes})")
        self._normalization = self._normalization_of(normalization)
        self._given_statistics = _given_statistics(statistics)
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
        items = _Collated((({t: None if missing[t][b] and self.handle_missing == "fill_none" else batch[t][b]
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
                tensor = _shared_empty(torch, shape, getattr(torch, dtype.name)) if shared else \
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
                    _normalize_in_place(slot, stats[task], mode)
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
                    x = _normalize(x, stats[task], mode)
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
        if isinstance(items, _Collated):
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

    def _virtual_specs_of(self, virtual: Any) -> dict[str, Mapping[str, Any] | None]:
        if virtual is None:
            return {}
        if isinstance(virtual, Mapping):
            return {str(k): (dict(v) if v is not None else None) for k, v in virtual.items()}
        return {str(name): None for name in virtual}

    def _is_classification(self, task: str) -> bool:
        v = next(i for i, p in enumerate(self._present[task]) if p)
        reader = self._virtual_task(v, task).reader if task in self._virtual_specs else self._reader(v, task)
        return reader.is_classification

    def _normalizable(self, task: str) -> bool:
        return self._template(task).dtype.kind not in "bi" and not self._is_classification(task)

    # -- which frames ----------------------------------------------------------------------------------
    def _find_present(self) -> dict[str, list[set[int]]]:
        present: dict[str, list[set[int]]] = {}
        for task in self.task_names:
            if task in self._virtual_specs:
                continue
            present[task] = [s.frames(task) if task in s.tasks else set() for s in self._sources]
        for task in self.task_names:
            if task not in self._virtual_specs:
                continue
            present[task] = []
            errors: list[ConfigError] = []
            for v, source in enumerate(self._sources):
                try:
                    needed = self._virtual_task(v, task).read_from_disk
                except ConfigError as e:  # this video lacks what the task is computed from: no frames there
                    errors.append(e)
                    present[task].append(set())
                    continue
                frames = [source.frames(n) for n in needed]
                present[task].append(set.intersection(*frames) if frames else set())
            if len(errors) == len(self._sources):
                raise errors[0]
        return present

    def _build_index(self) -> list[tuple[int, int]]:
        index: list[tuple[int, int]] = []
        problems: list[str] = []
        for v in range(len(self._sources)):
            sets = [self._present[t][v] for t in self.task_names]
            every = set().union(*sets)
            if self.handle_missing == "drop":
                every = set.intersection(*sets) if sets else set()
            elif self.handle_missing == "raise":
                for task, frames in zip(self.task_names, sets, strict=True):
                    lacking = sorted(every - frames)
                    if lacking:
                        where = f" of video '{self.videos[v]}'" if self._multi else ""
                        problems.append(f"task '{task}' is missing frame(s) {_ranges(lacking)}{where}")
            index.extend((v, f) for f in sorted(every))
        if problems:
            shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
            raise ConfigError("; ".join(shown) + "; choose handle_missing='drop' (leave such frames out) or "
                                                 "'fill_none', 'fill_zero', 'fill_nan', or compute the missing frames")
        return index

    # -- normalization and statistics ------------------------------------------------------------------
    def _normalization_of(self, normalization: Any) -> dict[str, str]:
        if normalization is None:
            return {}
        if isinstance(normalization, str):
            modes: dict[str, Any] = {"*": normalization}
        elif isinstance(normalization, Mapping):
            modes = dict(normalization)
        else:
            raise ConfigError(f"normalization must be None, 'min_max', 'standardization' or {{task: mode}}, got "
                              f"{normalization!r}")
        default = modes.pop("*", None)
        for task, mode in modes.items():
            if task not in self.task_names:
                raise ConfigError(f"normalization names task '{task}', which is not in the dataset "
                                  f"({', '.join(self.task_names)})")
            if mode is not None and not self._normalizable(task):
                raise ConfigError(f"task '{task}' holds classes or a mask; it is never normalized (leave it out "
                                  f"of normalization)")
        out: dict[str, str] = {}
        for task in self.task_names:
            mode = modes.get(task, default if self._normalizable(task) else None)
            if mode is None:
                continue
            if mode not in NORMALIZATIONS:
                raise ConfigError(f"normalization {mode!r} (task '{task}') is not one of None, "
                                  f"{', '.join(NORMALIZATIONS)}")
            out[task] = mode
        return out

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
        from tqdm import tqdm

        view = _StatisticsView(self, tasks)
        show = sys.stderr.isatty() if self.progress is None else self.progress
        batches: Iterable[dict[str, TaskStatistics]]
        if self.stats_workers > 0:
            from torch.utils.data import DataLoader

            batches = DataLoader(view, batch_size=_STATS_BATCH,  # type: ignore[arg-type]
                                 num_workers=self.stats_workers, collate_fn=_merge_partials)
        else:
            batches = (_merge_partials([view[i] for i in range(k, min(k + _STATS_BATCH, len(view)))])
                       for k in range(0, len(view), _STATS_BATCH))
        total: dict[str, TaskStatistics] = {}
        with tqdm(total=len(view), desc=f"statistics of {', '.join(tasks)}", unit="frame", disable=not show,
                  file=sys.stderr) as bar:
            for k, part in enumerate(batches):
                for task, stats in part.items():
                    total[task] = total[task].merge(stats) if task in total else stats
                bar.update(min(_STATS_BATCH, len(view) - k * _STATS_BATCH))
        missing = [t for t in tasks if t not in total]
        if missing:
            raise ConfigError(f"task(s) {', '.join(missing)} have no frame to compute statistics from")
        return total

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


_STATS_BATCH = 16


class _Collated(list):  # type: ignore[type-arg]
    """Items of one batch read together; ``batch`` and ``names`` are their collated form."""

    batch: dict[str, Any]
    names: list[str]


class _StatisticsView:
    """Map-style view giving each item's partial statistics (what DataLoader workers compute)."""

    def __init__(self, dataset: MultiTaskDataset, tasks: list[str]) -> None:
        self.dataset = dataset._shallow_copy()
        self.dataset._normalization = {}
        self.tasks = tasks

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, TaskStatistics]:
        v, frame = self.dataset._index[i]
        return {t: frame_statistics(self.dataset._read(v, t, frame)) for t in self.tasks
                if frame in self.dataset._present[t][v]}


def _merge_partials(parts: Sequence[Mapping[str, TaskStatistics]]) -> dict[str, TaskStatistics]:
    out: dict[str, TaskStatistics] = {}
    for task in {t for p in parts for t in p}:
        merged = merge_all(p[task] for p in parts if task in p)
        if merged is not None:
            out[task] = merged
    return out


def _shared_empty(torch: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised tensor in shared memory, allocated there as torch's default_collate does in a worker
    (``share_memory_()`` on a new tensor would copy it there: 2-3x slower)."""
    elem = torch.empty(0, dtype=dtype)
    storage = elem._typed_storage()._new_shared(int(np.prod(shape)), device=elem.device)
    return elem.new(storage).resize_(shape)


def _scale(stats: TaskStatistics, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, divisor) per channel of a normalization; a constant channel has divisor 1 (it becomes 0)."""
    if mode == "min_max":
        low, span = stats.min, stats.max - stats.min
    else:
        low, span = stats.mean, stats.std
    span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    return low.astype(np.float32), span.astype(np.float32)


def _normalize(x: np.ndarray, stats: TaskStatistics, mode: str) -> np.ndarray:
    """(x - min) / (max - min) or (x - mean) / std per channel (last axis)."""
    low, span = _scale(stats, mode)
    return ((x.astype(np.float32) - low) / span).astype(np.float32)


def _normalize_in_place(x: np.ndarray, stats: TaskStatistics, mode: str) -> None:
    low, span = _scale(stats, mode)
    x -= low
    x /= span


def collate(items: Sequence[MultiTaskItem], shapes: Mapping[str, tuple[tuple[int, ...], str]] | None = None
            ) -> tuple[dict[str, Any], list[str]]:
    """Stack ``({task: array}, name)`` items into ``({task: (B, ...)}, names)`` (torch tensors when the items
    are tensors); None values become NaN, or `MISSING_LABEL` for integer tasks. ``shapes``: task ->
    (shape, dtype) for tasks that may be None in every item of a batch."""
    if not items:
        return {}, []
    names = [name for _, name in items]
    tensors = any(not isinstance(v, np.ndarray) and v is not None for d, _ in items for v in d.values())
    out: dict[str, Any] = {}
    for task in items[0][0]:
        values = [d[task] for d, _ in items]
        known = next((v for v in values if v is not None), None)
        if known is not None:
            shape, dtype = tuple(known.shape), str(known.dtype).replace("torch.", "")
        elif shapes and task in shapes:
            shape, dtype = shapes[task]
        else:
            raise ConfigError(f"task '{task}' is missing from every item of the batch and its shape is unknown; "
                              f"use the dataset's collate_fn")
        kind = np.dtype(dtype).kind
        fill = MISSING_LABEL if kind == "i" else np.nan if kind == "f" else 0
        arrays = [np.asarray(v) if v is not None else np.full(shape, fill, dtype) for v in values]
        stacked = np.stack(arrays)
        if tensors:
            import torch

            out[task] = torch.from_numpy(stacked)
        else:
            out[task] = stacked
    return out, names


def split_videos(videos: Sequence[str], fractions: Mapping[str, float], *, seed: int = 0) -> dict[str, list[str]]:
    """Shuffle ``videos`` (seeded) and deal them into splits of about ``fractions`` of the videos (each
    split at least one video); e.g. ``{"train": 0.8, "test": 0.2}``."""
    if not fractions or any(f <= 0 for f in fractions.values()):
        raise ConfigError(f"split fractions must be positive, got {dict(fractions)}")
    if len(videos) < len(fractions):
        raise ConfigError(f"{len(videos)} video(s) cannot make {len(fractions)} splits by video "
                          f"({', '.join(fractions)}); export more videos or ask for fewer splits")
    order = list(videos)
    random.Random(seed).shuffle(order)
    total = sum(fractions.values())
    exact = {k: f / total * len(order) for k, f in fractions.items()}
    counts = {k: max(1, int(e)) for k, e in exact.items()}
    while sum(counts.values()) < len(order):  # largest remainders first
        k = max(exact, key=lambda key: exact[key] - counts[key])
        counts[k] += 1
    while sum(counts.values()) > len(order):
        k = max((key for key in counts if counts[key] > 1), key=lambda key: counts[key] - exact[key])
        counts[k] -= 1
    out: dict[str, list[str]] = {}
    start = 0
    for k in fractions:
        out[k] = sorted(order[start:start + counts[k]])
        start += counts[k]
    return out


def _names(what: str, names: Any) -> list[str] | None:
    """A ``tasks`` or ``videos`` argument as a list of names: one string is one name."""
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Iterable) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{what} must be a name or a list of names, got {names!r}")
    return list(names)


def _given_statistics(statistics: Any) -> dict[str, TaskStatistics]:
    """The ``statistics`` argument checked: {task: TaskStatistics}."""
    if statistics is None:
        return {}
    if not isinstance(statistics, Mapping):
        raise ConfigError(f"statistics must be {{task: TaskStatistics}}, got {statistics!r}")
    for task, stats in statistics.items():
        if not isinstance(stats, TaskStatistics):
            raise ConfigError(f"statistics[{task!r}] must be a TaskStatistics (e.g. another dataset's .statistics), "
                              f"got {stats!r}")
    return dict(statistics)


def _select_videos(sources: list[Any], videos: Sequence[str]) -> list[Any]:
    by_name = {s.video: s for s in sources}
    unknown = [v for v in videos if v not in by_name]
    if unknown:
        raise ConfigError(f"video(s) {', '.join(map(repr, unknown))} not in the dataset; its videos: "
                          f"{', '.join(by_name)}")
    return [by_name[v] for v in videos]


def _open_sources(path: Path) -> tuple[list[Any], bool]:
    """The videos of the dataset at ``path`` and whether it is a folder of exports (names carry the video)."""
    from vrecore.data.packed import open_packed_sources
    from vrecore.data.sources import ExportSource

    packed = open_packed_sources(path)
    if packed is not None:
        return packed
    exports = find_exports(path)
    return [ExportSource(root, video) for video, root in exports], exports[0][1] != path


def _ranges(frames: list[int]) -> str:
    from vrecore.export.runlog import ranges

    return ranges(frames)
