"""Frame sources: random, batched access to the decoded frames of a video or image folder."""
from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrecore.errors import ConfigError, SourceError

__all__ = ["DecordSource", "FrameSource", "ImageFolderSource", "PyAVSource", "open_video", "ranges", "select_frames"]

log = logging.getLogger("vrecore.frames.video")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BACKENDS = ("auto", "decord", "pyav")


class FrameSource(ABC):
    """Frame i of a source always has the same pixels, whatever the backend and access order."""

    path: Path
    num_frames: int
    fps: float | None
    height: int
    width: int

    @abstractmethod
    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 RGB frames (B, H, W, 3) in the order of ``indices``."""

    def close(self) -> None:  # noqa: B027 - optional hook: most sources hold nothing to release
        """Release decoder resources."""

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return self.num_frames

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_indices(self, indices: Sequence[int]) -> np.ndarray:
        ix = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(ix) and (ix.min() < 0 or ix.max() >= self.num_frames):
            bad = int(ix.min()) if ix.min() < 0 else int(ix.max())
            raise SourceError(f"frame {bad} is out of range for '{self.path}', which has {self.num_frames} "
                              f"frames (0..{self.num_frames}, end exclusive)")
        return ix


def open_video(path: str | os.PathLike[str], backend: str = "auto") -> FrameSource:
    """Open a video file (decord, or PyAV) or a folder of images as a FrameSource."""
    p = Path(path).expanduser()
    if backend not in BACKENDS:
        raise ConfigError(f"video_backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if not p.exists():
        raise SourceError(f"video '{path}' does not exist; check the path")
    if p.is_dir():
        return ImageFolderSource(p)
    if backend == "auto":
        try:
            import decord  # noqa: F401
        except ImportError:
            return PyAVSource(p)
        source = DecordSource(p)
        try:
            source.keep_first()
        except SourceError as e:
            # decord fails on some frame sizes (seen: 16x16, 32x32, 96x64) and some damaged files;
            # PyAV decodes them frame-exactly (or says precisely which frame is damaged).
            log.info("decord cannot decode '%s' (%s); using PyAV", p, e)
            source.close()
            return PyAVSource(p)
        return source
    return DecordSource(p) if backend == "decord" else PyAVSource(p)


class _Probe:
    """What demuxing (no decoding) says about a video: exact frame count and presentation times."""

    def __init__(self, path: Path) -> None:
        import av

        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError, OSError) as e:
            raise SourceError(f"video '{path}' cannot be read ({_short(e)}); check that it is a valid video file") from e
        try:
            if not container.streams.video:
                raise SourceError(f"'{path}' has no video stream; give a video file")
            stream = container.streams.video[0]
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.time_base = stream.time_base
            pts: list[int] = []
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    pts.append(packet.pts if packet.pts is not None else (packet.dts if packet.dts is not None else len(pts)))
            except av.error.FFmpegError as e:
                raise SourceError(f"video '{path}' is corrupt ({_short(e)}); re-encode or replace it") from e
            # The container header's frame count is not trusted: it can over-report (decord then hangs).
            self.pts = sorted(pts)
        finally:
            container.close()
        if not self.pts or not self.width:
            raise SourceError(f"video '{path}' has no decodable frames; check the file")


def _short(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


class DecordSource(FrameSource):
    """Video file through decord (the decord2 distribution): fast batched access."""

    def __init__(self, path: Path) -> None:
        import decord

        self.path = path
        probe = _Probe(path)
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        except Exception as e:  # decord raises its own DECORDError for unreadable files
            raise SourceError(f"video '{path}' cannot be read by decord ({_short(e)}); "
                              f"try video_backend=pyav or check the file") from e
        self.num_frames = min(len(self._reader), len(probe.pts))
        self.fps, self.height, self.width = probe.fps, probe.height, probe.width
        self._first: np.ndarray | None = None

    def keep_first(self) -> None:
        """Decode frame 0 now (a check that decord can decode this video at all) and keep it for the first batch
        that asks for it: that batch then goes on from frame 1 without seeking back to the start."""
        self._first = self.get_batch([0])[0]

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        ix = self._check_indices(indices)
        # decord seeks once per unsorted index: decode sorted unique indices, then reorder.
        unique, inverse = np.unique(ix, return_inverse=True)
        first = None
        if self._first is not None and len(unique) and unique[0] == 0:
            first, self._first = self._first, None
        wanted = unique[1:] if first is not None else unique
        try:
            try:
                decoded = self._reader.get_batch(wanted.tolist()).asnumpy() if len(wanted) else None
            except Exception:
                if first is None:
                    raise
                # Going on from frame 1 can fail where decoding from the start does not (seen: decord's threaded
                # decoder on a file damaged further on, at random under load): the batch again, from frame 0.
                first, wanted = None, unique
                decoded = self._reader.get_batch(wanted.tolist()).asnumpy()
        except Exception as e:
            raise SourceError(f"video '{self.path}': frames {wanted[0]}..{wanted[-1] + 1} could not be decoded "
                              f"({_short(e)}); the file may be truncated or damaged: re-encode it, select other "
                              f"frames, or run with exception_mode=skip") from e
        if first is None:
            frames = decoded
        elif decoded is None:
            frames = first[None]
        else:
            frames = np.concatenate([first[None], decoded])
        assert frames is not None
        return frames if len(unique) == len(ix) and (unique == ix).all() else frames[inverse]

    def close(self) -> None:
        self._reader = None
        self._first = None


class PyAVSource(FrameSource):
    """Video file through PyAV: frame-exact seeking by presentation timestamp, low memory."""

    _FORWARD_LIMIT = 96  # decode forward instead of seeking when the target is this close

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        probe = _Probe(path)
        self._pts = probe.pts
        self._index = {p: i for i, p in enumerate(self._pts)}
        self.num_frames = len(self._pts)
        self.fps, self.height, self.width = probe.fps, probe.height, probe.width
        self._container: Any = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._frames: Any = None
        self._next = 0  # index of the frame the decoder yields next

    def _restart(self, target: int) -> None:
        self._container.seek(int(self._pts[target]), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._next = -1  # unknown until the first frame arrives

    def _read(self, target: int) -> np.ndarray:
        if self._frames is None or target < self._next or target - max(self._next, 0) > self._FORWARD_LIMIT:
            self._restart(target)
        for _attempt in range(2):
            for frame in self._frames:
                i = self._index.get(frame.pts if frame.pts is not None else -1)
                if i is None:
                    continue
                self._next = i + 1
                if i == target:
                    return frame.to_ndarray(format="rgb24")
                if i > target:
                    break
            # Overshot or ran out (an open GOP after the seek): decode from the start once.
            self._container.seek(0, stream=self._stream, backward=True)
            self._frames = self._container.decode(self._stream)
            self._next = 0
        raise SourceError(f"video '{self.path}': frame {target} could not be decoded; the file may be truncated or "
                          f"damaged: re-encode it, select other frames, or run with exception_mode=skip")

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        import av

        ix = self._check_indices(indices)
        unique, inverse = np.unique(ix, return_inverse=True)
        out = np.empty((len(unique), self.height, self.width, 3), np.uint8)
        try:
            for k, i in enumerate(unique):
                out[k] = self._read(int(i))
        except av.error.FFmpegError as e:
            raise SourceError(f"video '{self.path}' is corrupt near frame {i} ({_short(e)})") from e
        return out if len(unique) == len(ix) and (unique == ix).all() else out[inverse]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


class ImageFolderSource(FrameSource):
    """A folder of images (png, jpg...) in natural name order; all must have one size."""

    def __init__(self, path: Path) -> None:
        from PIL import Image

        self.path = path
        self.files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
        if not self.files:
            raise SourceError(f"folder '{path}' has no images ({', '.join(IMAGE_EXTENSIONS)}); give a video "
                              f"file or a folder of frames")
        self.num_frames = len(self.files)
        self.fps = None
        problems = []
        for f in self.files:  # the frame size is the first readable image's; a broken one fails when read
            try:
                with Image.open(f) as im:
                    self.width, self.height = im.size
                break
            except OSError as e:
                problems.append(f"'{f}' ({_short(e)})")
        else:
            raise SourceError(f"folder '{path}': no image can be read (first: {problems[0]}); check the files")

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image

        ix = self._check_indices(indices)
        out = np.empty((len(ix), self.height, self.width, 3), np.uint8)
        for k, i in enumerate(ix):
            try:
                with Image.open(self.files[i]) as im:
                    frame = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise SourceError(f"image '{self.files[i]}' (frame {i}) cannot be read ({_short(e)}); replace or "
                                  f"remove it, or run with exception_mode=skip to leave that frame out") from e
            if frame.shape[:2] != (self.height, self.width):
                raise SourceError(f"image '{self.files[i]}' is {frame.shape[1]}x{frame.shape[0]} but the folder's "
                                  f"first image is {self.width}x{self.height}; all frames must have one size")
            out[k] = frame
        return out


_RANGE = re.compile(r"^\s*(-?\d*)\s*\.\.\s*(-?\d*)\s*(?::\s*(-?\d+))?\s*$")
_FIX = "use A..B (end exclusive), A..B:N (every Nth), a list like [0,5,9], or leave frames out for all"


def select_frames(spec: Any, num_frames: int) -> np.ndarray:
    """Frame indices from a selection: None/'all', 'A..B' (end exclusive), 'A..B:N' (every Nth), or a list.

    A selection that selects nothing, a step below 1, and indices outside the video are errors that
    name what is wrong.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return np.arange(num_frames)
    if isinstance(spec, str) and not spec.strip():
        raise ConfigError(f"frames='' selects nothing; {_FIX}")
    if isinstance(spec, bool):
        raise ConfigError(f"frames={spec!r} is not a frame selection; {_FIX}")
    if isinstance(spec, int):
        ix = np.array([spec])
    elif isinstance(spec, str) and _RANGE.match(spec):
        a, b, step = _RANGE.match(spec).groups()  # type: ignore[union-attr]
        start, stop = int(a or 0), int(b) if b else num_frames
        if step is not None and int(step) < 1:
            raise ConfigError(f"frames={spec}: the step must be 1 or more (every Nth frame), got {step}")
        if a and b and start > stop:
            raise ConfigError(f"frames={spec} is reversed: a range is start..end with the end last (end exclusive); "
                              f"write frames={stop}..{start}")
        if start < 0 or stop > num_frames or start >= stop:
            raise SourceError(f"frames={spec} is out of range: the video has {num_frames} frames "
                              f"(valid: 0..{num_frames}); use 0 ≤ start < end ≤ {num_frames}")
        return np.arange(start, stop, int(step or 1))
    elif isinstance(spec, str) and (dash := re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", spec)):
        raise ConfigError(f"frames={spec} is not a frame selection: a range is written with two dots, "
                          f"frames={dash[1]}..{dash[2]} (end exclusive)")
    elif isinstance(spec, str) and re.fullmatch(r"\s*\[?[-\d,\s]*\]?\s*", spec):
        ix = np.array([int(t) for t in re.findall(r"-?\d+", spec)], dtype=np.int64)
    elif isinstance(spec, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
        ix = np.array(spec, dtype=np.int64)
    else:
        raise ConfigError(f"frames={spec!r} is not a frame selection; {_FIX}")
    if len(ix) == 0:
        raise ConfigError(f"frames={spec!r} selects no frames; {_FIX}")
    bad = sorted({int(i) for i in ix if i < 0 or i >= num_frames})
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SourceError(f"frames={_as_text(spec)} has entries out of range ({shown}): the video has {num_frames} "
                          f"frames (valid: 0..{num_frames}, end exclusive)")
    return np.unique(ix)


def _as_text(spec: Any) -> str:
    return "[" + ",".join(map(str, spec)) + "]" if isinstance(spec, (list, tuple)) else str(spec)


def ranges(frames: Sequence[int]) -> str:
    """Compact text of frame indices in the notation of ``frames=``: '0..10, 12, 20..25' (ends exclusive)."""
    out, frames = [], sorted(set(frames))
    k = 0
    while k < len(frames):
        j = k
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        out.append(str(frames[k]) if j == k else f"{frames[k]}..{frames[j] + 1}")
        k = j + 1
    return ", ".join(out)
