"""Streaming mode: live sources -> newest-frame mailbox -> graph processor -> targets, in one loop."""
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
from .loop import FunctionProcessor, ProcessFn, StreamLoop, run_stream
from .result import StreamSummary
from .session import StreamSession, open_stream_session
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
    "FunctionProcessor",
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
    "StreamLoop",
    "StreamResult",
    "StreamSession",
    "StreamSource",
    "StreamSummary",
    "StreamTarget",
    "TargetClosed",
    "TcpSource",
    "TcpTarget",
    "VideoFileSource",
    "WebViewerTarget",
    "mosaic",
    "open_stream_session",
    "open_stream_source",
    "open_stream_target",
    "run_graph_stream",
    "run_stream",
    "stream",
]
