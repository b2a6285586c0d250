"""The public streaming API: `stream` (an iterator of results) and `run_graph_stream` (push), over the one loop."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from vrecore.errors import ConfigError
from vrecore.graph.build import Graph
from vrecore.graph.executor import EXCEPTION_MODES, RepresentationFailed

from .loop import StreamLoop
from .processor import GraphProcessor, PreviewImages, describe_output
from .result import FrameResult, GraphStreamSummary, StreamResult
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
    "describe_output",
    "run_graph_stream",
    "stream",
]

GraphStream = StreamLoop
"""What `stream` returns, under its vre 0.1 name: the loop itself (`vrecore.streaming.loop.StreamLoop`)."""


def _as_source(source: StreamSource | str | os.PathLike[str], width: int | None, height: int | None,
               realtime: bool, host: str) -> StreamSource:
    if isinstance(source, StreamSource):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise ConfigError(f"a stream source is a StreamSource or a spec string, got {type(source).__name__}")
    return open_stream_source(source, width=width, height=height, realtime=realtime, host=host)


def _as_processor(graph: Graph | Mapping[str, Any] | GraphProcessor, device: str,
                  exception_mode: str) -> GraphProcessor:
    return graph if isinstance(graph, GraphProcessor) else GraphProcessor(graph, device, exception_mode=exception_mode)


def stream(source: StreamSource | str | os.PathLike[str], graph: Graph | Mapping[str, Any] | GraphProcessor, *,
           device: str = "cpu", drop_frames: bool = True, max_frames: int | None = None, width: int | None = None,
           height: int | None = None, realtime: bool = True, host: str = "127.0.0.1",
           exception_mode: str = "stop") -> StreamLoop:
    """Run ``graph`` on a live source and iterate over the results, newest frame first.

    ``source`` is a `StreamSource` or a spec: ``"-"`` (raw rgb24 on stdin), ``"tcp://HOST:PORT"``
    (listen for a raw rgb24 sender; raw input needs ``width``/``height``), ``"/dev/video0"``, a
    video file (``realtime`` paces it to its frame rate) or ``SCHEME://...`` of a source a plugin
    registered. ``graph`` is a `Graph`, a config mapping for `build_graph` or a `GraphProcessor`.
    With ``drop_frames`` (default) each step gets the newest frame and frames that arrived
    meanwhile are dropped, so a slow graph or loop body never falls behind; ``drop_frames=False``
    processes every frame.

        for result in vrecore.stream("tcp://127.0.0.1:5000", graph, width=960, height=540):
            act(result.summary["landing"]["fraction"], result.outputs["depth"])

    Learned representations are set up before the first frame and torn down at the end.
    """
    processor = _as_processor(graph, device, exception_mode)
    return StreamLoop(_as_source(source, width, height, realtime, host), processor, drop_frames=drop_frames,
                      max_frames=max_frames)


def run_graph_stream(source: StreamSource | str | os.PathLike[str], graph: Graph | Mapping[str, Any] | GraphProcessor,
                     targets: StreamTarget | Sequence[StreamTarget] = (), *, device: str = "cpu",
                     drop_frames: bool = True, max_frames: int | None = None,
                     metrics_csv: str | os.PathLike[str] | IO[str] | None = None,
                     on_result: Callable[[StreamResult], Any] | None = None, exception_mode: str = "stop",
                     width: int | None = None, height: int | None = None, realtime: bool = True,
                     host: str = "127.0.0.1", close_targets: bool = True) -> GraphStreamSummary:
    """Run ``graph`` on a live source and push every result to ``targets`` and ``on_result``.

    The push form of `stream`, for actions: targets receive the previews (``send``) and the
    JSON-able per-frame summary (``send_summary``: a `JsonLinesTarget` on a socket feeds a robot
    or drone controller), then ``on_result(StreamResult)`` runs on the processing thread. Ends
    when the source ends, after ``max_frames``, on Ctrl-C or when a target's reader goes away,
    and returns the summary (other errors propagate after cleanup). Learned representations are
    set up before the source is opened and torn down at the end. ``metrics_csv`` (path or text
    file) gets one row of timings per frame, with one ``<name>_ms`` column per representation;
    targets are closed at the end unless ``close_targets=False``.
    """
    processor = _as_processor(graph, device, exception_mode)
    target_list: list[StreamTarget] = [targets] if isinstance(targets, StreamTarget) else list(targets)
    try:
        loop = StreamLoop(_as_source(source, width, height, realtime, host), processor, drop_frames=drop_frames,
                          max_frames=max_frames)
    except BaseException:
        if close_targets:
            for target in target_list:
                target.close()
        raise
    summary = loop.run(target_list, on_result=on_result, metrics_csv=metrics_csv,
                       metrics_columns=[n.name for n in processor.nodes], close_targets=close_targets)
    return GraphStreamSummary(**summary.as_dict(), representations=processor.stats(), table=processor.stats_table())
