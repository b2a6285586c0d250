"""Streaming mode for a representation graph: every live frame through every representation.

`GraphProcessor` runs a `Graph` on one frame at a time, as a batch of one, with the same code the
batch exporter uses to feed a representation its dependencies by role and to check and resize
what it computed (`vrecore.export.run.dependency_inputs` / `finish_output`): there is no
streaming-only path in any representation. Learned representations are set up once, before the
first frame, and torn down at the end.

Three ways to use it:

* ``for result in vrecore.stream(source, graph): ...`` — an iterator of `StreamResult` (the newest
  frame each time the loop asks for one; frames that arrive meanwhile are dropped);
* `run_graph_stream` — the push form: results go to `StreamTarget` objects (raw pipe, TCP, web
  viewer, JSON lines, `CallbackTarget`) and/or an ``on_result`` callback; returns a summary;
* `GraphProcessor` directly, as the ``process`` of `run_stream` / `iter_stream`.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import numpy as np

from vrecore.errors import ConfigError
from vrecore.graph.build import Graph, Node, build_graph
from vrecore.graph.executor import EXCEPTION_MODES, Executor, NodeOutput, RepresentationFailed, preflight
from vrecore.graph.representation import Representation

from .latest import FrameEntry, LatestFrame
from .runner import StreamSummary, run_stream
from .sources import StreamSource, open_stream_source
from .targets import StreamTarget

__all__ = [
    "EXCEPTION_MODES",
    "FrameResult",
    "GraphProcessor",
    "GraphStream",
    "GraphStreamSummary",
    "PreviewImages",
    "RepresentationFailed",
    "StreamResult",
    "run_graph_stream",
    "stream",
]

logger = logging.getLogger(__name__)

_RECENT = 4096  # per-representation compute times kept for percentiles (memory stays flat)


# -- per-frame result --------------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """What `GraphProcessor.process` returns for one frame."""

    seq: int
    outputs: dict[str, np.ndarray]
    """Memory form (H, W, C) of every representation computed (``export: false`` ones included)."""
    images: PreviewImages
    """Previews of the exported representations (made lazily)."""
    summary: dict[str, dict[str, Any]]
    """JSON-able, per representation: ``ms`` (compute + resize), and ``fraction`` of true pixels
    for bool masks, or ``mean``/``min``/``max`` for single-channel floats; ``error`` if it failed."""
    compute_ms: dict[str, float]
    graph_ms: float
    errors: dict[str, str]
    """Representation name → error text, for those that failed on this frame (exception_mode="skip")."""


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One processed frame of `vrecore.stream`: the input, every output, previews and timings."""

    seq: int
    """Sequence number of the frame in source order (0-based; gaps are dropped frames)."""
    frame: np.ndarray
    """The input frame, uint8 (H, W, 3) RGB."""
    outputs: dict[str, np.ndarray]
    """Memory form (H, W, C) of every representation computed, resized to the frame size."""
    images: PreviewImages
    """uint8 (H, W, 3) previews of the exported representations, made on first access."""
    summary: dict[str, dict[str, Any]]
    """JSON-able per-representation summary (see `FrameResult.summary`)."""
    timings: dict[str, Any]
    """Milliseconds: ``compute_ms`` {name: ms}, ``graph_ms``, ``wait_ms`` (waiting for the frame)
    and ``latency_ms`` (frame received → results ready)."""
    received: int
    """Frames received from the source so far."""
    dropped: int
    """Frames dropped so far (a newer one arrived before they were taken)."""
    errors: dict[str, str] = dataclasses.field(default_factory=dict)


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


# -- the processor -----------------------------------------------------------------------------


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

    Use it as the ``process`` of `run_stream` (it returns ``(previews, summary)`` and adds one
    ``<name>_ms`` column per representation to the metrics CSV), or call `process` directly.
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
        self.last: FrameResult | None = None
        """The result of the latest `process` call."""

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
        shapes = {n.name: (memory[n.name].shape[1:3] if n.name in memory else (n.settings.output_size or shape))
                  for n in self.exported}
        result = FrameResult(
            seq=seq, outputs={k: v[0] for k, v in memory.items()},
            images=PreviewImages(self.exported, memory, shapes),  # type: ignore[arg-type]
            summary=summary, compute_ms=compute_ms, graph_ms=(time.perf_counter() - t_start) * 1e3, errors=errors)
        self.frames += 1
        self.last = result
        return result

    # -- the run_stream protocol ------------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> tuple[PreviewImages, dict[str, dict[str, Any]]]:
        r = self.process(frame)
        return r.images, r.summary

    def process_entry(self, entry: FrameEntry) -> tuple[PreviewImages, dict[str, dict[str, Any]]]:
        r = self.process(entry.frame, entry.seq)
        return r.images, r.summary

    @property
    def metrics_columns(self) -> list[str]:
        """Extra metrics CSV columns: compute milliseconds of each representation."""
        return [f"{n.name}_ms" for n in self.nodes]

    def metrics_row(self) -> list[float]:
        last = self.last
        if last is None:
            return [math.nan] * len(self.nodes)
        return [last.compute_ms.get(n.name, math.nan) for n in self.nodes]

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


