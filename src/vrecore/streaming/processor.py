"""`GraphProcessor`: a representation graph run on one live frame at a time, by the export's executor."""
from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from vrecore.errors import ConfigError
from vrecore.graph.build import Graph, Node, build_graph, output_shape
from vrecore.graph.executor import EXCEPTION_MODES, Executor, NodeOutput, preflight
from vrecore.graph.representation import Representation

from .result import FrameResult

__all__ = ["GraphProcessor", "PreviewImages", "StreamFrames", "describe_output"]

_RECENT = 4096  # per-representation compute times kept for percentiles (memory stays flat)


class PreviewImages(Mapping[str, np.ndarray]):
    """uint8 (H, W, 3) RGB previews of one frame's exported representations, by name.

    Each image is made (``make_images``) the first time it is asked for, then kept: a raw output
    that writes one representation pays for that one preview only. ``shapes`` gives every
    image's (H, W) without making any. A representation that failed on this frame (with
    exception_mode="skip") shows as a black image, so fixed-size outputs keep their layout.
    """

    def __init__(self, nodes: Sequence[Node], memory: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, int]]):
        self._nodes = {n.name: n for n in nodes}
        self._memory = memory  # name -> (1, H, W, C) batch; absent when the node failed
        self.shapes: dict[str, tuple[int, int]] = dict(shapes)
        self._made: dict[str, np.ndarray] = {}
        self.make_ms = 0.0
        """Milliseconds spent in ``make_images`` so far for this frame."""

    def __getitem__(self, name: str) -> np.ndarray:
        img = self._made.get(name)
        if img is not None:
            return img
        node = self._nodes[name]  # KeyError for a name that is not an exported representation
        batch = self._memory.get(name)
        t = time.perf_counter()
        if batch is None:
            h, w = self.shapes[name]
            img = np.zeros((h, w, 3), np.uint8)
        else:
            img = node.representation.make_images(batch)[0]
        self.make_ms += (time.perf_counter() - t) * 1e3
        self._made[name] = img
        return img

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __repr__(self) -> str:
        return f"PreviewImages({', '.join(self._nodes)}; made: {', '.join(self._made) or 'none'})"



def _round(v: float) -> float | None:
    return float(f"{v:.6g}") if math.isfinite(v) else None


