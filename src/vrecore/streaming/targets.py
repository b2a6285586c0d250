"""Where streaming results go: raw pipes, TCP clients, a live web viewer, JSON lines, callbacks."""
from __future__ import annotations

import abc
import collections
import html
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, BinaryIO, ClassVar
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from vrecore.errors import ConfigError, VreError

__all__ = [
    "StreamTarget",
    "TargetClosed",
    "RawStdoutTarget",
    "TcpTarget",
    "WebViewerTarget",
    "JsonLinesTarget",
    "CallbackTarget",
    "mosaic",
    "open_stream_target",
]

logger = logging.getLogger(__name__)

_POLL_S = 0.2
INPUT_NAME = "input"
"""Stream name under which targets show the input frame next to the representations."""


class TargetClosed(VreError):
    """The consumer of a target went away for good (e.g. the stdout pipe closed): stop cleanly."""

    exit_code = 0


class StreamTarget(abc.ABC):
    """Receives each processed frame. `send()` runs on the processing thread, so it must be fast
    and must never wait on a slow consumer: a target drops for that consumer instead.

    Arrays passed to `send()` are read-only for the target and may be kept (no copy); the
    producer must hand over new arrays each frame rather than mutate old ones.
    """

    wants_summary: ClassVar[bool] = False
    """True if `send_summary()` does something (lets the runner skip building summaries)."""

    @abc.abstractmethod
    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        """Deliver frame `seq`: the input and {representation name: (H, W, 3) uint8 RGB}."""

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Deliver the JSON-able per-frame summary of frame `seq` (default: ignored)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets/threads; idempotent."""

    def __enter__(self) -> StreamTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- image helpers -------------------------------------------------------------------------


def _as_rgb8(name: str, img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        raise ConfigError(f"representation {name!r} preview is {img.dtype}, not uint8: convert it to a uint8 RGB image")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"representation {name!r} preview has shape {img.shape}: expected (H, W, 3) RGB")
    return img


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if width < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def mosaic(images: Sequence[np.ndarray], height: int | None = None) -> np.ndarray:
    """Place RGB images side by side, each scaled to `height` (default: the first one's)."""
    if not images:
        raise ValueError("mosaic() needs at least one image")
    height = images[0].shape[0] if height is None else height
    parts = []
    for img in images:
        if img.shape[0] != height:
            width = max(1, round(img.shape[1] * height / img.shape[0]))
            img = _resize(img, width, height)
        parts.append(img)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


class _FramePicker:
    """Turns (input, outputs) into the one image a raw target writes, at a fixed size."""

    def __init__(self, representation: str | None, use_mosaic: bool, include_input: bool) -> None:
        self.representation = representation
        self.use_mosaic = use_mosaic
        self.include_input = include_input
        self.size: tuple[int, int] | None = None  # (width, height), fixed by the first frame

    def pick(self, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.use_mosaic:
            images = [_as_rgb8(INPUT_NAME, input_frame)] if self.include_input or not outputs else []
            images += [_as_rgb8(n, im) for n, im in outputs.items()]
            img = mosaic(images, None if self.size is None else self.size[1])
        else:
            name = self.representation
            if name is None:
                if len(outputs) > 1:
                    raise ConfigError(
                        f"several representations ({', '.join(outputs)}) for one raw stream: "
                        "choose one (representation=NAME) or ask for a mosaic"
                    )
                name = next(iter(outputs), INPUT_NAME)
            if name in outputs:
                img = outputs[name]
            elif name == INPUT_NAME:
                img = input_frame
            else:
                raise ConfigError(
                    f"representation {name!r} is not produced: choose one of {', '.join([INPUT_NAME, *outputs])}"
                )
            img = _as_rgb8(name, img)
        h, w = img.shape[:2]
        if self.size is None:
            self.size = (w, h)
            logger.info("raw rgb24 output frames are %dx%d", w, h)
        elif (w, h) != self.size:
            # Raw streams have no header, so every frame must keep the first frame's size.
            img = _resize(img, *self.size)
        # Writes need one contiguous buffer; this copies only when the producer gave a view.
        return np.ascontiguousarray(img)


def _flat(img: np.ndarray) -> memoryview:
    return img.reshape(-1).data  # a flat byte view of the (contiguous) image, no copy


# -- raw pipe ------------------------------------------------------------------------------


class RawStdoutTarget(StreamTarget):
    """Writes raw rgb24 frames of one representation (or a horizontal mosaic) to a binary file.

    Every frame has the size of the first one. A closed pipe (reader gone) raises TargetClosed,
    which run_stream treats as a clean end.
    """

    def __init__(
        self,
        file: BinaryIO | None = None,
        *,
        representation: str | None = None,
        mosaic: bool = False,
        include_input: bool = False,
        flush: bool = True,
    ) -> None:
        self._file = sys.stdout.buffer if file is None else file
        self._picker = _FramePicker(representation, mosaic, include_input)
        self._flush = flush
        self._closed = False
        self.frames_written = 0

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frames written, known after the first one."""
        return self._picker.size

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        if self._closed:
            return
        img = self._picker.pick(input_frame, outputs)
        try:
            self._file.write(_flat(img))
            if self._flush:
                self._file.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._closed = True
            raise TargetClosed("raw output pipe was closed by its reader") from exc
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._file.flush()
        except (OSError, ValueError):
            pass


# -- TCP broadcast -------------------------------------------------------------------------


class _Client:
    __slots__ = ("sock", "peer", "queue", "cond", "dropped", "sent", "alive", "busy")

    def __init__(self, sock: socket.socket, peer: str, slots: int) -> None:
        self.sock = sock
        self.peer = peer
        self.queue: collections.deque[Any] = collections.deque(maxlen=slots)
        self.cond = threading.Condition(threading.Lock())
        self.dropped = 0
        self.sent = 0
        self.alive = True
        self.busy = False  # a payload is being sent


class _Broadcaster:
    """TCP server that fans payloads out to clients, each with its own bounded queue and
    sender thread, so a slow or stuck client only loses its own oldest payloads."""

    def __init__(self, host: str, port: int, *, slots: int, what: str, max_clients: int = 16) -> None:
        self._what = what
        self._slots = slots
        self._max_clients = max_clients
        srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind((host, port))
            srv.listen(8)
        except OSError as exc:
            srv.close()
            raise ConfigError(
                f"cannot listen on {host}:{port} for {what} ({exc.strerror or exc}): "
                "pick another port, or port 0 for a free one"
            ) from exc
        srv.settimeout(_POLL_S)
        self._server = srv
        self.address: tuple[str, int] = srv.getsockname()[:2]
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._closing = False
        self.dropped_gone = 0  # drops counted on clients that have since disconnected
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"vre-{what}-accept", daemon=True)
        self._accept_thread.start()
        logger.info("serving %s on tcp://%s:%d", what, *self.address)

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self.dropped_gone + sum(c.dropped for c in self._clients)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                sock, peer = self._server.accept()
            except TimeoutError:  # socket timeout: time to check for close()
                continue
            except OSError:
                return
            peer_s = f"{peer[0]}:{peer[1]}"
            with self._lock:
                full = len(self._clients) >= self._max_clients
            if full:
                logger.warning("%s: refusing %s, already %d clients", self._what, peer_s, self._max_clients)
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock, peer_s, self._slots)
            with self._lock:
                self._clients.append(client)
            threading.Thread(
                target=self._send_loop, args=(client,), name=f"vre-{self._what}-{peer_s}", daemon=True
            ).start()
            logger.info("%s: client %s connected", self._what, peer_s)

    def publish(self, payload: Any) -> None:
        """Queue `payload` (bytes-like) for every client; never blocks on a client."""
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            with c.cond:
                if len(c.queue) == self._slots:
                    c.dropped += 1  # deque(maxlen) discards the oldest on append
                c.queue.append(payload)
                c.cond.notify()

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        # The first send to a closed peer still "succeeds"; an EOF on the read side is the
        # reliable early sign. Whatever a client sends us is discarded.
        try:
            return sock.recv(65536, socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False

    def _send_loop(self, c: _Client) -> None:
        try:
            while True:
                with c.cond:
                    while not c.queue and c.alive and not self._closing:
                        if not c.cond.wait(_POLL_S) and self._peer_closed(c.sock):
                            raise ConnectionResetError("closed by peer")
                    if not c.alive or self._closing:
                        return
                    payload = c.queue.popleft()
                    c.busy = True
                if self._peer_closed(c.sock):
                    raise ConnectionResetError("closed by peer")
                c.sock.sendall(payload)
                c.busy = False
                c.sent += 1
        except OSError as exc:
            logger.info("%s: client %s gone (%s)", self._what, c.peer, exc)
        finally:
            c.alive = False
            with self._lock:
                if c in self._clients:
                    self._clients.remove(c)
                    self.dropped_gone += c.dropped
            try:
                c.sock.close()
            except OSError:
                pass

    def close(self, drain_s: float = 1.0) -> None:
        """Stop serving. Payloads already queued (e.g. the last frame's line) get up to `drain_s`
        seconds to reach clients that are still reading; a stuck client is cut off after that."""
        if self._closing:
            return
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with self._lock:
                clients = list(self._clients)
            if not any((c.queue or c.busy) and c.alive for c in clients):
                break
            time.sleep(0.005)
        self._closing = True
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            with c.cond:
                c.alive = False
                c.cond.notify()
            try:
                # Unblocks a sendall() stuck on a client that stopped reading.
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(1.0)


class TcpTarget(StreamTarget):
    """Serves raw rgb24 frames (mosaic of all representations by default) to TCP clients.

    Listens on `host:port` (127.0.0.1 by default; port 0 picks a free one, see `address`).
    Each client gets whole frames from the moment it connects; a client that reads slower than
    we produce gets only the newest frame (older ones are dropped for it alone).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        representation: str | None = None,
        mosaic: bool | None = None,
        include_input: bool = False,
        max_clients: int = 16,
    ) -> None:
        use_mosaic = representation is None if mosaic is None else mosaic
        self._picker = _FramePicker(representation, use_mosaic, include_input)
        self._server = _Broadcaster(host, port, slots=1, what="raw rgb24 frames", max_clients=max_clients)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    @property
    def port(self) -> int:
        return self._server.address[1]

    @property
    def client_count(self) -> int:
        return self._server.client_count

    @property
    def dropped(self) -> int:
        """Frames dropped for clients that could not keep up, summed over clients."""
        return self._server.dropped

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return self._picker.size

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        if self._server.client_count == 0:
            return  # nobody listening: skip building the mosaic at all
        self._server.publish(_flat(self._picker.pick(input_frame, outputs)))

    def close(self) -> None:
        self._server.close()


# -- JSON lines ----------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 4096 else f"<array {obj.shape} {obj.dtype}>"
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, separators=(",", ":"), allow_nan=False)


class JsonLinesTarget(StreamTarget):
    """Writes each frame's summary as one JSON line, to a file object or to TCP clients.

    Give either `file` (text or binary) or `port` (server on `host`, 127.0.0.1 by default).
    Lines come from `send_summary()`, which run_stream calls for every processed frame.
    A slow TCP client keeps the newest 256 lines and loses older ones.
    """

    wants_summary = True

    def __init__(
        self,
        file: IO[Any] | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        backlog_lines: int = 256,
    ) -> None:
        if (file is None) == (port is None):
            raise ConfigError("JsonLinesTarget needs exactly one of file= or port=")
        self._file = file
        self._binary = file is not None and not isinstance(file, io.TextIOBase)
        self._server = (
            _Broadcaster(host, port, slots=backlog_lines, what="JSON lines") if port is not None else None
        )
        self._closed = False
        self.lines_written = 0

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self._server is None else self._server.address

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.address[1]

    @property
    def client_count(self) -> int:
        return 0 if self._server is None else self._server.client_count

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        pass

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        if self._closed:
            return
        line = _dumps(summary) + "\n"
        if self._server is not None:
            if self._server.client_count:
                self._server.publish(line.encode())
        else:
            assert self._file is not None
            try:
                self._file.write(line.encode() if self._binary else line)
                self._file.flush()
            except (BrokenPipeError, ConnectionResetError) as exc:
                self._closed = True
                raise TargetClosed("JSON lines output was closed by its reader") from exc
        self.lines_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        elif self._file is not None:
            try:
                self._file.flush()
            except (OSError, ValueError):
                pass


# -- callback ------------------------------------------------------------------------------


class CallbackTarget(StreamTarget):
    """Calls `fn(seq, input_frame, outputs)` for each frame (and `on_summary(seq, summary)`)."""

    def __init__(
        self,
        fn: Callable[[int, np.ndarray, Mapping[str, np.ndarray]], None],
        *,
        on_summary: Callable[[int, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self._fn = fn
        self._on_summary = on_summary
        self.wants_summary = on_summary is not None  # type: ignore[misc]

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        self._fn(seq, input_frame, outputs)

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        if self._on_summary is not None:
            self._on_summary(seq, summary)

    def close(self) -> None:
        pass


# -- web viewer ----------------------------------------------------------------------------

# Browsers open at most 6 HTTP/1.x connections per host and every MJPEG <img> holds one for
# good; the page shows this many streams as MJPEG and refreshes the rest as single JPEGs, so
# that /stats.json polling always finds a free connection.
_MAX_MJPEG = 5
_BOUNDARY = "vreframe"

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:12px}}
#grid{{display:flex;flex-wrap:wrap;gap:10px}}
figure{{margin:0}} figure img{{max-width:{max_w}px;max-height:70vh;display:block;background:#000}}
figcaption{{font-size:13px;padding:2px 0}} #stats{{font:14px monospace;margin:8px 0}}
</style></head>
<body><h3 style="margin:4px 0">{title}</h3>
<div id="stats">waiting for frames...</div>
<div id="grid" data-streams="{streams_attr}">{figures}</div>
<script>
const MAXM={max_mjpeg};const grid=document.getElementById('grid');const st=document.getElementById('stats');
let names=JSON.parse(grid.dataset.streams||'[]');
function fig(n,i){{const u=encodeURIComponent(n);const im=document.createElement('img');im.alt=n;im.id='img-'+n;
 if(i<MAXM){{im.src='/stream/'+u+'.mjpg';}}else{{const next=()=>{{im.src='/frame/'+u+'.jpg?t='+Date.now();}};
  im.onload=()=>setTimeout(next,50);im.onerror=()=>setTimeout(next,500);next();}}
 const f=document.createElement('figure');const c=document.createElement('figcaption');c.textContent=n;
 f.append(im,c);return f;}}
function build(){{grid.replaceChildren(...names.map(fig));}}
if(grid.children.length===0||names.length>MAXM)build();
async function poll(){{try{{const s=await (await fetch('/stats.json',{{cache:'no-store'}})).json();
 const lat=s.latency_ms==null?'-':s.latency_ms.toFixed(1)+' ms';
 st.textContent=s.fps.toFixed(1)+' frames/s | latency '+lat+' | frame '+s.seq+' | dropped '+s.dropped
  +(s.closed?' | stream ended':'');
 if(s.streams.join('\\n')!==names.join('\\n')){{names=s.streams;build();}}}}catch(e){{st.textContent='disconnected';}}}}
setInterval(poll,500);poll();
</script></body></html>
"""


class _ViewerServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck MJPEG client must not block shutdown
    viewer: WebViewerTarget


class _ViewerHandler(BaseHTTPRequestHandler):
    server: _ViewerServer
    server_version = "vre-viewer"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("web viewer: " + format, *args)

    def do_GET(self) -> None:
        viewer = self.server.viewer
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._reply(200, "text/html; charset=utf-8", viewer._page().encode())
            elif path == "/stats.json":
                self._reply(200, "application/json", _dumps(viewer.stats()).encode())
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                self._mjpeg(unquote(path[len("/stream/"):-len(".mjpg")]))
            elif path.startswith("/frame/") and path.endswith(".jpg"):
                got = viewer._jpeg_for(unquote(path[len("/frame/"):-len(".jpg")]), -1, wait=0.0)
                if got is None:
                    self._reply(404, "text/plain", b"no frame yet\n")
                else:
                    self._reply(200, "image/jpeg", got[1])
                    viewer._part_sent(unquote(path[len("/frame/"):-len(".jpg")]))
            else:
                self._reply(404, "text/plain", b"not found\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser navigated away

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _mjpeg(self, name: str) -> None:
        viewer = self.server.viewer
        if name not in viewer.stream_names():
            self._reply(HTTPStatus.NOT_FOUND, "text/plain", f"no stream {name!r}\n".encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        last = -1
        viewer._client_delta(+1)
        try:
            while True:
                got = viewer._jpeg_for(name, last, wait=_POLL_S)
                if got is None:
                    if viewer.closed:
                        return
                    continue
                seq, jpeg = got
                head = (
                    f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                    f"X-Frame-Seq: {seq}\r\n\r\n"
                ).encode()
                # One write per part: separate small writes would meet Nagle + delayed ACK.
                self.wfile.write(b"".join((head, jpeg, b"\r\n")))
                viewer._part_sent(name)
                last = seq
                viewer._throttle()
        finally:
            viewer._client_delta(-1)


class WebViewerTarget(StreamTarget):
    """A small HTTP server showing the live input and every representation as MJPEG streams.

    `/` is the page, `/stream/<name>.mjpg` a multipart/x-mixed-replace stream of the newest
    frame of `<name>` ("input" or a representation), `/frame/<name>.jpg` a single JPEG and
    `/stats.json` frames/s, latency and counters. JPEG encoding happens on the HTTP threads,
    only while someone watches, at most once per frame and stream: `send()` just swaps
    references. Binds 127.0.0.1 by default; port 0 picks a free port (see `url`).
    """

    wants_summary = True

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        include_input: bool = True,
        jpeg_quality: int = 80,
        max_fps: float | None = None,
        title: str = "vre live",
        image_width: int = 640,
    ) -> None:
        self.include_input = include_input
        self.jpeg_quality = int(jpeg_quality)
        self._min_period = 1.0 / max_fps if max_fps else 0.0
        self.title = title
        self._image_width = image_width
        self._cond = threading.Condition(threading.Lock())
        self._latest: dict[str, tuple[int, np.ndarray]] = {}
        self._jpeg_cache: dict[str, tuple[int, bytes]] = {}
        self._send_times: collections.deque[float] = collections.deque(maxlen=120)
        self._seq = -1
        self._frames = 0
        self._summary: Mapping[str, Any] | None = None
        self._clients = 0
        self._parts: dict[str, int] = {}
        self.closed = False
        try:
            self._httpd = _ViewerServer((host, port), _ViewerHandler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the web viewer on {host}:{port} ({exc.strerror or exc}): "
                "pick another port (web://127.0.0.1:8081), or port 0 for a free one"
            ) from exc
        self._httpd.viewer = self
        self.address: tuple[str, int] = self._httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="vre-web-viewer", daemon=True
        )
        self._thread.start()
        logger.info("web viewer on %s", self.url)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host = self.address[0]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    # -- producer side ---------------------------------------------------------------------

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        now = time.perf_counter()
        with self._cond:
            if self.include_input:
                self._latest[INPUT_NAME] = (seq, input_frame)
            for name, img in outputs.items():
                self._latest[name] = (seq, img)
            self._seq = seq
            self._frames += 1
            self._send_times.append(now)
            self._cond.notify_all()

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        self._summary = summary

    def close(self) -> None:
        if self.closed:
            return
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2.0)
        deadline = time.monotonic() + 2.0
        while self._clients and time.monotonic() < deadline:
            time.sleep(0.02)  # handlers notice `closed` within one poll and end their streams
        with self._cond:
            self._latest.clear()
            self._jpeg_cache.clear()

    # -- HTTP side -------------------------------------------------------------------------

    def stream_names(self) -> list[str]:
        with self._cond:
            return list(self._latest)

    def _fps(self) -> float:
        times = self._send_times
        if len(times) < 2:
            return 0.0
        now = time.perf_counter()
        recent = [t for t in times if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0]) if recent[-1] > recent[0] else 0.0

    def stats(self) -> dict[str, Any]:
        """What /stats.json returns."""
        s = self._summary or {}
        with self._cond:
            streams = list(self._latest)
            parts = dict(self._parts)
            fps = self._fps()
        return {
            "seq": self._seq,
            "frames": self._frames,
            "fps": round(fps, 2),
            "latency_ms": s.get("latency_ms"),
            "compute_ms": s.get("compute_ms"),
            "received": s.get("received"),
            "dropped": s.get("dropped", 0),
            "streams": streams,
            "clients": self._clients,
            "parts_sent": parts,  # JPEGs served per stream (MJPEG parts + single frames)
            "closed": self.closed,
            "summary": s.get("summary"),
        }

    def _page(self) -> str:
        names = self.stream_names()
        figures = "".join(
            f'<figure><img id="img-{html.escape(n)}" alt="{html.escape(n)}" '
            f'src="/stream/{quote(n, safe="")}.mjpg"><figcaption>{html.escape(n)}</figcaption></figure>'
            for n in names[:_MAX_MJPEG]
        ) if len(names) <= _MAX_MJPEG else ""
        return _PAGE.format(
            title=html.escape(self.title),
            figures=figures,
            streams_attr=html.escape(json.dumps(names)),
            max_mjpeg=_MAX_MJPEG,
            max_w=self._image_width,
        )

    def _client_delta(self, d: int) -> None:
        with self._cond:
            self._clients += d

    def _part_sent(self, name: str) -> None:
        with self._cond:
            self._parts[name] = self._parts.get(name, 0) + 1

    def _throttle(self) -> None:
        if self._min_period:
            time.sleep(self._min_period)

    def _jpeg_for(self, name: str, after_seq: int, *, wait: float) -> tuple[int, bytes] | None:
        """Newest JPEG of `name` with seq > after_seq, waiting up to `wait` s; None if none."""
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                item = self._latest.get(name)
                if item is not None and item[0] > after_seq:
                    break
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            seq, img = item
            cached = self._jpeg_cache.get(name)
            if cached is not None and cached[0] == seq:
                return cached
        # Encode outside the lock: encoders release the GIL and other streams keep flowing.
        jpeg = _encode_jpeg(img, self.jpeg_quality)
        with self._cond:
            cached = self._jpeg_cache.get(name)
            if cached is None or cached[0] < seq:
                self._jpeg_cache[name] = (seq, jpeg)
        return seq, jpeg


def _encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    img = _as_rgb8("image", img)
    try:
        import cv2
    except ImportError:  # Pillow is slower (~1.5 ms vs ~0.9 ms at 960x540) but always present
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        return buf.getvalue()
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


# -- spec parsing --------------------------------------------------------------------------

_TARGET_FORMS = "'-' (raw rgb24 on stdout), tcp://HOST:PORT, web, web://HOST:PORT, jsonl://HOST:PORT or jsonl:-"


def _hostport(spec: str, default_host: str, default_port: int | None) -> tuple[str, int]:
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{spec!r}: invalid port ({exc}): write SCHEME://HOST:PORT with PORT in 0..65535") from exc
    if port is None:
        if default_port is None:
            raise ConfigError(f"{spec!r} has no port: write it as {parts.scheme}://HOST:PORT (port 0 = any free port)")
        port = default_port
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"{spec!r}: unexpected path or options: write {parts.scheme}://HOST:PORT")
    return parts.hostname or default_host, port


def open_stream_target(
    spec: str,
    *,
    representation: str | None = None,
    mosaic: bool | None = None,
    host: str = "127.0.0.1",
    include_input: bool | None = None,
) -> StreamTarget:
    """Build the target named by `spec`: '-', tcp://, web[://HOST:PORT], jsonl://HOST:PORT or jsonl:-.

    Servers bind the spec's host, or `host` when the spec omits it (`tcp://:6000`); `web`
    alone means port 8080. `representation`/`mosaic` choose what raw targets send;
    `include_input` whether the input frame is shown too (web viewer: default yes; raw and TCP
    mosaics: default no).
    """
    spec = spec.strip()
    if spec == "-":
        use_mosaic = bool(mosaic) if mosaic is not None else False
        return RawStdoutTarget(sys.stdout.buffer, representation=representation, mosaic=use_mosaic,
                               include_input=bool(include_input))
    web_input = True if include_input is None else include_input
    if spec == "web":
        return WebViewerTarget(8080, host, include_input=web_input)
    if spec.startswith("web://"):
        h, p = _hostport(spec, host, 8080)
        return WebViewerTarget(p, h, include_input=web_input)
    if spec.startswith("tcp://"):
        h, p = _hostport(spec, host, None)
        return TcpTarget(p, h, representation=representation, mosaic=mosaic, include_input=bool(include_input))
    if spec == "jsonl:-":
        return JsonLinesTarget(sys.stdout)
    if spec.startswith("jsonl://"):
        h, p = _hostport(spec, host, None)
        return JsonLinesTarget(port=p, host=h)
    raise ConfigError(f"stream target {spec!r} is not understood: give {_TARGET_FORMS}")