# -- the iterator form ---------------------------------------------------------------------------


def _as_source(source: StreamSource | str | os.PathLike[str], width: int | None, height: int | None,
               realtime: bool, host: str) -> StreamSource:
    if isinstance(source, StreamSource):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise ConfigError(f"a stream source is a StreamSource or a spec string, got {type(source).__name__}")
    return open_stream_source(source, width=width, height=height, realtime=realtime, host=host)


def _close_quietly(lf: LatestFrame, processor: GraphProcessor) -> None:
    try:
        lf.close()
    finally:
        processor.teardown()


class GraphStream(Iterator[StreamResult]):
    """Iterator of `StreamResult`, one per processed frame; see `stream`.

    Each ``next()`` takes the newest frame that arrived (older untaken ones are dropped unless
    ``drop_frames=False``) and runs the graph on it. The stream ends with the source or after
    ``max_frames``; ``close()`` (or leaving a ``with`` block, or breaking out of a ``for`` loop
    and dropping the iterator) stops the reader, closes the source and tears learned
    representations down.
    """

    def __init__(self, source: StreamSource, processor: GraphProcessor, *, drop_frames: bool = True,
                 max_frames: int | None = None) -> None:
        if max_frames is not None and max_frames < 0:
            raise ConfigError(f"max_frames must be >= 0, got {max_frames}")
        self.source = source
        self.processor = processor
        self.max_frames = max_frames
        self._lf = LatestFrame(source, drop=drop_frames)
        self._started = False
        self._closed = False
        self.processed = 0
        self._finalizer = weakref.finalize(self, _close_quietly, self._lf, processor)

    @property
    def received(self) -> int:
        """Frames received from the source so far."""
        return self._lf.received

    @property
    def dropped(self) -> int:
        """Frames dropped so far."""
        return self._lf.dropped

    def start(self) -> GraphStream:
        """Set up learned representations, then open the source and start reading (idempotent)."""
        if not self._started and not self._closed:
            self._started = True
            try:
                self.processor.setup()
                self._lf.start()
            except BaseException:
                self.close()
                raise
        return self

    def __iter__(self) -> GraphStream:
        return self

    def __next__(self) -> StreamResult:
        if self._closed or (self.max_frames is not None and self.processed >= self.max_frames):
            self.close()
            raise StopIteration
        self.start()
        t0 = time.perf_counter()
        try:
            entry = self._lf.get_entry()
            if entry is None:
                raise StopIteration
            t1 = time.perf_counter()
            r = self.processor.process(entry.frame, entry.seq)
        except BaseException:
            self.close()
            raise
        self.processed += 1
        t2 = time.perf_counter()
        return StreamResult(
            seq=entry.seq, frame=entry.frame, outputs=r.outputs, images=r.images, summary=r.summary,
            timings={"compute_ms": r.compute_ms, "graph_ms": r.graph_ms, "wait_ms": (t1 - t0) * 1e3,
                     "latency_ms": (t2 - entry.received_at) * 1e3},
            received=self._lf.received, dropped=self._lf.dropped, errors=r.errors)

    def close(self) -> None:
        """Stop reading, close the source and tear down learned representations (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> GraphStream:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def stream(source: StreamSource | str | os.PathLike[str], graph: Graph | Mapping[str, Any], *, device: str = "cpu",
           drop_frames: bool = True, max_frames: int | None = None, width: int | None = None,
           height: int | None = None, realtime: bool = True, host: str = "127.0.0.1",
           exception_mode: str = "stop") -> GraphStream:
    """Run ``graph`` on a live source and iterate over the results, newest frame first.

    ``source`` is a `StreamSource` or a spec: ``"-"`` (raw rgb24 on stdin), ``"tcp://HOST:PORT"``
    (listen for a raw rgb24 sender; raw input needs ``width``/``height``), ``"/dev/video0"`` or a
    video file (``realtime`` paces it to its frame rate). ``graph`` is a `Graph` or a config
    mapping for `build_graph`. With ``drop_frames`` (default) each step gets the newest frame and
    frames that arrived meanwhile are dropped, so a slow graph or loop body never falls behind;
    ``drop_frames=False`` processes every frame.

        for result in vrecore.stream("tcp://127.0.0.1:5000", graph, width=960, height=540):
            act(result.summary["landing"]["fraction"], result.outputs["depth"])

    Learned representations are set up before the first frame and torn down at the end.
    """
    processor = graph if isinstance(graph, GraphProcessor) else GraphProcessor(graph, device,
                                                                                exception_mode=exception_mode)
    return GraphStream(_as_source(source, width, height, realtime, host), processor, drop_frames=drop_frames,
                       max_frames=max_frames)


# -- the push form --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GraphStreamSummary(StreamSummary):
    """`StreamSummary` plus per-representation compute statistics (see `GraphProcessor.stats`)."""

    representations: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    table: str = ""

    def __str__(self) -> str:
        return super().__str__() + ("\n" + self.table if self.table else "")


class _ResultTarget(StreamTarget):
    """Calls ``fn(StreamResult)`` for each processed frame (used by `run_graph_stream`).

    The result is built in `send_summary`, which the runner calls right after `send` with the
    frame's counters and timings.
    """

    wants_summary = True

    def __init__(self, processor: GraphProcessor, fn: Callable[[StreamResult], Any]) -> None:
        self._processor, self._fn = processor, fn
        self._frame: tuple[int, np.ndarray] | None = None

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        self._frame = (seq, input_frame)

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        r, frame = self._processor.last, self._frame
        assert r is not None and r.seq == seq and frame is not None and frame[0] == seq
        self._frame = None
        self._fn(StreamResult(
            seq=seq, frame=frame[1], outputs=r.outputs, images=r.images, summary=r.summary,
            timings={"compute_ms": r.compute_ms, "graph_ms": r.graph_ms, "wait_ms": summary.get("wait_ms"),
                     "latency_ms": summary.get("latency_ms")},
            received=int(summary.get("received", 0)), dropped=int(summary.get("dropped", 0)), errors=r.errors))

    def close(self) -> None:
        self._frame = None


def run_graph_stream(source: StreamSource | str | os.PathLike[str], graph: Graph | Mapping[str, Any] | GraphProcessor,
                     targets: StreamTarget | Sequence[StreamTarget] = (), *, device: str = "cpu",
                     drop_frames: bool = True, max_frames: int | None = None,
                     metrics_csv: str | os.PathLike[str] | IO[str] | None = None,
                     on_result: Callable[[StreamResult], Any] | None = None, exception_mode: str = "stop",
                     width: int | None = None, height: int | None = None, realtime: bool = True,
                     host: str = "127.0.0.1", close_targets: bool = True) -> GraphStreamSummary:
    """Run ``graph`` on a live source and push every result to ``targets`` and ``on_result``.

    The callback form of `stream`, for actions: ``on_result(StreamResult)`` runs on the
    processing thread after the targets got the frame; targets receive the previews (``send``)
    and the JSON-able per-frame summary (``send_summary``: a `JsonLinesTarget` on a socket feeds
    a robot or drone controller). Ends when the source ends, after ``max_frames``, on Ctrl-C or
    when a target's reader goes away, and returns the summary (other errors propagate after
    cleanup). Learned representations are set up before the source is opened and torn down at
    the end. See `run_stream` for ``metrics_csv`` (here with one ``<name>_ms`` column per
    representation) and ``close_targets``.
    """
    processor = graph if isinstance(graph, GraphProcessor) else GraphProcessor(graph, device,
                                                                                exception_mode=exception_mode)
    src = _as_source(source, width, height, realtime, host)
    target_list: list[StreamTarget] = [targets] if isinstance(targets, StreamTarget) else list(targets)
    if on_result is not None:
        target_list.append(_ResultTarget(processor, on_result))
    try:
        processor.setup()
        summary = run_stream(src, processor, target_list, max_frames=max_frames, metrics_csv=metrics_csv,
                             drop_frames=drop_frames, close_targets=close_targets)
    except BaseException:
        # run_stream closes the source and targets itself; these cover a failing setup().
        src.close()
        if close_targets:
            for t in target_list:
                try:
                    t.close()
                except Exception:  # noqa: BLE001 - one failing close must not hide the error
                    logger.warning("closing stream target %r failed", t, exc_info=True)
        raise
    finally:
        processor.teardown()
    return GraphStreamSummary(**dataclasses.asdict(summary), representations=processor.stats(),
                              table=processor.stats_table())
