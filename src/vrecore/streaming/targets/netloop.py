"""One thread that serves many TCP clients: a selectors loop with a client cap, timeouts and bounded memory.

Why an event loop and not a thread per client: a thread costs a stack and a scheduler slot
whether its client reads or not, and 300 idle clients would mean 300 threads; here every
client is a socket plus a small `Connection` object, all served by one thread with
non-blocking sends. The processing loop never touches a socket: it hands data over with
`wake()` and the loop thread does the rest. (asyncio would do the same with more machinery:
its streams buffer writes without bound unless every writer awaits `drain()`, and producers
on other threads go through `call_soon_threadsafe`; selectors keeps the queues explicit.)

What the loop guarantees, whatever the clients do:

- at most `max_clients` open client connections; further ones are refused at once, by the
  protocol's choice: a short message then a clean close, or a reset when any byte would be
  misread (raw video);
- a client with data pending that reads nothing for `write_timeout_s` is dropped (reading
  shows as the socket taking bytes from us or, on Linux, as its kernel send queue shrinking,
  so a slow reader draining a full kernel buffer is not mistaken for a stalled one); a
  protocol may set a read deadline per connection (the web viewer does, for request headers);
- memory: payloads are shared by every connection that sends them, never copied per client.
  A slow client keeps the payload it is in the middle of; when such held payloads add up to
  more than `max_buffered_bytes`, the clients holding the oldest ones are dropped (a client
  holding only the newest payload never is). Kernel send buffers per client are capped at
  `SEND_BUFFER_BYTES`.
"""
from __future__ import annotations

import abc
import heapq
import itertools
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable

from vrecore.errors import ConfigError

from .connection import Connection, Payload, kernel_queued

__all__ = ["Connection", "NetLoop", "Payload", "Protocol", "SEND_BUFFER_BYTES"]  # the connection types re-exported

logger = logging.getLogger(__name__)

