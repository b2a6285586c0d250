"""Live frame sources: one module per kind (pipe, tcp, video, device), found by spec through the registry."""
from __future__ import annotations

from .base import StreamSource
from .device import CaptureDeviceSource
from .pipe import RawPipeSource
from .spec import open_stream_source
from .tcp import TcpSource
from .video import VideoFileSource

__all__ = [
    "CaptureDeviceSource",
    "RawPipeSource",
    "StreamSource",
    "TcpSource",
    "VideoFileSource",
    "open_stream_source",
]
