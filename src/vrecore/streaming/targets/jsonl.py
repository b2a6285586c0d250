"""Each frame's summary as one JSON line, to a file or to TCP clients (e.g. a robot's controller).

On TCP the limits are those of `tcp` (see `netloop`), with JSON-friendly choices:

- `max_clients` (16): a further client gets one JSON line, `{"error": "..."}` naming the limit,
  and a clean close;
- `write_timeout_s` (10 s): a client that reads nothing for that long while lines wait is dropped;
- `backlog_lines` (256): a slow client keeps its newest lines and loses older ones;
- `max_buffered_bytes` (16 MiB): bound on the lines held for slow clients; past it the clients
  furthest behind are dropped.
"""
from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from vrecore.errors import ConfigError

from .base import StreamTarget, TargetClosed
from .broadcast import Broadcaster
from .spec import hostport

__all__ = ["JsonLinesTarget", "dumps", "open_jsonl_target"]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 4096 else f"<array {obj.shape} {obj.dtype}>"
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def dumps(obj: Any) -> str:
    """Compact JSON; numpy scalars and small arrays become numbers and lists."""
    return json.dumps(obj, default=_json_default, separators=(",", ":"), allow_nan=False)


class JsonLinesTarget(StreamTarget):
    """Writes each frame's summary as one JSON line, to a file object or to TCP clients.

    Give either `file` (text or binary) or `port` (server on `host`, 127.0.0.1 by default).
    Lines come from `send_summary()`, which run_stream calls for every processed frame.
    """

    wants_summary = True

    def __init__(
        self,
        file: IO[Any] | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        backlog_lines: int = 256,
        max_clients: int = 16,
        write_timeout_s: float = 10.0,
        max_buffered_bytes: int = 16 * 2**20,
    ) -> None:
        if (file is None) == (port is None):
            raise ConfigError("JsonLinesTarget needs exactly one of file= or port=")
        self._file = file
        self._binary = file is not None and not isinstance(file, io.TextIOBase)
        self._server: Broadcaster | None = None
        if port is not None:
            refusal = dumps({"error": f"too many clients: this JSON lines server takes at most {max_clients} "
                                      "(max_clients); close another client and connect again"}) + "\n"
            self._server = Broadcaster(host, port, what="JSON lines", keep=backlog_lines, refusal=refusal.encode(),
                                       max_clients=max_clients, write_timeout_s=write_timeout_s,
                                       max_buffered_bytes=max_buffered_bytes)
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
        line = dumps(summary) + "\n"
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


def open_jsonl_target(spec: str, *, host: str = "127.0.0.1", **_: Any) -> JsonLinesTarget:
    """``jsonl:-`` (stdout) or ``jsonl://HOST:PORT`` (TCP clients): each frame's summary as one JSON line."""
    if spec == "jsonl:-":
        return JsonLinesTarget(sys.stdout)
    h, p = hostport(spec, host, None)
    return JsonLinesTarget(port=p, host=h)
