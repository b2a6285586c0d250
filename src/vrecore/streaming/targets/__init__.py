"""Where streaming results go: raw pipes, TCP clients, a live web viewer, JSON lines, callbacks.

One module per kind of target: `raw` (a pipe), `tcp` (raw frames to TCP clients), `jsonl`
(summaries as JSON lines), `viewer` (+ `viewer_http`, `viewer.html`: the browser view),
`callback`; `spec` turns an output spec into a target. The servers share `netloop` (one
thread, a client cap, timeouts, bounded memory) and `broadcast` (fan-out, newest first).
"""
from __future__ import annotations

from .base import INPUT_NAME, StreamTarget, TargetClosed
from .callback import CallbackTarget
from .frames import mosaic
from .jsonl import JsonLinesTarget
from .raw import RawStdoutTarget
from .spec import open_stream_target
from .tcp import TcpTarget
from .viewer import WebViewerTarget

__all__ = [
    "INPUT_NAME",
    "CallbackTarget",
    "JsonLinesTarget",
    "RawStdoutTarget",
    "StreamTarget",
    "TargetClosed",
    "TcpTarget",
    "WebViewerTarget",
    "mosaic",
    "open_stream_target",
]
