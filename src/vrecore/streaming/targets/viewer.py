"""A live web viewer: every representation as a labelled tile with its milliseconds, in a browser.

The page (`/`) shows one MJPEG stream of the tile grid that `vrecore.visual.tiles` draws (the same
layout as `vre collage`), with frames/s, latency, drops and each representation's compute
time over its tile, polled from `/stats.json`. `/tiles.mjpg` and `/tiles.jpg` are the grid as
a stream and as one JPEG; `/stream/<name>.mjpg` and `/frame/<name>.jpg` the same for one
stream ("input" or a representation).

`send()` only keeps references to the frame's images (lazy previews are made there). JPEGs
are made on one renderer thread, only while someone waits for a newer one, at most once per
frame and stream, and shared by every client. The HTTP side is one `netloop` thread with
these limits (constructor arguments):

- `max_clients` (64 connections; a browser tab uses two): a further client gets
  `503 Service Unavailable` with a one-line reason and `Retry-After`;
- `read_timeout_s` (10 s): a client must send its request headers within that time (also the
  idle time of a kept-alive connection); a slow one gets `408 Request Timeout`;
- `write_timeout_s` (10 s): a client that reads nothing for that long is dropped; a slow MJPEG
  client otherwise gets the newest JPEG each time it has taken the previous one;
- `max_buffered_bytes` (32 MiB): bound on the JPEGs held for slow clients (see `netloop`).

Binds 127.0.0.1 by default; port 0 picks a free port (see `url`).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vrecore.errors import ConfigError
from vrecore.visual.tiles import TileLayout, TileRenderer, as_rgb8, plan_tiles

from .base import INPUT_NAME, StreamTarget
from .netloop import NetLoop
from .spec import hostport
from .viewer_http import TILES, Jpeg, StreamKey, ViewerHttp, make_jpeg

__all__ = ["WebViewerTarget", "open_web_target"]

logger = logging.getLogger(__name__)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a uint8 RGB image."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class WebViewerTarget(StreamTarget):
    """Serves the live input and every representation to browsers; see the module docstring.

    `max_width` bounds the width of the tile grid in pixels (tiles are never enlarged);
    `rows`/`cols` fix its shape (default: chosen for the frame's aspect ratio); `max_fps`
    caps the JPEGs per second each client gets.
    """

    wants_summary = True

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        include_input: bool = True,
        jpeg_quality: int = 80,
        max_fps: float | None = None,
        title: str = "vre live",
        max_width: int = 1280,
        rows: int | None = None,
        cols: int | None = None,
        max_clients: int = 64,
        read_timeout_s: float = 10.0,
        write_timeout_s: float = 10.0,
        max_buffered_bytes: int = 32 * 2**20,
    ) -> None:
        if read_timeout_s <= 0:
            raise ConfigError(f"read_timeout_s={read_timeout_s} for the web viewer: give a positive number of seconds")
        self.include_input = include_input
        self.jpeg_quality = int(jpeg_quality)
        self.title = title
        self._max_width = max_width
        self._rows, self._cols = rows, cols
        self._cond = threading.Condition(threading.Lock())
        self._names: list[str] = []  # every stream seen, in order: the tiles keep their places
        self._frame: tuple[int, np.ndarray, dict[str, np.ndarray]] | None = None
        self._cache: dict[StreamKey, Jpeg] = {}
        self._wanted: set[StreamKey] = set()
        self._failed: dict[StreamKey, int] = {}  # the frame a key could not be shown for: not retried
        self._layouts: dict[tuple[tuple[str, ...], tuple[int, int]], TileRenderer] = {}
        self._send_times: collections.deque[float] = collections.deque(maxlen=120)
        self._seq = -1
        self._frames = 0
        self._summary: Mapping[str, Any] | None = None
        self.closed = False
        self._http = ViewerHttp(self, read_timeout_s=read_timeout_s, min_period_s=1.0 / max_fps if max_fps else 0.0)
        self._loop = NetLoop(self._http, host, port, what="web viewer", max_clients=max_clients,
                             write_timeout_s=write_timeout_s, max_buffered_bytes=max_buffered_bytes,
                             bind_error="cannot serve the web viewer on {host}:{port}",
                             port_hint="pick another port (web://127.0.0.1:8081), or port 0 for a free one")
        self.address: tuple[str, int] = self._loop.address
        self._renderer = threading.Thread(target=self._render_loop, name="vre-web-viewer-render", daemon=True)
        self._renderer.start()
        logger.info("web viewer on %s", self.url)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host = self.address[0]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    # -- producer side ---------------------------------------------------------------------

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        now = time.perf_counter()
        images = dict(outputs.items())  # makes lazy previews here, on the producer's thread
        if self.include_input:
            images = {INPUT_NAME: input_frame, **images}
        with self._cond:
            for name in images:
                if name not in self._names:
                    self._names.append(name)
            self._frame = (seq, input_frame, images)
            self._seq = seq
            self._frames += 1
            self._send_times.append(now)
            if self._wanted:
                self._cond.notify_all()

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        self._summary = summary

    def close(self) -> None:
        if self.closed:
            return
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._loop.wake()  # streams end now, instead of waiting for a frame that will not come
        self._loop.close(drain_s=1.0)
        self._renderer.join(2.0)
        with self._cond:
            self._frame = None
            self._cache.clear()

    # -- what the HTTP side asks (loop thread) ---------------------------------------------

    def stream_names(self) -> list[str]:
        with self._cond:
            return list(self._names)

    @property
    def seq(self) -> int:
        """Sequence number of the newest frame, -1 before the first."""
        return self._seq

    def cached(self, key: StreamKey) -> Jpeg | None:
        """The newest JPEG made for `key`, if any."""
        with self._cond:
            return self._cache.get(key)

    def want(self, key: StreamKey) -> None:
        """Ask the renderer for a JPEG of `key` newer than the cached one (the loop is woken when made)."""
        with self._cond:
            if key not in self._wanted:
                self._wanted.add(key)
                self._cond.notify_all()

    def _layout(self, names: tuple[str, ...], frame: np.ndarray) -> TileRenderer:
        key = (names, (int(frame.shape[1]), int(frame.shape[0])))
        renderer = self._layouts.get(key)
        if renderer is None:
            self._layouts.clear()  # names only grow and sizes rarely change: keep the current one
            renderer = self._layouts[key] = TileRenderer(
                plan_tiles(names, key[1], rows=self._rows, cols=self._cols, max_width=self._max_width))
        return renderer

    def layout(self) -> TileLayout | None:
        """The tile layout of the newest frame (None before the first)."""
        with self._cond:
            if self._frame is None:
                return None
            names, frame = tuple(self._names), self._frame[1]
            return self._layout(names, frame).layout

    def stats(self) -> dict[str, Any]:
        """What /stats.json returns."""
        s = self._summary or {}
        layout = self.layout()
        with self._cond:
            streams = list(self._names)
            fps = self._fps()
        timings: dict[str, float] = {}
        errors: dict[str, str] = {}
        per_rep = s.get("summary")
        if isinstance(per_rep, Mapping):
            for name, value in per_rep.items():
                if isinstance(value, Mapping):
                    if "error" in value:
                        errors[str(name)] = str(value["error"])
                    elif isinstance(value.get("ms"), (int, float)):
                        timings[str(name)] = float(value["ms"])
        return {
            "seq": self._seq,
            "frames": self._frames,
            "fps": round(fps, 2),
            "latency_ms": s.get("latency_ms"),
            "compute_ms": s.get("compute_ms"),
            "received": s.get("received"),
            "dropped": s.get("dropped", 0),
            "streams": streams,
            "layout": None if layout is None else layout.as_dict(),
            "timings": timings,  # ms per representation, from the processor's summary
            "errors": errors,
            "clients": self._http.watchers,  # MJPEG streams being watched
            "connections": self._loop.clients,
            "refused": self._loop.refused,
            "parts_sent": dict(self._http.parts_sent),  # JPEGs served per stream (MJPEG parts + single frames)
            "tiles_sent": self._http.tiles_sent,
            "closed": self.closed,
            "summary": per_rep,
        }

    def _fps(self) -> float:
        times = self._send_times
        if len(times) < 2:
            return 0.0
        now = time.perf_counter()
        recent = [t for t in times if now - t <= 2.0]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    # -- renderer thread -------------------------------------------------------------------

    def _stale(self, key: StreamKey, seq: int) -> bool:
        cached = self._cache.get(key)
        return (cached is None or cached.seq < seq) and self._failed.get(key) != seq

    def _render_loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self.closed and (self._frame is None
                                           or not any(self._stale(k, self._frame[0]) for k in self._wanted)):
                    cond.wait()
                if self.closed:
                    return
                assert self._frame is not None
                seq, input_frame, images = self._frame
                keys = [k for k in self._wanted if self._stale(k, seq)]
                self._wanted.difference_update(keys)
                tiles = self._layout(tuple(self._names), input_frame) if TILES in keys else None
            for key in keys:
                try:
                    if key is TILES:
                        assert tiles is not None
                        img = tiles.render(images)
                    elif key in images:
                        img = as_rgb8(key, images[key])
                    else:
                        continue  # not in this frame: the client waits for one that has it
                    made = make_jpeg(seq, encode_jpeg(np.ascontiguousarray(img), self.jpeg_quality))
                except Exception:  # noqa: BLE001 - a bad preview must not stop the viewer
                    logger.warning("web viewer: cannot show %s of frame %d", key or "the tiles", seq, exc_info=True)
                    with cond:
                        self._failed[key] = seq
                    continue
                with cond:
                    self._cache[key] = made
            self._loop.wake()



def open_web_target(spec: str, *, host: str = "127.0.0.1", include_input: bool | None = None,
                    **_: Any) -> WebViewerTarget:
    """``web`` (port 8080) or ``web://HOST:PORT``: the live viewer for browsers."""
    h, p = (host, 8080) if spec == "web" else hostport(spec, host, 8080)
    return WebViewerTarget(p, h, include_input=True if include_input is None else include_input)
