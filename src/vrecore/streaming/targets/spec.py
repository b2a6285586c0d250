"""`open_stream_target`: a target spec resolved through the registry, and the HOST:PORT parsing built-ins share."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from vrecore.errors import ConfigError

from ..endpoints import open_endpoint
from .base import StreamTarget

__all__ = ["hostport", "open_stream_target"]


def hostport(spec: str, default_host: str, default_port: int | None) -> tuple[str, int]:
    """(host, port) of ``SCHEME://HOST:PORT``, with defaults for what the spec leaves out."""
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
    """Build the target named by `spec`, through the target registered for it.

    ``SCHEME://...`` is the target registered under SCHEME (core: ``tcp``, ``web``, ``jsonl``;
    plugins add more); ``-`` is ``pipe`` (raw rgb24 on stdout), ``web`` the viewer on port 8080
    and ``jsonl:-`` JSON lines on stdout. Servers bind the spec's host, or `host` when the spec
    omits it (`tcp://:6000`). `representation`/`mosaic` choose what raw targets send;
    `include_input` whether the input frame is shown too (web viewer: default yes; raw and TCP
    mosaics: default no). Servers get their default limits (see each target's module).
    """
    options: dict[str, Any] = {"representation": representation, "mosaic": mosaic, "host": host,
                               "include_input": include_input}
    target = open_endpoint("target", spec, options)
    if not isinstance(target, StreamTarget):
        raise ConfigError(f"stream target {spec!r} made a {type(target).__name__}, not a StreamTarget: "
                          f"fix or uninstall the plugin that registered it")
    return target
