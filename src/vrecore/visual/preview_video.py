"""`vre video OUT`: a preview MP4 of the collages over time, at the source video's frame rate.

Collages are drawn in memory by the same `CollageMaker` as `vre collage` (a few frames ahead, on a
pool of threads) and encoded with PyAV: H.264 (libx264) when the installed FFmpeg has it, else the
first encoder available of OpenH264 and MPEG-4 part 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.tiles import BACKGROUND
from vrecore.visual.args import SETTINGS_HELP, names_list, parse_settings, positive_int, printer, progress_bar
from vrecore.visual.collage import CollageMaker, render_in_order, select
from vrecore.visual.stored import ExportView

__all__ = ["ENCODERS", "VIDEO_FILE", "VideoResult", "choose_encoder", "main", "write_preview_video"]

VIDEO_FILE = "preview.mp4"
DEFAULT_MAX_WIDTH = 1920
"""Preview videos are at most this wide (a size every player decodes smoothly)."""
ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")
"""Encoders tried in this order; the first that the installed FFmpeg has is used."""
DEFAULT_FPS = 25.0


@attrs.frozen
class VideoResult:
    """What `write_preview_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    codec: str


def choose_encoder() -> str:
    """The first encoder of `ENCODERS` that this PyAV's FFmpeg has."""
    import av

    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different errors for an unknown codec across versions
            continue
        return name
    raise ConfigError(f"the installed PyAV (FFmpeg) has none of the video encoders {', '.join(ENCODERS)}; "
                      f"install a PyAV wheel from PyPI (pip install --force-reinstall av), which includes libx264")


def write_preview_video(export: str | os.PathLike[str] | ExportView, output: str | os.PathLike[str] | None = None, *,
                        fps: float | None = None, frames: Any = None, representations: Sequence[str] | None = None,
                        rows: int | None = None, cols: int | None = None, max_width: int | None = DEFAULT_MAX_WIDTH,
                        workers: int | None = None, crf: int = 23, progress: bool = False,
                        warn: Callable[[str], None] | None = None) -> VideoResult:
    """Write the collages of the selected stored frames as an MP4 (default ``<export>/preview.mp4``); with one
    name in ``representations``, a video of that representation alone."""
    import av

    view = export if isinstance(export, ExportView) else ExportView(export, warn=warn)
    maker = CollageMaker(view, representations, rows=rows, cols=cols, max_width=max_width)
    chosen = select(maker.frames(), frames, view.video().get("frames"))
    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps {fps}: give a positive frame rate")
    if fps is None:
        fps = view.fps
        if fps is None:
            view.warn(f"no frame rate is recorded in {view.root}; the preview plays at {DEFAULT_FPS:g} frames/s "
                      f"(--fps sets another)")
            fps = DEFAULT_FPS
    rate = Fraction(fps).limit_denominator(1001)
    path = Path(output) if output is not None else view.root / VIDEO_FILE
    if path.suffix.lower() != ".mp4":
        raise ConfigError(f"--output {path}: the preview is an MP4 file; give a name ending in .mp4")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {path}: the folder {path.parent} does not exist; create it or choose another")
    lay = maker.layout
    width, height = lay.width + lay.width % 2, lay.height + lay.height % 2  # 4:2:0 video needs even sizes
    codec = choose_encoder()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    bar = progress_bar(len(chosen), "video", progress)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream: Any = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec in ("libx264", "h264"):
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
            for _, image in render_in_order(maker, chosen, workers):
                canvas[:lay.height, :lay.width] = image
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    container.mux(packet)
                if bar is not None:
                    bar.update(1)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except OSError as e:
        from vrecore.store import describe_os_error

        raise StorageError(describe_os_error(e, f"preview video '{path}'")) from e
    finally:
        tmp.unlink(missing_ok=True)
        if bar is not None:
            bar.close()
    return VideoResult(path, len(chosen), width, height, rate, codec)


def main(argv: list[str]) -> int:
    """`vre video OUT [--fps F] [--output FILE] [frames=...] [representations=...] [rows=N] [cols=N] [max_width=PX]`."""
    keys = ("frames", "representations", "rows", "cols", "max_width")
    parser = argparse.ArgumentParser(
        prog="vre video", description="A preview MP4 of the collages (every representation side by side, made from "
        "the stored data) at the source video's frame rate; representations=NAME for one alone.",
        epilog="settings:\n  " + "\n  ".join(SETTINGS_HELP[k] for k in keys),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path, help="the output folder of an export")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--output", type=Path, help=f"the MP4 file (default: OUT/{VIDEO_FILE})")
    parser.add_argument("--fps", type=float, help="frames per second (default: the source video's)")
    parser.add_argument("--workers", type=int, help="drawing threads (default: the cores, at most 8)")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality, 0 (lossless) to 51 (default: 23)")
    ns, settings = parse_settings(parser, argv, keys)
    if ns.workers is not None and ns.workers < 1:
        raise ConfigError(f"--workers {ns.workers}: give 1 or more")
    if not 0 <= ns.crf <= 51:
        raise ConfigError(f"--crf {ns.crf}: give 0 to 51")
    max_width = positive_int("max_width", settings.get("max_width")) if "max_width" in settings else DEFAULT_MAX_WIDTH
    result = write_preview_video(ns.output_dir, ns.output, fps=ns.fps, frames=settings.get("frames"),
                                 representations=names_list(settings.get("representations")),
                                 rows=positive_int("rows", settings.get("rows")),
                                 cols=positive_int("cols", settings.get("cols")), max_width=max_width,
                                 workers=ns.workers, crf=ns.crf, progress=sys.stderr.isatty(), warn=printer("video"))
    print(f"vre video: {result.path} ({result.frames} frames, {result.width}x{result.height}, "
          f"{float(result.fps):g} frames/s, {result.codec})", file=sys.stderr)
    return 0
