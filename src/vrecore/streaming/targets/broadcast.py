"""Fan-out of byte payloads to plain TCP clients (raw frames, JSON lines), newest first for slow ones."""
from __future__ import annotations

import collections
import logging
import threading

from .netloop import NetLoop, Payload, Protocol

__all__ = ["Broadcaster"]

logger = logging.getLogger(__name__)


class Broadcaster(Protocol):
    """Sends every published payload to every client on a `NetLoop`.

    Each client has `keep` slots behind the payload it is sending: when a newer payload
    arrives and the slots are full, its oldest waiting one is dropped for that client alone
    (`keep=1`: a slow client always gets the newest frame next). Whatever clients send is
    discarded. `refusal` is what an excess client gets (None: a reset, no bytes).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        what: str,
        keep: int,
        refusal: bytes | None,
        max_clients: int,
        write_timeout_s: float,
        max_buffered_bytes: int,
    ) -> None:
        self._keep = keep
        self._refusal = refusal
        self._lock = threading.Lock()
        # What the producer handed over and the loop has not taken yet: no more than a client keeps.
        self._inbox: collections.deque[Payload] = collections.deque(maxlen=keep)
        self._discarded = 0  # payloads pushed out of the inbox before the loop took them, once per client
        self.loop = NetLoop(self, host, port, what=what, max_clients=max_clients, write_timeout_s=write_timeout_s,
                            max_buffered_bytes=max_buffered_bytes)

    @property
    def address(self) -> tuple[str, int]:
        return self.loop.address

    @property
    def client_count(self) -> int:
        return self.loop.clients

    @property
    def dropped(self) -> int:
        """Payloads dropped for slow clients, summed over clients (gone ones included)."""
        return self.loop.dropped_payloads + self._discarded

    def publish(self, data: bytes | bytearray | memoryview) -> None:
        """Hand `data` to every client; never blocks (called on the processing thread)."""
        with self._lock:
            if len(self._inbox) == self._inbox.maxlen:  # the oldest waiting one goes, for every client
                self._discarded += self.client_count
            self._inbox.append(Payload(data))
        self.loop.wake()

    def close(self, drain_s: float = 1.0) -> None:
        """Stop serving; payloads already queued get up to `drain_s` seconds to reach readers."""
        self.loop.close(drain_s)

    # -- loop thread -----------------------------------------------------------------------

    def refusal(self, peer: str) -> bytes | None:
        return self._refusal

    def woken(self) -> None:
        with self._lock:
            payloads = list(self._inbox)
            self._inbox.clear()
        if not payloads:
            return
        loop, keep = self.loop, self._keep
        for conn in loop.connections:
            for payload in payloads:
                loop.queue(conn, payload, keep=keep)
