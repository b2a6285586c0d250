"""One client socket of a `NetLoop` (`Connection`) and the bytes it is sent (`Payload`), shared between clients."""
from __future__ import annotations

import collections
import socket
import struct
from typing import Any

__all__ = ["Connection", "Payload", "kernel_queued"]

try:  # Linux; elsewhere only the bytes the socket takes from us count as progress
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):
    _TIOCOUTQ = None


def kernel_queued(sock: socket.socket) -> int | None:
    """Bytes in the socket's kernel send queue (sent but not acknowledged, or not sent yet)."""
    if _TIOCOUTQ is None:
        return None
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return None


class Payload:
    """Bytes to send, shared by every connection that sends them (never copied per client)."""

    __slots__ = ("view", "size", "holders")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.view = memoryview(data).cast("B")
        self.size = self.view.nbytes
        self.holders = 0


class Connection:
    """One client socket, owned by the loop thread. `state` belongs to the protocol."""

    __slots__ = ("sock", "peer", "out", "offset", "since", "kernel_queued", "read_deadline", "finishing",
                 "half_closed", "refused", "open", "writing", "state")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.out: collections.deque[Payload] = collections.deque()
        self.offset = 0  # bytes of out[0] already sent
        self.since = 0.0  # last time the client took bytes (or the out queue became non-empty)
        self.kernel_queued: int | None = None  # bytes in the kernel send queue at the last look
        self.read_deadline: float | None = None
        self.finishing: float | None = None  # close once `out` is sent, at the latest then
        self.half_closed = False  # our side is shut; waiting for the client to close
        self.refused = False
        self.open = True
        self.writing = False  # registered for EVENT_WRITE
        self.state: Any = None