SEND_BUFFER_BYTES = 256 * 1024
"""SO_SNDBUF of every client socket: bounds the kernel memory a stalled client can pin (the kernel
doubles it) while keeping a fast local reader at hundreds of MB/s."""
_TICK_S = 0.1
_ACCEPT_BURST = 64  # accepts per wake-up, so a connection storm cannot starve the clients being served
_SEND_BATCH = 64  # payloads gathered into one sendmsg() call
_RECV_BYTES = 65536
_LINGER_S = 1.0  # how long a refused or finished connection may take to read our last bytes
_KERNEL_LOOK_S = 0.5  # a client idle that long has its kernel send queue watched for progress
class Protocol(abc.ABC):
    """What a server does with its connections; every method runs on the loop thread."""

    @abc.abstractmethod
    def refusal(self, peer: str) -> bytes | None:
        """What an excess client gets before the close: bytes, or None for a reset with no bytes."""

    def accepted(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """A client was accepted."""

    def received(self, conn: Connection, data: bytes) -> None:  # noqa: B027 - optional hook
        """Bytes arrived from the client (default: discarded)."""

    def drained(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Everything queued to `conn` was sent."""

    def read_timed_out(self, conn: Connection) -> None:
        """`conn.read_deadline` passed (default: drop the client)."""
        loop = self.loop
        loop.drop(conn, "sent nothing in time")

    def woken(self) -> None:  # noqa: B027 - optional hook
        """`NetLoop.wake()` was called: take what the producer handed over."""

    def closed(self, conn: Connection, reason: str) -> None:  # noqa: B027 - optional hook
        """`conn` is gone (dropped, finished or reset by the peer)."""

    loop: NetLoop


class NetLoop:
    """A listening socket and its clients, served by one daemon thread until `close()`."""

    def __init__(
        self,
        protocol: Protocol,
        host: str,
        port: int,
        *,
        what: str,
        max_clients: int,
        write_timeout_s: float,
        max_buffered_bytes: int,
        bind_error: str = "cannot listen on {host}:{port} for {what}",
        port_hint: str = "pick another port, or port 0 for a free one",
    ) -> None:
        if max_clients < 1:
            raise ConfigError(f"max_clients={max_clients} for {what}: give 1 or more")
        if write_timeout_s <= 0:
            raise ConfigError(f"write_timeout_s={write_timeout_s} for {what}: give a positive number of seconds")
        self.what = what
        self.max_clients = max_clients
        self.write_timeout_s = write_timeout_s
        self.max_buffered_bytes = max_buffered_bytes
        self.protocol = protocol
        protocol.loop = self
        srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind((host, port))
            srv.listen(128)
        except OSError as exc:
            srv.close()
            where = bind_error.format(host=host, port=port, what=what)
            raise ConfigError(f"{where} ({exc.strerror or exc}): {port_hint}") from exc
        srv.setblocking(False)
        self._server: socket.socket | None = srv
        self.address: tuple[str, int] = srv.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(srv, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._conns: set[Connection] = set()
        self._dirty: set[Connection] = set()
        self._held: dict[int, Payload] = {}  # payloads queued somewhere, oldest first
        self.held_bytes = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._closing_at: float | None = None
        self._closed = threading.Event()
        self.clients = 0
        """Open client connections (refused ones not counted)."""
        self.refused = 0
        """Connections refused because `max_clients` were open."""
        self.dropped_clients = 0
        """Clients dropped by a timeout or the memory bound."""
        self.dropped_payloads = 0
        """Payloads replaced by newer ones before a slow client got them, summed over clients."""
        self._thread = threading.Thread(target=self._run, name=f"vre-{what.replace(' ', '-')}", daemon=True)
        self._thread.start()
        logger.info("serving %s on tcp://%s:%d (at most %d clients)", what, *self.address, max_clients)

    # -- any thread ------------------------------------------------------------------------

    def wake(self) -> None:
        """Make the loop call `protocol.woken()` soon; never blocks."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full wake pipe already guarantees a wake-up; a closed one means we are done

    def close(self, drain_s: float = 1.0) -> None:
        """Stop accepting, give queued bytes up to `drain_s` seconds to leave, close every client."""
        if self._closing_at is None:
            self._closing_at = time.monotonic() + drain_s
            self._wake_pending = False
            self.wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(drain_s + 2.0)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- loop thread: the protocol's tools -------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """The open client connections (refused ones left out)."""
        return [c for c in list(self._conns) if not c.refused]

    def queue(self, conn: Connection, payload: Payload, *, keep: int | None = None) -> None:
        """Append `payload` to what `conn` sends. With `keep`, at most that many payloads wait
        behind the one being sent: older waiting ones are dropped (`dropped_payloads`)."""
        if not conn.open or conn.finishing is not None:
            return
        out = conn.out
        if not out:
            conn.since = time.monotonic()
        if keep is not None:
            started = 1 if conn.offset else 0
            while len(out) - started >= keep and len(out) > started:
                old = out[started]
                del out[started]
                self._release(old)
                self.dropped_payloads += 1
        out.append(payload)
        if payload.holders == 0:
            self._held[id(payload)] = payload
            self.held_bytes += payload.size
        payload.holders += 1
        self._dirty.add(conn)

    def finish(self, conn: Connection) -> None:
        """Close `conn` once what is queued has been sent (and the client has read it)."""
        if conn.open and conn.finishing is None:
            conn.finishing = time.monotonic() + self.write_timeout_s
            self._dirty.add(conn)

    def drop(self, conn: Connection, reason: str) -> None:
        """Close `conn` now; queued bytes are discarded."""
        if conn.open:
            logger.info("%s: client %s dropped: %s", self.what, conn.peer, reason)
            self._close(conn, reason)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop thread after `delay_s` seconds."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._timer_ids), fn))

    # -- loop thread: internals ------------------------------------------------------------

    def _release(self, payload: Payload) -> None:
        payload.holders -= 1
        if payload.holders == 0:
            del self._held[id(payload)]
            self.held_bytes -= payload.size

    def _close(self, conn: Connection, reason: str) -> None:
        conn.open = False
        self._conns.discard(conn)
        self._dirty.discard(conn)
        for payload in conn.out:
            self._release(payload)
        conn.out.clear()
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass
        if not conn.refused:
            self.clients -= 1
            self.protocol.closed(conn, reason)

    def _accept(self, srv: socket.socket) -> None:
        for _ in range(_ACCEPT_BURST):
            try:
                sock, addr = srv.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                logger.warning("%s: accept failed: %s", self.what, exc)
                return
            peer = f"{addr[0]}:{addr[1]}"
            sock.setblocking(False)
            if self.clients >= self.max_clients:
                self._refuse(sock, peer)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            conn = Connection(sock, peer)
            self._conns.add(conn)
            self.clients += 1
            self._sel.register(sock, selectors.EVENT_READ, conn)
            logger.info("%s: client %s connected", self.what, peer)
            self.protocol.accepted(conn)

    def _refuse(self, sock: socket.socket, peer: str) -> None:
        self.refused += 1
        (logger.warning if self.refused == 1 else logger.info)(
            "%s: refusing %s: already %d clients (max_clients=%d; %d refused so far)",
            self.what, peer, self.clients, self.max_clients, self.refused)
        message = self.protocol.refusal(peer)
        lingering = len(self._conns) - self.clients
        if message is None or lingering >= self.max_clients:
            # A reset: no byte reaches the client, and no TIME_WAIT is left behind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return
        conn = Connection(sock, peer)
        conn.refused = True
        self._conns.add(conn)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        self.queue(conn, Payload(message))
        conn.finishing = time.monotonic() + _LINGER_S

    def _flush(self, conn: Connection) -> None:
        """Send what the socket takes now; keep EVENT_WRITE registered while bytes remain."""
        out = conn.out
        while out:
            views = [out[0].view[conn.offset:], *(p.view for p in itertools.islice(out, 1, _SEND_BATCH))]
            try:
                sent = conn.sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._close(conn, f"send failed: {exc}")
                return
            if sent:
                conn.since = time.monotonic()
                conn.kernel_queued = None
            n = conn.offset + sent
            while out and n >= out[0].size:
                n -= out[0].size
                self._release(out.popleft())
            conn.offset = n
            if n or not sent:
                break  # the socket buffer is full
        if out:
            if not conn.writing:
                self._sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
                conn.writing = True
            return
        if conn.writing:
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
            conn.writing = False
        if conn.finishing is not None:
            self._half_close(conn)
        elif not conn.refused:
            self.protocol.drained(conn)

    def _half_close(self, conn: Connection) -> None:
        # Closing a socket with unread client bytes makes the kernel send a reset, and the reset
        # can destroy our last bytes before the client reads them; so shut our side, read
        # until the client closes too (or _LINGER_S passes), then close.
        if conn.half_closed:
            return
        conn.half_closed = True
        conn.read_deadline = None
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn, "finished")
            return
        conn.finishing = min(conn.finishing or 0.0, time.monotonic() + _LINGER_S)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(conn, f"receive failed: {exc}")
            return
        if not data:
            self._close(conn, "closed by the client")
        elif conn.finishing is None and not conn.refused:
            self.protocol.received(conn, data)

    def _check_deadlines(self, now: float) -> None:
        for conn in list(self._conns):
            if not conn.open:
                continue
            if conn.finishing is not None and now > conn.finishing:
                self._close(conn, "finished")
            elif conn.out and now - conn.since > min(_KERNEL_LOOK_S, self.write_timeout_s / 2):
                # A slow reader may drain the kernel's buffer for many seconds before the socket
                # takes new bytes from us: what it reads shows as a shrinking kernel queue.
                queued = kernel_queued(conn.sock)
                if queued is not None and conn.kernel_queued is not None and queued < conn.kernel_queued:
                    conn.since = now
                conn.kernel_queued = queued
                if now - conn.since > self.write_timeout_s:
                    self.dropped_clients += 1
                    self.drop(conn, f"read nothing for {self.write_timeout_s:g} s (write timeout)")
            elif conn.read_deadline is not None and now > conn.read_deadline:
                conn.read_deadline = None
                self.protocol.read_timed_out(conn)

    def _enforce_memory_bound(self) -> None:
        while self.held_bytes > self.max_buffered_bytes and len(self._held) > 1:
            oldest = next(iter(self._held.values()))
            holders = [c for c in self._conns if oldest in c.out]
            for conn in holders:
                self.dropped_clients += 1
                self.drop(conn, f"too slow: frames held for slow clients passed max_buffered_bytes="
                                f"{self.max_buffered_bytes}")
            if not holders:  # cannot happen: a held payload sits in some queue
                break

    def _run(self) -> None:
        next_check = time.monotonic() + _TICK_S
        try:
            while True:
                now = time.monotonic()
                timeout = min(_TICK_S, max(0.0, next_check - now))
                if self._timers:
                    timeout = min(timeout, max(0.0, self._timers[0][0] - now))
                for key, mask in self._sel.select(timeout):
                    conn = key.data
                    if conn is None:
                        if key.fileobj is self._wake_r:
                            self._take_wake()
                        elif self._server is not None:
                            self._accept(self._server)
                        continue
                    if not conn.open:
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read(conn)
                    if conn.open and mask & selectors.EVENT_WRITE:
                        self._flush(conn)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    heapq.heappop(self._timers)[2]()
                self._flush_dirty()
                self._enforce_memory_bound()
                if now >= next_check:
                    self._check_deadlines(now)
                    next_check = now + _TICK_S
                if self._closing_at is not None and self._closing_step(now):
                    return
        except Exception:  # noqa: BLE001 - a bug here must not go unnoticed, nor hang close()
            logger.exception("%s: server loop failed", self.what)
        finally:
            for conn in list(self._conns):
                self._close(conn, "server closed")
            self._sel.close()
            for s in (self._server, self._wake_r, self._wake_w):
                if s is not None:
                    s.close()
            self._server = None
            self._closed.set()

    def _take_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._wake_pending = False
        self.protocol.woken()

    def _flush_dirty(self) -> None:
        while self._dirty:
            conn = self._dirty.pop()
            if conn.open:
                self._flush(conn)

    def _closing_step(self, now: float) -> bool:
        """Stop accepting; True once nothing is left to send or the drain time is over."""
        assert self._closing_at is not None
        if self._server is not None:
            self._sel.unregister(self._server)
            self._server.close()
            self._server = None
            # What the producer handed over just before close() may still wait behind the wake-up:
            # take it and start sending before deciding that nothing is left.
            self.protocol.woken()
            self._flush_dirty()
        pending = any(c.out for c in self._conns if c.open)
        return not pending or now >= self._closing_at
