"""`images://FOLDER[?fps=N]`: a folder of pictures replayed as a live stream (a camera that saved to disk)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from vrecore.plugin import ConfigError, StreamSource

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolderStream(StreamSource):
    """Each picture of a folder in name order, as RGB frames, paced at ``fps`` (0: as fast as they are read)."""

    def __init__(self, folder: Path, *, fps: float = 0.0, width: int | None = None, height: int | None = None) -> None:
        self.folder, self._fps, self._size = folder, fps, (width, height) if width and height else None
        self._files: list[Path] = []
        self._next = 0
        self._stop = threading.Event()
        self._last = 0.0

    def open(self) -> None:
        if not self._files:
            self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in EXTENSIONS)
            if not self._files:
                raise ConfigError(f"images://{self.folder}: no pictures ({', '.join(EXTENSIONS)}) in that folder")

    def read(self) -> np.ndarray | None:
        if self._stop.is_set() or self._next >= len(self._files):
            return None
        if self._fps > 0:
            wait = self._last + 1 / self._fps - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return None
            self._last = time.monotonic()
        with Image.open(self._files[self._next]) as image:
            rgb = image.convert("RGB")
            if self._size is not None and rgb.size != self._size:
                rgb = rgb.resize(self._size, Image.Resampling.BILINEAR)
            frame = np.array(rgb)
        self._next += 1
        return frame

    def close(self) -> None:
        self._stop.set()

    def interrupt(self) -> None:
        self._stop.set()

    @property
    def fps(self) -> float | None:
        return self._fps or None


def open_source(spec: str, *, width: int | None = None, height: int | None = None, **_: Any) -> ImageFolderStream:
    """The source named by ``images://FOLDER?fps=N`` (what `register_sources` points vre at)."""
    parts = urlsplit(spec)
    folder = Path(parts.netloc + parts.path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{spec!r}: {folder} is not a folder; write images:///absolute/folder or images://relative/folder")
    query = parse_qs(parts.query)
    try:
        fps = float(query.pop("fps", ["0"])[0])
    except ValueError:
        raise ConfigError(f"{spec!r}: fps must be a number of frames per second") from None
    if query:
        raise ConfigError(f"{spec!r}: unknown option(s) {', '.join(sorted(query))}; the only one is fps=N")
    return ImageFolderStream(folder, fps=fps, width=width, height=height)
