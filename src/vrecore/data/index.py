"""Which items a dataset has: its videos (exports or packs), the frames each task has in each, the item index."""
from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from vrecore.data.sources import find_exports
from vrecore.errors import ConfigError

__all__ = ["build_index", "find_present", "open_sources", "select_videos"]


def store_location(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """``path`` as a local folder (a ``file://`` URL's path), or as given when a store other than the folder
    keeps it (a URL of one, or a registered suffix such as ``.zarr`` on an export of that store), with whether it
    is the latter. A URL no installed store handles is refused in one line."""
    from vrecore.store.location import check_local_path, choose_store

    text = os.fspath(path)
    choice = choose_store(text, what="path")
    if choice.extension.name == "directory":
        return check_local_path(text, "path"), False
    if choice.local and (not os.path.isdir(choice.location) or _is_pack(Path(choice.location))):
        return choice.location, False  # not there (the reader says so), or a `vre pack --to zarr` output
    return text, True


def _is_pack(path: Path) -> bool:
    import json

    try:
        return "vre" in (json.loads((path / "zarr.json").read_text()).get("attributes") or {})
    except (OSError, ValueError, AttributeError):
        return False


def open_sources(path: str | Path) -> tuple[list[Any], bool]:
    """The videos of the dataset at ``path`` and whether it is a folder of exports (names carry the video)."""
    from vrecore.data.packed import open_packed_sources
    from vrecore.data.sources import ExportSource
    from vrecore.data.store_source import open_store_source

    if isinstance(path, str):  # a store's location (see `store_location`)
        source = open_store_source(path)
        if source is not None:
            return [source], False
        path = Path(path)

    packed = open_packed_sources(path)
    if packed is not None:
        return packed
    exports = find_exports(path)
    return [ExportSource(root, video) for video, root in exports], exports[0][1] != path


def select_videos(sources: list[Any], videos: Sequence[str]) -> list[Any]:
    """The sources of ``videos``, in that order; an unknown video is an error listing the dataset's."""
    by_name = {s.video: s for s in sources}
    unknown = [v for v in videos if v not in by_name]
    if unknown:
        raise ConfigError(f"video(s) {', '.join(map(repr, unknown))} not in the dataset; its videos: "
                          f"{', '.join(by_name)}")
    return [by_name[v] for v in videos]


def find_present(tasks: Sequence[str], sources: Sequence[Any], virtual: Collection[str],
                 read_from_disk: Callable[[int, str], Collection[str]]) -> dict[str, list[set[int]]]:
    """Task -> the frames it has in each video: stored ones, or for a ``virtual`` task the frames where every
    stored task it is computed from (``read_from_disk(video, task)``) is; an error only where no video has them."""
    present: dict[str, list[set[int]]] = {}
    for task in tasks:
        if task in virtual:
            continue
        present[task] = [s.frames(task) if task in s.tasks else set() for s in sources]
    for task in tasks:
        if task not in virtual:
            continue
        present[task] = []
        errors: list[ConfigError] = []
        for v, source in enumerate(sources):
            try:
                needed = read_from_disk(v, task)
            except ConfigError as e:  # this video lacks what the task is computed from: no frames there
                errors.append(e)
                present[task].append(set())
                continue
            frames = [source.frames(n) for n in needed]
            present[task].append(set.intersection(*frames) if frames else set())
        if len(errors) == len(sources):
            raise errors[0]
    return present


def build_index(present: dict[str, list[set[int]]], tasks: Sequence[str], videos: Sequence[str],
                handle_missing: str, multi: bool) -> list[tuple[int, int]]:
    """The (video, frame) of every item: frames of any task, or of every task with ``handle_missing="drop"``;
    with ``"raise"``, a frame some task lacks is an error naming them."""
    index: list[tuple[int, int]] = []
    problems: list[str] = []
    for v in range(len(videos)):
        sets = [present[t][v] for t in tasks]
        every = set().union(*sets)
        if handle_missing == "drop":
            every = set.intersection(*sets) if sets else set()
        elif handle_missing == "raise":
            for task, frames in zip(tasks, sets, strict=True):
                lacking = sorted(every - frames)
                if lacking:
                    from vrecore.frames.video import ranges

                    where = f" of video '{videos[v]}'" if multi else ""
                    problems.append(f"task '{task}' is missing frame(s) {ranges(lacking)}{where}")
        index.extend((v, f) for f in sorted(every))
    if problems:
        shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise ConfigError("; ".join(shown) + "; choose handle_missing='drop' (leave such frames out) or "
                                             "'fill_none', 'fill_zero', 'fill_nan', or compute the missing frames")
    return index
