"""Streaming mode: live sources, newest-frame mailbox, targets, the processing loop and the graph engine."""
from __future__ import annotations

from .graph import (
    FrameResult,
    GraphProcessor,
    GraphStream,
    GraphStreamSummary,
    PreviewImages,
    RepresentationFailed,
    StreamResult,
    run_graph_stream,
    stream,
)
from .latest import FrameEntry, LatestFrame
from .runner import ProcessFn, StreamSummary, iter_stream, run_stream
from .sources import (
    CaptureDeviceSource,
    RawPipeSource,
    StreamSource,
    TcpSource,
    VideoFileSource,
    open_stream_source,
)
from .targets import (
    CallbackTarget,
    JsonLinesTarget,
    RawStdoutTarget,
    StreamTarget,
    TargetClosed,
    TcpTarget,
    WebViewerTarget,
    mosaic,
    open_stream_target,
)

__all__ = [
    "CallbackTarget",
    "CaptureDeviceSource",
    "FrameEntry",
    "FrameResult",
    "GraphProcessor",
    "GraphStream",
    "GraphStreamSummary",
    "JsonLinesTarget",
    "LatestFrame",
    "PreviewImages",
    "ProcessFn",
    "RawPipeSource",
    "RawStdoutTarget",
    "RepresentationFailed",
    "StreamResult",
    "StreamSource",
    "StreamSummary",
    "StreamTarget",
    "TargetClosed",
    "TcpSource",
    "TcpTarget",
    "VideoFileSource",
    "WebViewerTarget",
    "iter_stream",
    "mosaic",
    "open_stream_source",
    "open_stream_target",
    "run_graph_stream",
    "run_stream",
    "stream",
]
