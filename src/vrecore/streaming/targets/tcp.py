"""Raw rgb24 frames served to TCP clients (e.g. `ffplay -f rawvideo ... tcp://HOST:PORT`).

Limits, all per target (see `netloop` for how they are enforced):

- `max_clients` (16): further clients are reset at once, with no byte sent: a raw rgb24 reader
  cannot tell text from pixels, so any message would show up as a garbage frame; the reset
  ("connection reset by peer", at connect or at the first read) tells it apart from a stream
  that ended (a clean close), and the server logs a line naming the client and the limit.
- `write_timeout_s` (10 s): a client that reads nothing for that long while a frame waits for
  it is dropped.
- `max_buffered_bytes` (64 MiB): a slow client finishes the frame it is in the middle of (a raw
  stream cannot skip half a frame) and then gets the newest one; when the frames held for such
  clients pass this bound, the clients furthest behind are dropped. Memory therefore stays under
  the bound however many clients are slow or idle.

Clients are expected to send nothing; what they send is read and discarded.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import StreamTarget
from .broadcast import Broadcaster
from .frames import FramePicker, flat
from .spec import hostport

__all__ = ["TcpTarget", "open_tcp_target"]


class TcpTarget(StreamTarget):
    """Serves raw rgb24 frames (mosaic of all representations by default) to TCP clients.

    Listens on `host:port` (127.0.0.1 by default; port 0 picks a free one, see `address`).
    Each client gets whole frames from the moment it connects; a client that reads slower than
    we produce gets only the newest frame (older ones are dropped for it alone). Every frame has
    the size of the first one.
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
        write_timeout_s: float = 10.0,
        max_buffered_bytes: int = 64 * 2**20,
    ) -> None:
        use_mosaic = representation is None if mosaic is None else mosaic
        self._picker = FramePicker(representation, use_mosaic, include_input)
        self._server = Broadcaster(host, port, what="raw rgb24 frames", keep=1, refusal=None, max_clients=max_clients,
                                   write_timeout_s=write_timeout_s, max_buffered_bytes=max_buffered_bytes)

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
    def refused(self) -> int:
        """Clients refused because `max_clients` were connected."""
        return self._server.loop.refused

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
        self._server.publish(flat(self._picker.pick(input_frame, outputs)))

    def close(self) -> None:
        self._server.close()


def open_tcp_target(spec: str, *, representation: str | None = None, mosaic: bool | None = None,
                    host: str = "127.0.0.1", include_input: bool | None = None, **_: Any) -> TcpTarget:
    """``tcp://HOST:PORT``: raw rgb24 frames served to TCP clients."""
    h, p = hostport(spec, host, None)
    return TcpTarget(p, h, representation=representation, mosaic=mosaic, include_input=bool(include_input))
