"""`vre video OUTPUT_DIR`: a preview MP4 of the collages over time (`vrecore.visual.preview_video`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vrecore.cli._visual_args import SETTINGS_HELP, names_list, parse_settings, positive_int, printer
from vrecore.errors import ConfigError
from vrecore.visual.preview_video import DEFAULT_MAX_WIDTH, VIDEO_FILE, write_preview_video

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """`vre video OUT [--fps F] [--output FILE] [frames=...] [representations=...] [rows=N] [cols=N] [max_width=PX]`."""
    keys = ("frames", "representations", "rows", "cols", "max_width")
    parser = argparse.ArgumentParser(
        prog="vre video", description="A preview MP4 of the collages (every representation side by side, made from "
        "the stored data) at the source video's frame rate; representations=NAME for one alone.",
        epilog="settings:\n  " + "\n  ".join(SETTINGS_HELP[k] for k in keys),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="an export: its output folder, a .zarr folder or a store's URL "
                        "(s3://...: give --output)")
    parser.add_argument("settings", nargs="*", default=[], metavar="KEY=VALUE")
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
