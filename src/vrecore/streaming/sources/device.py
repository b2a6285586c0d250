"""Capture devices (webcams, /dev/videoN) read through PyAV/FFmpeg."""
from __future__ import annotations

import os
from typing import Any

from vrecore.errors import ConfigError, SourceError

from .video import AvSource

__all__ = ["CaptureDeviceSource", "open_device_source"]


class CaptureDeviceSource(AvSource):
    """A capture device (webcam) read through PyAV/FFmpeg, v4l2 on Linux.

    `width`/`height`/`fps` are requested from the device (it may pick the nearest mode);
    `input_format` selects the camera's pixel format, e.g. "mjpeg" for high resolutions.
    """

    def __init__(
        self,
        device: str = "/dev/video0",
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        input_format: str | None = None,
        format: str = "v4l2",
    ) -> None:
        super().__init__(None, None)
        if (width is None) != (height is None):
            raise ConfigError("give both width and height for the capture size, or neither")
        self.device = device
        self._req_w, self._req_h, self._req_fps = width, height, fps
        self._input_format = input_format
        self._format = format

    def _describe(self) -> str:
        return f"capture device {self.device}"

    def _open_container(self) -> Any:
        if not os.path.exists(self.device):
            raise SourceError(
                f"capture device {self.device} not found: connect a camera (see `ls /dev/video*`) "
                "or stream from a video file, '-' or tcp:// instead"
            )
        import av

        options: dict[str, str] = {}
        if self._req_w is not None:
            options["video_size"] = f"{self._req_w}x{self._req_h}"
        if self._req_fps is not None:
            options["framerate"] = f"{self._req_fps:g}"
        if self._input_format is not None:
            options["input_format"] = self._input_format
        try:
            return av.open(self.device, format=self._format, options=options)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(
                f"cannot open {self._describe()} ({exc}): check it is a camera, that you may read it "
                "(video group) and that no other program holds it; try another size/fps"
            ) from exc

    @property
    def frame_size(self) -> tuple[int, int] | None:
        size = super().frame_size
        if size is None and self._req_w is not None and self._req_h is not None:
            return self._req_w, self._req_h
        return size

    @property
    def fps(self) -> float | None:
        return super().fps or self._req_fps



def open_device_source(spec: str, *, width: int | None = None, height: int | None = None, fps: float | None = None,
                       **_: Any) -> CaptureDeviceSource:
    """`/dev/videoN`: a camera, asked for ``width`` x ``height`` at ``fps`` when given."""
    return CaptureDeviceSource(spec, width=width, height=height, fps=fps)
