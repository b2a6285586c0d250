"""Raw rgb24 frames over TCP: listening for one sender at a time, or connecting to one."""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Literal

import numpy as np

from vrecore.errors import ConfigError, SourceError

from .base import POLL_S, StreamSource, check_size, new_frame
from .spec import one_option, parse_hostport

__all__ = ["TcpSource", "open_tcp_source"]

logger = logging.getLogger(__name__)

# A 960x540 rgb24 frame is 1.5 MB; a large kernel buffer lets a sender run ahead while we process.
_SOCKET_BUFFER = 4 * 1024 * 1024


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
        self._width, self._height = check_size(width, height, "TCP input")
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
    def mode(self) -> str:
        """"listen" (wait for a sender) or "client" (connect to one)."""
        return self._mode

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
            srv.settimeout(POLL_S)
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
        conn.settimeout(POLL_S)

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
            frame, view = new_frame(self._width, self._height)
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



def open_tcp_source(spec: str, *, width: int | None = None, height: int | None = None, host: str = "127.0.0.1",
                    fps: float | None = None, **_: Any) -> TcpSource:
    """``tcp://HOST:PORT[?mode=listen|client&on_disconnect=end|wait]``: raw rgb24 frames over TCP."""
    h_, port, query = parse_hostport(spec, host)
    mode = one_option(query, "mode", spec) or "listen"
    on_disconnect = one_option(query, "on_disconnect", spec) or "end"
    if query:
        raise ConfigError(f"{spec!r}: unknown option(s) {', '.join(sorted(query))}: use mode= and on_disconnect=")
    if mode not in ("listen", "client"):
        raise ConfigError(f"{spec!r}: mode={mode} is unknown: use mode=listen or mode=client")
    if on_disconnect not in ("end", "wait"):
        raise ConfigError(f"{spec!r}: on_disconnect={on_disconnect} is unknown: use end or wait")
    w, h = check_size(width, height, f"TCP input {spec}")
    return TcpSource(w, h, port=port, host=h_, mode=mode, on_disconnect=on_disconnect, fps=fps)  # type: ignore[arg-type]