def describe_output(out: np.ndarray) -> dict[str, Any]:
    """JSON-able facts about one memory-form output (H, W, C): true fraction of bool masks,
    mean/min/max of single-channel floats (non-finite values ignored), nothing otherwise."""
    if out.dtype == np.bool_:
        if out.shape[-1] == 1:
            return {"fraction": _round(np.count_nonzero(out) / max(out.size, 1))}
        per = np.count_nonzero(out.reshape(-1, out.shape[-1]), axis=0) / max(out.size // out.shape[-1], 1)
        return {"fraction": [_round(float(v)) for v in per]}
    if out.dtype.kind == "f" and out.shape[-1] == 1:
        mean, lo, hi = float(out.mean()), float(out.min()), float(out.max())
        if not (math.isfinite(mean) and math.isfinite(lo) and math.isfinite(hi)):
            finite = out[np.isfinite(out)]
            if finite.size == 0:
                return {"mean": None, "min": None, "max": None}
            mean, lo, hi = float(finite.mean()), float(finite.min()), float(finite.max())
        return {"mean": _round(mean), "min": _round(lo), "max": _round(hi)}
    return {}




class _NodeStats:
    __slots__ = ("frames", "total_ms", "max_ms", "recent", "failed")

    def __init__(self) -> None:
        self.frames = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.recent: collections.deque[float] = collections.deque(maxlen=_RECENT)
        self.failed = 0

    def add(self, ms: float) -> None:
        self.frames += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.recent.append(ms)

    def as_dict(self) -> dict[str, Any]:
        recent = np.fromiter(self.recent, np.float64, len(self.recent))
        p50, p90 = (np.percentile(recent, [50, 90]).tolist() if len(recent) else (None, None))
        return {"frames": self.frames, "failed": self.failed,
                "mean_ms": self.total_ms / self.frames if self.frames else None,
                "p50_ms": p50, "p90_ms": p90, "max_ms": self.max_ms if self.frames else None}


class StreamFrames:
    """The frames of a live stream as the executor asks for them: the newest, and for types that read
    neighbours (`Representation.frame_offsets`) the recent ones, since a stream has no future."""

    def __init__(self, history: collections.deque[tuple[int, np.ndarray]], frame_shape: tuple[int, int]) -> None:
        self.history, self.frame_shape = history, frame_shape

    def batch_frames(self, rep: Representation, part: Sequence[int]) -> dict[str, Any]:
        history = self.history
        offsets = rep.frame_offsets()
        if not offsets:
            return {"frames": history[-1][1] if rep.uses_frames else None}
        # The batch's frame is D processed frames back (D the largest positive offset), each neighbour
        # relative to it, so that offset D is the newest frame.
        base = len(history) - 1 - max(0, *offsets)

        def at(k: int) -> tuple[int, np.ndarray]:
            return history[min(max(k, 0), len(history) - 1)]

        seq, frames = at(base)
        near = {d: at(base + d) for d in offsets}
        return {"indices": np.array([seq]), "frames": frames, "neighbours": {d: f for d, (_, f) in near.items()},
                "neighbour_indices": {d: np.array([s]) for d, (s, _) in near.items()}}


class GraphProcessor:
    """Runs a representation graph on single frames, with the export's executor (`vrecore.graph.executor`).

    Every representation that is exported, or that an exported one depends on, computes each
    frame in topological order as a batch of one, exactly as in a batch export: dependencies by
    role in their stored form, outputs checked and resized to the frame size (or the node's
    ``output_size``), an out-of-memory error retried once after freeing cached memory.
    ``export: false`` representations are computed only as dependencies and get no preview.

    Learned representations are set up on ``device`` once (`setup`, or automatically before
    the first frame) and torn down by `teardown` (or leaving the ``with`` block).

    With ``exception_mode="stop"`` a failing representation raises `RepresentationFailed`; with
    ``"skip"`` it (and whatever depends on it) is left out of that frame and counted.

    `vrecore.stream` and `run_graph_stream` run it in the streaming loop; call `process` for your own loop.
    """

    def __init__(self, graph: Graph | Mapping[str, Any], device: str = "cpu", *, exception_mode: str = "stop",
                 summaries: bool = True) -> None:
        if exception_mode not in EXCEPTION_MODES:
            raise ConfigError(f"exception_mode {exception_mode!r} is not one of {', '.join(EXCEPTION_MODES)}")
        self.graph = graph if isinstance(graph, Graph) else build_graph(graph)
        self.device = device
        self.exception_mode = exception_mode
        self.summaries = summaries
        needed = {n.name for n in self.graph if n.settings.export}
        for node in reversed(self.graph.nodes):
            if node.name in needed:
                needed.update(node.dependency_names)
        self.nodes: tuple[Node, ...] = tuple(n for n in self.graph if n.name in needed)
        """The representations computed for each frame, in topological order."""
        self.exported: tuple[Node, ...] = tuple(n for n in self.nodes if n.settings.export)
        if not self.exported:
            raise ConfigError("every representation has export: false, so a stream would show nothing; "
                              "set export: true on at least one")
        self.executor = Executor(self.graph, nodes=self.nodes, device=device, exception_mode=exception_mode,
                                 quiet_failures=True)
        self._stats = {n.name: _NodeStats() for n in self.nodes}
        offsets = [d for n in self.nodes for d in n.representation.frame_offsets()]
        reach = max(0, *offsets) - min(0, *offsets) if offsets else 0
        self._history: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=reach + 1)
        self._ready = False
        self.frames = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def output_names(self) -> list[str]:
        """Names of the exported representations (the keys of the previews), in graph order."""
        return [n.name for n in self.exported]

    def setup(self) -> GraphProcessor:
        """Set up every learned representation on the device (once; later calls do nothing)."""
        if self._ready:
            return self
        preflight([n for n in self.nodes if n.representation.learned])
        try:
            self.executor.setup()
        except BaseException:
            self.teardown()
            raise
        self._ready = True
        return self

    def teardown(self) -> None:
        """Tear down what `setup` set up (idempotent); a later frame sets them up again."""
        self._ready = False
        self.executor.teardown()

    def __enter__(self) -> GraphProcessor:
        return self.setup()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    # -- one frame ------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, seq: int = -1) -> FrameResult:
        """Compute every representation on ``frame`` (uint8 (H, W, 3) RGB); ``seq`` is its index."""
        if not self._ready:
            self.setup()
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ConfigError(f"stream frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        if seq < 0:
            seq = self.frames
        t_start = time.perf_counter()
        self._history.append((seq, frame[None]))  # a view: the batch of one
        outputs: dict[str, NodeOutput] = {}
        for name, failed in self.executor.failed.items():  # per frame only: memory stays flat
            failed.clear()
            self.executor.stats[name].failed_frames.clear()
        self.executor.run(StreamFrames(self._history, (int(frame.shape[0]), int(frame.shape[1]))),
                          {n.name: (seq,) for n in self.nodes},
                          on_output=lambda o: outputs.__setitem__(o.node.name, o))
        memory = {name: o.memory for name, o in outputs.items()}
        compute_ms: dict[str, float] = {}
        summary: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for node in self.nodes:
            name = node.name
            if self.executor.failed[name]:
                self._stats[name].failed += 1
                errors[name] = self.executor.last_error.get(name, "failed")
                summary[name] = {"error": errors[name]}
                continue
            if name not in outputs:
                continue
            ms = outputs[name].seconds * 1e3
            compute_ms[name] = ms
            self._stats[name].add(ms)
            summary[name] = {"ms": round(ms, 3), **(describe_output(memory[name][0]) if self.summaries else {})}
        shape = (int(frame.shape[0]), int(frame.shape[1]))
        shapes = {n.name: (memory[n.name].shape[1:3] if n.name in memory else output_shape(n, shape))
                  for n in self.exported}
        result = FrameResult(
            seq=seq, outputs={k: v[0] for k, v in memory.items()},
            images=PreviewImages(self.exported, memory, shapes),  # type: ignore[arg-type]
            shapes={k: (int(v[0]), int(v[1])) for k, v in shapes.items()},
            summary=summary, compute_ms=compute_ms, graph_ms=(time.perf_counter() - t_start) * 1e3, errors=errors)
        self.frames += 1
        return result

    # -- totals ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per representation: frames computed, failures, mean / p50 / p90 / max milliseconds."""
        return {name: s.as_dict() for name, s in self._stats.items()}

    def stats_table(self) -> str:
        """`stats` as an aligned text table."""
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        rows = [("representation", "frames", "failed", "mean ms", "p50 ms", "p90 ms", "max ms")]
        for name, s in self.stats().items():
            rows.append((name, str(s["frames"]), str(s["failed"]), ms(s["mean_ms"]), ms(s["p50_ms"]),
                         ms(s["p90_ms"]), ms(s["max_ms"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                         for r in rows)


