"""`open_stream_source`: a source spec resolved through the registry, and the URL parsing built-ins share."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from vrecore.errors import ConfigError

from ..endpoints import open_endpoint
from .base import StreamSource

__all__ = ["one_option", "open_stream_source", "parse_hostport"]


def parse_hostport(spec: str, default_host: str) -> tuple[str, int, dict[str, list[str]]]:
    """(host, port, query options) of ``SCHEME://HOST:PORT?k=v``; the host defaults to ``default_host``."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{spec!r}: invalid port ({exc}): write SCHEME://HOST:PORT with PORT in 0..65535") from exc
    if port is None:
        raise ConfigError(f"{spec!r} has no port: write it as {parts.scheme}://HOST:PORT")
    if parts.path not in ("", "/"):
        raise ConfigError(f"{spec!r}: unexpected path {parts.path!r}: write {parts.scheme}://HOST:PORT")
    return parts.hostname or default_host, port, parse_qs(parts.query, keep_blank_values=True)


def one_option(query: dict[str, list[str]], key: str, spec: str) -> str | None:
    """Take option ``key`` out of ``query``: None when absent, an error when given twice."""
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
    """Build (not open) the source named by `spec`, through the source registered for it.

    ``SCHEME://...`` is the source registered under SCHEME (core: ``tcp``; plugins add more);
    ``-`` is ``pipe`` (raw rgb24 on stdin), ``/dev/videoN`` is ``device`` and any other path is
    ``file``. In listen mode the bind address is the spec's host, or `host` when the spec omits
    it (`tcp://:5000`); query options: `mode=listen|client`, `on_disconnect=end|wait`.
    `realtime` and `loop` apply to video files (paced to their frame rate; restarted at the end).
    """
    if (width is None) != (height is None):
        raise ConfigError("give both width and height, or neither")
    options: dict[str, Any] = {"width": width, "height": height, "host": host, "realtime": realtime, "fps": fps,
                               "loop": loop}
    source = open_endpoint("source", spec, options)
    if not isinstance(source, StreamSource):
        raise ConfigError(f"stream source {spec!r} made a {type(source).__name__}, not a StreamSource: "
                          f"fix or uninstall the plugin that registered it")
    return source
