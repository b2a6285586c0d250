"""Live frame sources for streaming mode: raw rgb24 pipes, TCP, video files and capture devices."""
from __future__ import annotations

import abc
import errno
import io
import logging
import os
import select
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np

from vrecore.errors import ConfigError, SourceError

__all__ = [
    "StreamSource",
    "RawPipeSource",
    "TcpSource",
    "VideoFileSource",
    "CaptureDeviceSource",
    "open_stream_source",
]

logger = logging.getLogger(__name__)

# Blocking calls wake up this often to notice interrupt(); short enough for a snappy Ctrl-C,
# long enough that idle polling costs nothing measurable.
_POLL_S = 0.2
# A 960x540 rgb24 frame is 1.5 MB; a large kernel buffer lets a sender run ahead while we process.
_SOCKET_BUFFER = 4 * 1024 * 1024


class StreamSource(abc.ABC):
    """A live source of RGB frames; `read()` returns a NEW (H, W, 3) uint8 array or None at the end.

    Contract for implementations: `open()` and `close()` are idempotent; `read()` never reuses a
    returned buffer (consumers keep frames without copying); `interrupt()` may be called from
    another thread and must make a blocked `read()` return None soon.
    """

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the underlying resource (idempotent)."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """Block until the next frame and return it, or return None at end of stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the underlying resource (idempotent)."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook, most sources need nothing
        """Ask a `read()` blocked in another thread to return None soon (thread-safe)."""

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames when known before the first frame, else None."""
        return None

    @property
    def fps(self) -> float | None:
        """Nominal frame rate when the source knows it, else None."""
        return None

    def __enter__(self) -> StreamSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_size(width: int | None, height: int | None, what: str) -> tuple[int, int]:
    if width is None or height is None:
        raise ConfigError(
            f"{what} carries raw rgb24 frames without a header: give the frame size "
            "(e.g. width=960 height=540)"
        )
    if int(width) <= 0 or int(height) <= 0:
        raise ConfigError(f"frame size {width}x{height} is invalid: width and height must be > 0")
    return int(width), int(height)


def _new_frame(width: int, height: int) -> tuple[np.ndarray, memoryview]:
    # np.empty: every byte is overwritten by the read, so zero-filling would be wasted work.
    frame = np.empty((height, width, 3), dtype=np.uint8)
    return frame, frame.reshape(-1).data


class RawPipeSource(StreamSource):
    """Raw rgb24 frames, back to back, from a file descriptor or binary file object.

    Given an int fd, `sys.stdin.buffer` (read as fd 0: do not read from it beforehand) or an
    unbuffered raw file, it reads the descriptor directly after a poll(), so `interrupt()`
    works even while the writer stalls and no Python-level lock is held during the wait (a
    daemon thread stuck inside a buffered stdin read aborts interpreter shutdown with "Fatal
    Python error: could not acquire lock"). Other file objects (`io.BytesIO`, buffered pipes)
    are read with `readinto`. A short final frame is logged as a warning and ends the stream.
    The file is closed on `close()` only if `close_file=True`.
    """

    def __init__(
        self,
        file: IO[bytes] | int,
        width: int,
        height: int,
        *,
        fps: float | None = None,
        close_file: bool = False,
    ) -> None:
        self._width, self._height = _check_size(width, height, "raw pipe input")
        self._file = file
        self._fd: int | None = file if isinstance(file, int) else None
        if self._fd is None and file is getattr(sys.stdin, "buffer", None):
            # The common case; reading fd 0 past the buffer assumes nobody read stdin before.
            self._fd = 0
        elif self._fd is None and isinstance(file, io.RawIOBase):
            # Unbuffered: no bytes can hide in a Python-side buffer, so fd reads are safe.
            try:
                self._fd = file.fileno()
            except (OSError, ValueError):
                self._fd = None
        self._fps = fps
        self._close_file = close_file
        self._frame_bytes = self._width * self._height * 3
        self._interrupted = threading.Event()
        self._ended = False
        self.short_final_frame_bytes: int | None = None
        """Bytes of the incomplete last frame when the stream ended mid-frame, else None."""

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._width, self._height

    @property
    def fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        pass

    def interrupt(self) -> None:
        # fd mode notices this within one poll; a buffered file object only between chunks,
        # and LatestFrame then leaves its daemon reader thread behind if the writer stalls.
        self._interrupted.set()

    def read(self) -> np.ndarray | None:
        if self._ended or self._interrupted.is_set():
            return None
        frame, view = _new_frame(self._width, self._height)
        got = self._read_fd(view) if self._fd is not None else self._read_file(view)
        if got == self._frame_bytes:
            return frame
        self._ended = True
        if got and not self._interrupted.is_set():
            self.short_final_frame_bytes = got
            logger.warning(
                "raw input ended in the middle of a frame (%d of %d bytes, %dx%d rgb24): "
                "last partial frame dropped; check that width and height match the sender",
                got, self._frame_bytes, self._width, self._height,
            )
        return None

    def _read_fd(self, view: memoryview) -> int:
        fd, want, got = self._fd, len(view), 0
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        while got < want:
            if self._interrupted.is_set():
                return got
            if not poller.poll(_POLL_S * 1000):
                continue
            try:
                n = os.readv(fd, [view[got:]])  # straight into the frame: no intermediate bytes
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF and self._interrupted.is_set():
                    return got
                raise
            if n == 0:
                return got
            got += n
        return got

    def _read_file(self, view: memoryview) -> int:
        file, want, got = self._file, len(view), 0
        assert not isinstance(file, int)
        readinto = getattr(file, "readinto", None)
        while got < want:
            if self._interrupted.is_set():
                return got
            if readinto is not None:
                n = readinto(view[got:])
                if n is None:  # non-blocking file with no data yet
                    time.sleep(0.001)
                    continue
            else:
                data = file.read(want - got)
                n = len(data)
                view[got:got + n] = data
            if n == 0:
                return got
            got += n
        return got

    def close(self) -> None:
        self._ended = True
        self._interrupted.set()
        if self._close_file:
            try:
                if isinstance(self._file, int):
                    os.close(self._file)
                else:
                    self._file.close()
            except OSError:
                pass


class TcpSource(StreamSource):
    """Raw rgb24 frames over TCP, either as a server (mode="listen") or a client (mode="client").

    Listen mode binds `host:port` (127.0.0.1 by default; port 0 picks a free port, see
    `address`) and serves one sender at a time. When the sender disconnects (a partial frame is
    logged and dropped) the stream ends if `on_disconnect="end"` (default), or the source waits
    for the next sender if `on_disconnect="wait"`. Client mode connects to `host:port` and a
    disconnect always ends the stream.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        mode: Literal["listen", "client"] = "listen",
        on_disconnect: Literal["end", "wait"] = "end",
        connect_timeout: float = 5.0,
        fps: float | None = None,
    ) -> None:
        self._width, self._height = _check_size(width, height, "TCP input")
        if mode not in ("listen", "client"):
            raise ConfigError(f"TCP source mode {mode!r} is unknown: use mode=listen or mode=client")
        if on_disconnect not in ("end", "wait"):
            raise ConfigError(
                f"on_disconnect={on_disconnect!r} is unknown: use on_disconnect=end or on_disconnect=wait"
            )
        if mode == "client" and not 0 < port < 65536:
            raise ConfigError(f"TCP client mode needs a port in 1..65535, got {port}")
        self._host, self._port = host, int(port)
        self._mode = mode
        self._on_disconnect = on_disconnect
        self._connect_timeout = connect_timeout
        self._fps = fps
        self._frame_bytes = self._width * self._height * 3
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()  # guards socket handles between read() and close()
        self._interrupted = threading.Event()
        self._ended = False
        self._opened = False
        self.clients_served = 0
        """How many senders have connected so far (listen mode)."""

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._width, self._height

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (listen mode, after open) or connected to (client mode)."""
        if self._server is not None:
            host, port = self._server.getsockname()[:2]
            return host, port
        return self._host, self._port

    def open(self) -> None:
        if self._opened:
            return
        if self._mode == "listen":
            srv = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Set before listen() so accepted sockets inherit it and the TCP window scales up.
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
            try:
                srv.bind((self._host, self._port))
                srv.listen(1)
            except OSError as exc:
                srv.close()
                raise SourceError(
                    f"cannot listen on tcp://{self._host}:{self._port} ({exc.strerror or exc}): "
                    "pick another port, or port 0 for a free one"
                ) from exc
            srv.settimeout(_POLL_S)
            self._server = srv
            logger.info("waiting for a raw rgb24 sender on tcp://%s:%d", *self.address)
        else:
            try:
                conn = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
            except OSError as exc:
                raise SourceError(
                    f"cannot connect to tcp://{self._host}:{self._port} ({exc.strerror or exc}): "
                    "start the sender first, or drop ?mode=client to listen for it instead"
                ) from exc
            self._setup_conn(conn)
            self._conn = conn
        self._opened = True

    def _setup_conn(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        conn.settimeout(_POLL_S)

    def interrupt(self) -> None:
        self._interrupted.set()

    def read(self) -> np.ndarray | None:
        if not self._opened:
            self.open()
        while not (self._ended or self._interrupted.is_set()):
            conn = self._conn
            if conn is None:
                if self._mode == "client" or self._server is None:
                    break
                conn = self._accept()
                if conn is None:
                    break
            frame, view = _new_frame(self._width, self._height)
            got = self._recv_into(conn, view)
            if got == self._frame_bytes:
                return frame
            if self._interrupted.is_set():
                break
            self._drop_conn()
            if got:
                logger.warning(
                    "TCP sender disconnected in the middle of a frame (%d of %d bytes): partial frame dropped",
                    got, self._frame_bytes,
                )
            else:
                logger.info("TCP sender disconnected")
            if self._mode == "client" or self._on_disconnect == "end":
                self._ended = True
        return None

    def _accept(self) -> socket.socket | None:
        while not self._interrupted.is_set():
            server = self._server
            if server is None:
                return None
            try:
                conn, peer = server.accept()
            except TimeoutError:  # socket timeout: time to check interrupt()
                continue
            except OSError:  # closed under us by close()
                return None
            self._setup_conn(conn)
            with self._lock:
                self._conn = conn
            self.clients_served += 1
            logger.info("TCP sender connected from %s:%d", *peer[:2])
            return conn
        return None

    def _recv_into(self, conn: socket.socket, view: memoryview) -> int:
        want, got = len(view), 0
        while got < want:
            try:
                n = conn.recv_into(view[got:])
            except TimeoutError:  # socket timeout: time to check interrupt()
                if self._interrupted.is_set():
                    return got
                continue
            except OSError:  # reset by peer, or closed by close()
                return got
            if n == 0:
                return got
            got += n
        return got

    def _drop_conn(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self._interrupted.set()
        self._ended = True
        self._drop_conn()
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()


class _AvSource(StreamSource):
    """Shared PyAV decoding loop; PyAV objects are touched by one thread at a time."""

    def __init__(self, width: int | None, height: int | None) -> None:
        if (width is None) != (height is None):
            raise ConfigError("give both width and height to rescale frames, or neither")
        self._out_w, self._out_h = width, height
        self._container: Any = None
        self._stream: Any = None
        self._frames: Any = None
        self._interrupted = threading.Event()
        # read() holds this; close() from another thread defers to it rather than freeing
        # FFmpeg state mid-decode (which crashes the process instead of raising).
        self._io_lock = threading.Lock()
        self._close_pending = False
        self._ended = False

    def _open_container(self) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        if self._container is not None:
            return
        self._container = self._open_container()
        videos = self._container.streams.video
        if not videos:
            self._container.close()
            self._container = None
            raise SourceError(f"{self._describe()} has no video stream: give a file or device with video")
        self._stream = videos[0]
        # FFmpeg frame threading decodes ahead on other cores; it is the main cost of this source.
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)

    def _describe(self) -> str:
        raise NotImplementedError

    @property
    def frame_size(self) -> tuple[int, int] | None:
        if self._out_w is not None and self._out_h is not None:
            return self._out_w, self._out_h
        if self._stream is None:
            return None
        ctx = self._stream.codec_context
        return (ctx.width, ctx.height) if ctx.width and ctx.height else None

    @property
    def fps(self) -> float | None:
        if self._stream is None:
            return None
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    def interrupt(self) -> None:
        self._interrupted.set()

    def _next_av_frame(self) -> Any:
        import av

        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            raise SourceError(f"cannot decode {self._describe()}: {exc}") from exc

    def _to_rgb(self, av_frame: Any) -> np.ndarray:
        if self._out_w is not None:
            return av_frame.to_ndarray(format="rgb24", width=self._out_w, height=self._out_h)
        return av_frame.to_ndarray(format="rgb24")

    def read(self) -> np.ndarray | None:
        with self._io_lock:
            try:
                if self._ended or self._interrupted.is_set():
                    return None
                if self._container is None:
                    self.open()
                frame = self._read_locked()
                if frame is None:
                    self._ended = True
                return frame
            finally:
                if self._close_pending:
                    self._close_locked()

    def _read_locked(self) -> np.ndarray | None:
        av_frame = self._next_av_frame()
        return None if av_frame is None else self._to_rgb(av_frame)

    def close(self) -> None:
        self._interrupted.set()
        # A decode step is short; waiting a little lets us free FFmpeg state ourselves.
        if self._io_lock.acquire(timeout=1.0):
            try:
                self._close_locked()
            finally:
                self._io_lock.release()
        else:
            self._close_pending = True

    def _close_locked(self) -> None:
        self._close_pending = False
        self._ended = True
        container, self._container = self._container, None
        self._frames = None
        if container is not None:
            container.close()


class VideoFileSource(_AvSource):
    """Frames of a video file decoded by PyAV, optionally paced to the file's own frame rate.

    With `realtime=True` each frame is released at its presentation time (wall clock), so the
    file behaves like a camera; frames are never skipped here (dropping happens downstream,
    in LatestFrame). If decoding falls behind by more than 0.25 s the clock is re-anchored
    instead of bursting to catch up. `realtime=False` decodes as fast as possible.
    `width`/`height` rescale the frames; `loop=True` restarts at the end.
    """

    _RESYNC_S = 0.25

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        width: int | None = None,
        height: int | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__(width, height)
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self._clock_origin: float | None = None  # wall clock minus media time
        self._last_media_t = 0.0
        self._period = 0.0

    def _describe(self) -> str:
        return f"video {str(self.path)!r}"

    def _open_container(self) -> Any:
        import av

        if not self.path.is_file():
            raise SourceError(f"video file {str(self.path)!r} not found: check the path")
        try:
            return av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {self._describe()}: {exc}: is it a video file?") from exc

    def _read_locked(self) -> np.ndarray | None:
        av_frame = self._next_av_frame()
        if av_frame is None and self.loop and self._container is not None:
            self._container.seek(0)
            self._frames = self._container.decode(self._stream)
            # Continue the media clock across the wrap so pacing stays smooth.
            if self._clock_origin is not None:
                self._clock_origin += self._last_media_t + self._period
            av_frame = self._next_av_frame()
        if av_frame is None:
            return None
        frame = self._to_rgb(av_frame)
        if self.realtime:
            self._pace(av_frame)
        return frame

    def _pace(self, av_frame: Any) -> None:
        if not self._period:
            fps = self.fps
            self._period = 1.0 / fps if fps else 1.0 / 30.0
        t = av_frame.time
        media_t = float(t) if t is not None else self._last_media_t + self._period
        self._last_media_t = media_t
        now = time.perf_counter()
        if self._clock_origin is None:
            self._clock_origin = now - media_t
            return
        delay = self._clock_origin + media_t - now
        if delay > 0:
            self._interrupted.wait(delay)
        elif delay < -self._RESYNC_S:
            self._clock_origin = now - media_t


class CaptureDeviceSource(_AvSource):
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


_SOURCE_FORMS = "'-' (raw rgb24 on stdin), tcp://HOST:PORT, tcp://HOST:PORT?mode=client, /dev/videoN or a video file"


def _parse_hostport(spec: str, default_host: str, *, need_port: bool = True) -> tuple[str, int, dict[str, list[str]]]:
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{spec!r}: invalid port ({exc}): write SCHEME://HOST:PORT with PORT in 0..65535") from exc
    if port is None and need_port:
        raise ConfigError(f"{spec!r} has no port: write it as {parts.scheme}://HOST:PORT")
    if parts.path not in ("", "/"):
        raise ConfigError(f"{spec!r}: unexpected path {parts.path!r}: write {parts.scheme}://HOST:PORT")
    host = parts.hostname or default_host
    return host, port if port is not None else 0, parse_qs(parts.query, keep_blank_values=True)


def _one(query: dict[str, list[str]], key: str, spec: str) -> str | None:
    values = query.pop(key, None)
    if not values:
        return None
    if len(values) > 1:
        raise ConfigError(f"{spec!r}: {key} is given {len(values)} times: give it once")
    return values[0]


def open_stream_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
    host: str = "127.0.0.1",
    realtime: bool = True,
    fps: float | None = None,
    loop: bool = False,
) -> StreamSource:
    """Build (not open) the source named by `spec`: '-', tcp://..., /dev/videoN or a video path.

    In listen mode the bind address is the spec's host, or `host` when the spec omits it
    (`tcp://:5000`). Query options: `mode=listen|client`, `on_disconnect=end|wait`. `realtime`
    and `loop` apply to video files (paced to their frame rate; restarted at the end).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"empty stream source: give {_SOURCE_FORMS}")
    if (width is None) != (height is None):
        raise ConfigError("give both width and height, or neither")
    if spec == "-":
        w, h = _check_size(width, height, "raw stdin input '-'")
        # fd 0 rather than sys.stdin.buffer: see RawPipeSource on interrupts and shutdown.
        return RawPipeSource(0, w, h, fps=fps)
    if spec.startswith("tcp://"):
        h_, port, query = _parse_hostport(spec, host)
        mode = _one(query, "mode", spec) or "listen"
        on_disconnect = _one(query, "on_disconnect", spec) or "end"
        if query:
            raise ConfigError(f"{spec!r}: unknown option(s) {', '.join(sorted(query))}: use mode= and on_disconnect=")
        if mode not in ("listen", "client"):
            raise ConfigError(f"{spec!r}: mode={mode} is unknown: use mode=listen or mode=client")
        if on_disconnect not in ("end", "wait"):
            raise ConfigError(f"{spec!r}: on_disconnect={on_disconnect} is unknown: use end or wait")
        w, h = _check_size(width, height, f"TCP input {spec}")
        return TcpSource(w, h, port=port, host=h_, mode=mode, on_disconnect=on_disconnect, fps=fps)  # type: ignore[arg-type]
    if spec.startswith("/dev/video"):
        return CaptureDeviceSource(spec, width=width, height=height, fps=fps)
    if "://" in spec:
        raise ConfigError(f"stream source {spec!r} has an unsupported scheme: give {_SOURCE_FORMS}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"stream source {spec!r} is not an existing file: give {_SOURCE_FORMS}")
    return VideoFileSource(path, realtime=realtime, width=width, height=height, loop=loop)
