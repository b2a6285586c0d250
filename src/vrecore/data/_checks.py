"""Checks of `MultiTaskDataset`'s arguments: a bad one is a one-line `ConfigError` naming it and what it takes."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vrecore.data.statistics import TaskStatistics
from vrecore.errors import ConfigError

__all__ = ["HANDLE_MISSING", "check_handle_missing", "check_one_hot", "check_stats_workers", "given_statistics",
           "names", "virtual_specs"]

HANDLE_MISSING = ("raise", "drop", "fill_none", "fill_zero", "fill_nan")


def check_handle_missing(handle_missing: Any) -> None:
    """``handle_missing`` is one of `HANDLE_MISSING`."""
    if handle_missing not in HANDLE_MISSING:
        raise ConfigError(f"handle_missing {handle_missing!r} is not one of {', '.join(HANDLE_MISSING)}")


def check_stats_workers(stats_workers: Any) -> None:
    """``stats_workers`` is a count of DataLoader workers (0: none)."""
    if isinstance(stats_workers, bool) or not isinstance(stats_workers, int) or stats_workers < 0:
        raise ConfigError(f"stats_workers must be 0 or more, got {stats_workers!r}")


def names(what: str, names: Any) -> list[str] | None:
    """A ``tasks`` or ``videos`` argument as a list of names: one string is one name, not its letters."""
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Iterable) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{what} must be a name or a list of names, got {names!r}")
    return list(names)


def given_statistics(statistics: Any) -> dict[str, TaskStatistics]:
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


def virtual_specs(virtual: Any) -> dict[str, Mapping[str, Any] | None]:
    """The ``virtual_tasks`` argument as {name: pipeline entry, or None for one the export's runs describe}."""
    if virtual is None:
        return {}
    if isinstance(virtual, str):
        return {virtual: None}
    if isinstance(virtual, Mapping):
        return {str(k): (dict(v) if v is not None else None) for k, v in virtual.items()}
    return {str(name): None for name in virtual}


def check_one_hot(one_hot: Iterable[str], tasks: Sequence[str], is_classification: Callable[[str], bool]) -> None:
    """Every task ``one_hot`` names is a class task of the dataset."""
    wrong = [t for t in sorted(one_hot) if t not in tasks or not is_classification(t)]
    if wrong:
        what = "a class task" if len(wrong) == 1 else "class tasks"
        classes = ", ".join(t for t in tasks if is_classification(t)) or "none"
        raise ConfigError(f"one_hot names {', '.join(map(repr, wrong))}, not {what} of the dataset "
                          f"(class tasks: {classes})")
