"""`open_stream_target`: the target named by an output spec ('-', tcp://, web[://], jsonl://, jsonl:-)."""
from __future__ import annotations

import sys
from urllib.parse import urlsplit

from vrecore.errors import ConfigError

from .base import StreamTarget
from .jsonl import JsonLinesTarget
from .raw import RawStdoutTarget
from .tcp import TcpTarget
from .viewer import WebViewerTarget

__all__ = ["open_stream_target"]

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
    mosaics: default no). Servers get their default limits (see each target's module).
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
