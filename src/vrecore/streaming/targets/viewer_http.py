"""HTTP/1.1 for the web viewer on a `netloop`: the page, /stats.json, and JPEGs as MJPEG streams or one at a time."""
from __future__ import annotations

import collections
import html
import string
import time
import typing
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from .jsonl import dumps
from .netloop import Connection, Payload, Protocol

__all__ = ["BOUNDARY", "TILES", "Jpeg", "StreamKey", "ViewerHttp", "ViewerState", "make_jpeg"]

BOUNDARY = "vreframe"
StreamKey = str | None
"""What a JPEG shows: a stream's name ("input" or a representation), or TILES for the grid."""
TILES: StreamKey = None
MAX_HEADER_BYTES = 8192


@attrs.frozen(eq=False)
class Jpeg:
    """One encoded image: the MJPEG part (boundary, headers, JPEG) and the JPEG alone, sharing bytes."""

    seq: int
    part: Payload
    jpeg: Payload


def make_jpeg(seq: int, jpeg: bytes) -> Jpeg:
    """The MJPEG part of one JPEG, ready to send."""
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Frame-Seq: {seq}\r\n\r\n").encode()
    # One buffer per part: separate small writes would meet Nagle + delayed ACK.
    part = b"".join((head, jpeg, b"\r\n"))
    return Jpeg(seq, Payload(part), Payload(memoryview(part)[len(head):len(head) + len(jpeg)]))


class ViewerState(typing.Protocol):
    """What the HTTP side reads of the viewer it serves (the viewer imports this module, never the reverse)."""

    title: str

    @property
    def closed(self) -> bool: ...

    @property
    def seq(self) -> int: ...

    def cached(self, key: StreamKey) -> Jpeg | None: ...

    def want(self, key: StreamKey) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def stream_names(self) -> list[str]: ...


class _State:
    """Where one HTTP connection is: reading a request, sending a response, streaming, or waiting for a JPEG."""

    __slots__ = ("buf", "mode", "key", "last_seq", "keep_alive", "head_only", "requests", "next_at", "timer")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.mode = "request"  # "request" | "response" | "stream" | "single"
        self.key: StreamKey = TILES
        self.last_seq = -1
        self.keep_alive = False
        self.head_only = False
        self.requests = 0
        self.next_at = 0.0  # max_fps: the earliest time of the next MJPEG part
        self.timer = False


def _head(status: HTTPStatus, ctype: str, length: int | None, extra: str = "", close: bool = False) -> bytes:
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\nServer: vre-viewer\r\nContent-Type: {ctype}\r\n"
            + (f"Content-Length: {length}\r\n" if length is not None else "")
            + "Cache-Control: no-store\r\n" + extra + ("Connection: close\r\n" if close else "") + "\r\n").encode()


