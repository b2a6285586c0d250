"""Streaming mode I/O: live sources, newest-frame mailbox, targets and the processing loop."""
from __future__ import annotations

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
    "JsonLinesTarget",
    "LatestFrame",
    "ProcessFn",
    "RawPipeSource",
    "RawStdoutTarget",
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
    "run_stream",
]
