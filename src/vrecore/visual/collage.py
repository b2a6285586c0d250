"""Collages: per frame, one image of every representation's preview side by side, each tile labelled.

The tiles are `vrecore.visual.tiles` grids, the same drawing as the live web viewer. Previews come from the
stored data (`vrecore.visual.stored`); a representation without a frame gets a labelled "no frame"
tile in its place. Frames are drawn, encoded and written by a pool of threads (NumPy, OpenCV and
the JPEG encoder release the GIL).
"""
from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.store.safe_paths import atomic_write, directory
from vrecore.visual.stored import ExportView
from vrecore.visual.tiles import TileLayout, TileRenderer, plan_tiles

__all__ = ["COLLAGE_FOLDER", "CollageMaker", "CollageResult", "collage_folder", "encode_jpeg", "map_in_order",
           "progress_bar", "save_jpeg", "select", "write_collages"]

T = TypeVar("T")

COLLAGE_FOLDER = ".collage"
"""Where collages go inside an export: hidden, so that dataset readers never take it for a representation."""
DEFAULT_MAX_WIDTH = 3840
"""Collages wider than this (many tiles of a large frame) are scaled down: a 4K-wide picture at most."""


class CollageMaker:
    """Draws the collage of any frame of an export: one labelled tile per representation, in a fixed grid."""

    def __init__(self, view: ExportView, names: Sequence[str] | None = None, *, rows: int | None = None,
                 cols: int | None = None, max_width: int | None = DEFAULT_MAX_WIDTH) -> None:
        names = list(names) if names else view.names
        unknown = [n for n in names if n not in view.representations]
        if unknown:
            raise ConfigError(f"representations={','.join(names)}: {', '.join(repr(n) for n in unknown)} "
                              f"{'is' if len(unknown) == 1 else 'are'} not in {view.location}; choose from "
                              f"{', '.join(view.names)}")
        self.view, self.names = view, names
        self.layout: TileLayout = plan_tiles(names, view.frame_size(), rows=rows, cols=cols, max_width=max_width)
        self._renderer = TileRenderer(self.layout)

    def render(self, frame: int) -> np.ndarray:
        """uint8 (height, width, 3) collage of one frame."""
        return self.compose({name: self.view.preview(name, frame) for name in self.names})

    def compose(self, images: Mapping[str, np.ndarray | None]) -> np.ndarray:
        """The collage of previews already made (a name without one gets the "no frame" tile)."""
        return self._renderer.render(images)

    def frames(self) -> list[int]:
        """Frames stored by any of its representations."""
        return self.view.frames(self.names)


@attrs.frozen
class CollageResult:
    """What `write_collages` wrote."""

    folder: Path
    frames: tuple[int, ...]
    layout: TileLayout

    def paths(self) -> list[Path]:
        return [self.folder / f"{i}.jpg" for i in self.frames]


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 RGB image (OpenCV's encoder: about twice as fast as Pillow's on large pictures)."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ConfigError(f"OpenCV could not encode a {image.shape} picture as JPEG")
    return bytes(buffer)


def select(view_frames: Sequence[int], spec: Any, num_frames: int | None) -> list[int]:
    """The stored frames that a ``frames=`` selection names (every stored frame when it is None)."""
    from vrecore.frames.video import select_frames

    if spec is None:
        return list(view_frames)
    total = max(num_frames or 0, (max(view_frames) + 1) if view_frames else 0)
    wanted = [int(i) for i in select_frames(spec, total)]
    stored = set(view_frames)
    chosen = [i for i in wanted if i in stored]
    if not chosen:
        from vrecore.frames.video import ranges

        raise ConfigError(f"frames={spec} names no stored frame; stored frames: {ranges(list(view_frames)) or 'none'}")
    return chosen


def map_in_order(work: Callable[[int], T], frames: Sequence[int], workers: int | None = None,
                 ahead: int | None = None) -> Iterator[tuple[int, T]]:
    """(frame, work(frame)) in the order of ``frames``, computed by ``workers`` threads at most ``ahead`` frames
    ahead of the consumer: memory stays bounded, and an interruption waits only for the frames in flight."""
    workers = workers or default_workers()
    ahead = ahead or 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vre-collage") as pool:
        pending: deque[tuple[int, Future[T]]] = deque()
        it = iter(frames)
        for frame in it:
            pending.append((frame, pool.submit(work, frame)))
            if len(pending) >= ahead:
                break
        try:
            while pending:
                frame, future = pending.popleft()
                yield frame, future.result()
                following = next(it, None)
                if following is not None:
                    pending.append((following, pool.submit(work, following)))
        finally:
            for _, future in pending:
                future.cancel()


def default_workers() -> int:
    """Threads for drawing: the cores this process may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def write_collages(export: str | os.PathLike[str] | ExportView, output: str | os.PathLike[str] | None = None, *,
                   frames: Any = None, representations: Sequence[str] | None = None, rows: int | None = None,
                   cols: int | None = None, max_width: int | None = DEFAULT_MAX_WIDTH, workers: int | None = None,
                   quality: int = 90, progress: bool = False,
                   warn: Callable[[str], None] | None = None) -> CollageResult:
    """Write ``<output>/<frame>.jpg`` (default ``<export>/.collage``) for the selected stored frames."""
    view = export if isinstance(export, ExportView) else ExportView(export, warn=warn)
    maker = CollageMaker(view, representations, rows=rows, cols=cols, max_width=max_width)
    chosen = select(maker.frames(), frames, view.video().get("frames"))
    folder = collage_folder(view, output)

    def one(frame: int) -> int:
        save_jpeg(folder / f"{frame}.jpg", maker.render(frame), quality)
        return frame

    bar = progress_bar(len(chosen), "collage", progress)
    try:
        for _ in map_in_order(one, chosen, workers):
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return CollageResult(folder, tuple(chosen), maker.layout)


def collage_folder(view: ExportView, output: str | os.PathLike[str] | None) -> Path:
    """The folder collages go to (``output``, default ``<export>/.collage``), created."""
    folder = Path(output) if output is not None else view.output_path(COLLAGE_FOLDER, "--output DIR")
    try:
        if output is None:
            with directory(view.root, COLLAGE_FOLDER, create=True):  # never through a link in the export
                pass
        else:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"collage folder '{folder}' cannot be created ({e.strerror}); choose another --output") from e
    return folder


def save_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """Write ``image`` as a JPEG under a temporary name and rename: a reader never sees half a picture (and a link
    at ``path`` is refused, not followed or replaced)."""
    data = encode_jpeg(image, quality)
    try:
        atomic_write(path.parent, path.name, lambda f: f.write(data),
                     f".{path.name}.tmp-{os.getpid()}-{threading.get_ident():x}")
    except OSError as e:
        from vrecore.store.files import describe_os_error

        raise StorageError(describe_os_error(e, f"collage '{path}'")) from e


def progress_bar(total: int, what: str, enabled: bool) -> Any:
    """A tqdm bar on stderr counting frames, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="frame", dynamic_ncols=True, file=sys.stderr)
