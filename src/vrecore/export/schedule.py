"""Scale-out planning: which process computes which representations, and in what order chunks may run.

Strategy 1 (the paper's section 2.4) spreads the chunks of frames still to compute over ``workers``
processes, each running every representation; Strategy 2 places groups of representations on
devices (``placement``), each group in its own processes. They combine: every group gets ``workers``
processes. A chunk of a group may start once every group it depends on has stored that chunk: a
dependency that lives in another group is read back from the store (the page cache makes that a
memory copy), never computed twice.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vrecore.errors import ConfigError
from vrecore.export.chunks import Task
from vrecore.frames.video import ranges
from vrecore.graph.build import Graph

__all__ = ["Group", "Schedule", "WorkerSlot", "available_memory", "cap_workers", "check_memory", "make_groups",
           "worker_slots"]


@attrs.frozen
class Group:
    """Representations that run together on one device."""

    name: str
    device: str
    nodes: tuple[str, ...]
    upstream: tuple[str, ...]
    """Groups holding a dependency of one of these representations."""


@attrs.frozen
class WorkerSlot:
    """One process of a run: its index, group and device."""

    index: int
    group: str
    device: str


def make_groups(graph: Graph, need: Mapping[str, set[int]], *, device: str,
                placement: Mapping[str, str] | None) -> list[Group]:
    """The groups of representations with work. Without ``placement``: one group of all of them."""
    working = [n for n in graph if need.get(n.name)]
    if not placement:
        return [Group("*", device, tuple(n.name for n in working), ())]
    unknown = sorted(set(placement) - {"*"} - set(graph.names))
    if unknown:
        raise ConfigError(f"placement names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not "
                          f"in the graph (representations: {', '.join(graph.names)})")
    where = {n.name: str(placement.get(n.name, placement.get("*", device))) for n in graph}
    devices = list(dict.fromkeys(where[n.name] for n in working))
    groups = []
    for dev in devices:
        members = tuple(n.name for n in working if where[n.name] == dev)
        upstream = set()
        for name in members:
            for dep in graph[name].dependency_names:
                if need.get(dep) and where[dep] != dev:
                    if not (graph[dep].settings.writes and graph[dep].settings.binary_format != "none"):
                        raise ConfigError(
                            f"representation '{name}' on {dev} depends on '{dep}' on {where[dep]}, which is not stored; "
                            f"place them on one device, or store '{dep}' (export: true, binary_format: npz)")
                    upstream.add(where[dep])
        groups.append(Group(dev, dev, members, tuple(sorted(upstream))))
    _check_acyclic(groups)
    return groups


def _check_acyclic(groups: Sequence[Group]) -> None:
    by_name = {g.name: g for g in groups}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for up in by_name[name].upstream:
            if state.get(up) == 1:
                cycle = " -> ".join([*path[path.index(up):], up]) if up in path else up
                raise ConfigError(f"placement makes devices wait on each other ({cycle}); place the representations "
                                  f"of that chain on one device")
            if up not in state:
                visit(up, [*path, up])
        state[name] = 2

    for g in groups:
        if g.name not in state:
            visit(g.name, [g.name])


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux: MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


WORKER_MEMORY = 1 << 30
"""Memory one worker process is assumed to need (an interpreter with numpy, OpenCV, a decoder and a few batches
of frames; learned models need more, so this cap only keeps a typo like workers=1000 from swapping the machine)."""


def cap_workers(requested: int, chunks: int, memory: int | None = None) -> tuple[int, str | None]:
    """Workers per group: at most one per chunk of work, and as many as ``memory`` (available bytes) holds at
    `WORKER_MEMORY` each; returns the number and why it is below ``requested`` (None when it is not)."""
    by_memory = max(1, memory // WORKER_MEMORY) if memory is not None else requested
    workers = max(1, min(requested, chunks, by_memory))
    if workers == requested:
        return workers, None
    if memory is None or (workers == min(requested, chunks) and chunks < requested):
        why = f"{chunks} chunk(s) of frames to compute"
    else:
        why = f"{memory / 2**30:.1f} GiB of memory available, {WORKER_MEMORY / 2**30:.0f} GiB assumed per worker"
    return workers, why


def worker_slots(groups: Sequence[Group], workers: int, devices: Sequence[str] | None) -> list[WorkerSlot]:
    """``workers`` processes per group: without placement, round-robin over ``devices``."""
    slots: list[WorkerSlot] = []
    for g in groups:
        for k in range(workers):
            dev = g.device if g.name != "*" or not devices else str(devices[k % len(devices)])
            slots.append(WorkerSlot(len(slots), g.name, dev))
    return slots


class Schedule:
    """The tasks of a run (chunk x group) and which may start: a group's chunk waits for the same chunk of
    every upstream group. Tracks what is done, lost (its workers died) and held by whom."""

    def __init__(self, chunks: Sequence[Sequence[int]], groups: Sequence[Group]) -> None:
        self.groups = {g.name: g for g in groups}
        order = list(self.groups)
        self.tasks = {k * len(order) + gi: Task(k * len(order) + gi, tuple(chunk), g)
                      for k, chunk in enumerate(chunks) for gi, g in enumerate(order)}
        self._index = {(t.id // len(order), t.group): t.id for t in self.tasks.values()}
        self.done: set[int] = set()
        self.lost: set[int] = set()
        self.released: set[int] = set()
        self.held: dict[int, set[int]] = {}
        """Worker index → ids of the tasks it took."""

    def _chunk(self, task: Task) -> int:
        return task.id // len(self.groups)

    def ready(self) -> list[Task]:
        """Tasks not yet handed out whose upstream chunks are all stored (marks them handed out)."""
        out = []
        for tid, task in self.tasks.items():
            if tid in self.released or tid in self.lost:
                continue
            ups = [self._index[(self._chunk(task), u)] for u in self.groups[task.group].upstream]
            if any(u in self.lost for u in ups):
                self.lost.add(tid)
                continue
            if all(u in self.done for u in ups):
                self.released.add(tid)
                out.append(task)
        return out

    def take(self, worker: int, task_id: int) -> None:
        self.held.setdefault(worker, set()).add(task_id)

    def finish(self, worker: int, task_id: int) -> None:
        self.held.get(worker, set()).discard(task_id)
        self.done.add(task_id)

    def orphaned(self, worker: int, *, requeue: bool) -> list[Task]:
        """The tasks a dead worker held: handed out again when ``requeue``, else lost (left for a re-run)."""
        held = sorted(self.held.pop(worker, set()) - self.done)
        if requeue:
            self.released.difference_update(held)
        else:
            self.lost.update(held)
        return [self.tasks[t] for t in held]

    def lose_group(self, group: str) -> None:
        """Every task of ``group`` not done (its last worker died)."""
        self.lost.update(t for t, task in self.tasks.items() if task.group == group and t not in self.done)

    @property
    def finished(self) -> bool:
        return len(self.done) + len(self.lost - self.done) >= len(self.tasks)

    def describe(self, task_ids: Any) -> str:
        """Frames of tasks, for messages: 'frames 40..47 (cpu)'."""
        parts = [f"frames {ranges(self.tasks[t].frames)}" + (f" of {self.tasks[t].group}" if len(self.groups) > 1
                                                              else "") for t in task_ids]
        return ", ".join(parts)


def check_memory(graph: Graph) -> None:
    """Refuse an ``output_size`` whose batch of outputs (float32, as computed) cannot fit in the available memory."""
    free = available_memory()
    for node in graph:
        size = node.settings.output_size
        if not isinstance(size, tuple) or free is None:  # the frame's size, or its own (native): not a setting
            continue
        channels = max(1, node.representation.output_spec().channels or 1)
        needed = size[0] * size[1] * max(channels, 3) * 4 * node.settings.batch_size
        if needed > free:
            raise ConfigError(f"representation '{node.name}': output_size {list(size)} with batch_size "
                              f"{node.settings.batch_size} needs {needed / 2**30:.1f} GiB, more than the "
                              f"{free / 2**30:.1f} GiB of memory available; choose a smaller output_size or batch_size")