class ViewerHttp(Protocol):
    """Serves one `WebViewerTarget`: MJPEG clients get the newest JPEG each time they took the last one."""

    def __init__(self, viewer: ViewerState, *, read_timeout_s: float, min_period_s: float) -> None:
        self.viewer = viewer
        self.read_timeout_s = read_timeout_s
        self.min_period_s = min_period_s
        self._waiting: dict[StreamKey, set[Connection]] = {}
        self._page: bytes | None = None
        self.parts_sent: collections.Counter[str] = collections.Counter()
        self.tiles_sent = 0
        self.watchers = 0
        """Open MJPEG streams."""

    def refusal(self, peer: str) -> bytes:
        limit = self.loop.max_clients
        body = (f"vre web viewer: too many clients ({limit} connections open, max_clients={limit}); close another "
                "tab or start the viewer with a higher max_clients\n").encode()
        return _head(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", len(body), "Retry-After: 5\r\n",
                     close=True) + body

    def accepted(self, conn: Connection) -> None:
        conn.state = _State()
        conn.read_deadline = time.monotonic() + self.read_timeout_s

    def received(self, conn: Connection, data: bytes) -> None:
        st: _State = conn.state
        if st.mode in ("stream", "single"):
            return  # nothing more is expected from this client
        st.buf += data
        if st.mode == "request":
            self._parse(conn)
        elif len(st.buf) > MAX_HEADER_BYTES:
            self._error(conn, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers are larger than 8 KiB")

    def drained(self, conn: Connection) -> None:
        st: _State = conn.state
        if st.mode == "response":
            st.mode = "request"
            conn.read_deadline = time.monotonic() + self.read_timeout_s
            if st.buf:
                self._parse(conn)
        elif st.mode == "stream":
            self._next_part(conn)

    def read_timed_out(self, conn: Connection) -> None:
        st: _State = conn.state
        if st.mode == "single":
            self._error(conn, HTTPStatus.SERVICE_UNAVAILABLE, "no image could be made for this frame")
        elif st.requests and not st.buf:
            self.loop.finish(conn)  # an idle kept-alive connection: close it quietly
        else:
            self._error(conn, HTTPStatus.REQUEST_TIMEOUT,
                        f"the request headers did not arrive within {self.read_timeout_s:g} s")

    def closed(self, conn: Connection, reason: str) -> None:
        st: _State = conn.state
        waiting = self._waiting.get(st.key)
        if waiting is not None:
            waiting.discard(conn)
        if st.mode == "stream":
            self.watchers -= 1

    def woken(self) -> None:
        viewer = self.viewer
        if viewer.closed:
            for conns in self._waiting.values():
                for conn in conns:
                    if conn.state.mode == "stream":
                        self.loop.finish(conn)
                    else:
                        self._error(conn, HTTPStatus.SERVICE_UNAVAILABLE, "the stream has ended")
            self._waiting.clear()
            return
        for key, conns in list(self._waiting.items()):
            cached = viewer.cached(key)
            if cached is not None:
                for conn in list(conns):
                    st: _State = conn.state
                    if st.mode == "stream" and cached.seq > st.last_seq:
                        conns.discard(conn)
                        self._serve_part(conn, cached)
                    elif st.mode == "single" and cached.seq >= st.last_seq:
                        conns.discard(conn)
                        self._send_jpeg(conn, key, cached)
            if conns:
                viewer.want(key)
            else:
                del self._waiting[key]

    # -- requests --------------------------------------------------------------------------

    def _parse(self, conn: Connection) -> None:
        st: _State = conn.state
        end = st.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(st.buf) > MAX_HEADER_BYTES:
                self._error(conn, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers are larger than 8 KiB")
            return
        lines = bytes(st.buf[:end]).decode("latin-1").split("\r\n")
        del st.buf[:end + 4]
        conn.read_deadline = None
        st.requests += 1
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._error(conn, HTTPStatus.BAD_REQUEST, "malformed request line")
            return
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._error(conn, HTTPStatus.BAD_REQUEST, "malformed header line")
                return
            headers[name.strip().lower()] = value.strip().lower()
        connection = headers.get("connection", "")
        st.keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
        st.head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            self._error(conn, HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not served here: use GET",
                        "Allow: GET, HEAD\r\n")
        elif headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            self._error(conn, HTTPStatus.BAD_REQUEST, "request bodies are not accepted")
        else:
            self._route(conn, unquote(urlsplit(target).path))

    def _route(self, conn: Connection, path: str) -> None:
        viewer = self.viewer
        if path in ("/", "/index.html"):
            self._respond(conn, HTTPStatus.OK, "text/html; charset=utf-8", self._page_bytes())
        elif path == "/stats.json":
            self._respond(conn, HTTPStatus.OK, "application/json", dumps(viewer.stats()).encode())
        elif path == "/tiles.mjpg":
            self._start_stream(conn, TILES)
        elif path == "/tiles.jpg":
            self._single(conn, TILES)
        elif path.startswith("/stream/") and path.endswith(".mjpg"):
            name = path[len("/stream/"):-len(".mjpg")]
            if name in viewer.stream_names():
                self._start_stream(conn, name)
            else:
                self._error(conn, HTTPStatus.NOT_FOUND, f"no stream {name!r}")
        elif path.startswith("/frame/") and path.endswith(".jpg"):
            self._single(conn, path[len("/frame/"):-len(".jpg")])
        else:
            self._error(conn, HTTPStatus.NOT_FOUND, "not found")

    def _page_bytes(self) -> bytes:
        if self._page is None:
            template = resources.files(__package__).joinpath("viewer.html").read_text(encoding="utf-8")
            self._page = string.Template(template).substitute(title=html.escape(self.viewer.title)).encode()
        return self._page

    # -- responses -------------------------------------------------------------------------

    def _respond(self, conn: Connection, status: HTTPStatus, ctype: str, body: bytes | Payload,
                 extra: str = "", *, close: bool = False) -> None:
        st: _State = conn.state
        close = close or not st.keep_alive or self.viewer.closed
        size = body.size if isinstance(body, Payload) else len(body)
        head = _head(status, ctype, size, extra, close)
        if st.head_only:
            self.loop.queue(conn, Payload(head))
        elif isinstance(body, Payload):
            self.loop.queue(conn, Payload(head))
            self.loop.queue(conn, body)
        else:
            self.loop.queue(conn, Payload(head + body))
        if close:
            self.loop.finish(conn)
        else:
            st.mode = "response"

    def _error(self, conn: Connection, status: HTTPStatus, message: str, extra: str = "") -> None:
        conn.state.mode = "response"
        conn.state.head_only = False
        self._respond(conn, status, "text/plain; charset=utf-8", f"{message}\n".encode(), extra, close=True)

    def _start_stream(self, conn: Connection, key: StreamKey) -> None:
        st: _State = conn.state
        self.loop.queue(conn, Payload(_head(HTTPStatus.OK, f"multipart/x-mixed-replace; boundary={BOUNDARY}", None,
                                            close=True)))
        if st.head_only:
            self.loop.finish(conn)
            return
        st.mode, st.key, st.last_seq = "stream", key, -1
        self.watchers += 1

    def _next_part(self, conn: Connection) -> None:
        st: _State = conn.state
        if not conn.open or conn.out or st.mode != "stream":
            return
        viewer = self.viewer
        if viewer.closed:
            self.loop.finish(conn)
            return
        now = time.monotonic()
        if now < st.next_at:
            if not st.timer:
                st.timer = True
                self.loop.call_later(st.next_at - now, lambda: self._after_pause(conn))
            return
        cached = viewer.cached(st.key)
        # A stream starts with the newest frame, not with a JPEG left over from earlier viewers.
        fresh = cached is not None and cached.seq > st.last_seq and (st.last_seq >= 0 or cached.seq >= viewer.seq)
        if fresh:
            assert cached is not None
            self._serve_part(conn, cached)
        else:
            self._waiting.setdefault(st.key, set()).add(conn)
            viewer.want(st.key)

    def _serve_part(self, conn: Connection, jpeg: Jpeg) -> None:
        st: _State = conn.state
        if conn.out:
            return  # the client is still taking the previous part: it asks again when done
        self.loop.queue(conn, jpeg.part)
        st.last_seq = jpeg.seq
        st.next_at = time.monotonic() + self.min_period_s
        self._count(st.key)

    def _after_pause(self, conn: Connection) -> None:
        conn.state.timer = False
        self._next_part(conn)

    def _single(self, conn: Connection, key: StreamKey) -> None:
        viewer = self.viewer
        if viewer.seq < 0 or (key is not TILES and key not in viewer.stream_names()):
            self._error(conn, HTTPStatus.NOT_FOUND, "no frame yet" if viewer.seq < 0 else f"no stream {key!r}")
            return
        cached = viewer.cached(key)
        if cached is not None and cached.seq >= viewer.seq:
            self._send_jpeg(conn, key, cached)
            return
        st: _State = conn.state
        st.mode, st.key, st.last_seq = "single", key, viewer.seq
        conn.read_deadline = time.monotonic() + self.read_timeout_s  # bounds the wait for the renderer
        self._waiting.setdefault(key, set()).add(conn)
        viewer.want(key)

    def _send_jpeg(self, conn: Connection, key: StreamKey, jpeg: Jpeg) -> None:
        conn.read_deadline = None
        self._respond(conn, HTTPStatus.OK, "image/jpeg", jpeg.jpeg, f"X-Frame-Seq: {jpeg.seq}\r\n")
        self._count(key)

    def _count(self, key: StreamKey) -> None:
        if key is None:  # TILES
            self.tiles_sent += 1
        else:
            self.parts_sent[key] += 1
