"""`vre collage OUTPUT_DIR`: per frame, one labelled picture of every representation (`vrecore.visual.collage`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vrecore.cli._visual_args import SETTINGS_HELP, names_list, parse_settings, positive_int, printer
from vrecore.errors import ConfigError

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """`vre collage OUT [frames=...] [representations=...] [rows=N] [cols=N] [max_width=PX] [--output DIR]`."""
    from vrecore.visual.collage import DEFAULT_MAX_WIDTH, write_collages

    keys = ("frames", "representations", "rows", "cols", "max_width")
    parser = argparse.ArgumentParser(
        prog="vre collage", description="Per frame, one JPEG of every representation's preview side by side "
        "(made from the stored data), each tile labelled; written to OUT/.collage/<frame>.jpg.",
        epilog="settings:\n  " + "\n  ".join(SETTINGS_HELP[k] for k in keys),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="an export: its output folder, a .zarr folder or a store's URL "
                        "(s3://...: give --output)")
    parser.add_argument("settings", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", type=Path, help="folder for the collages (default: OUT/.collage)")
    parser.add_argument("--workers", type=int, help="drawing threads (default: the cores, at most 8)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality, 1-100 (default: 90)")
    ns, settings = parse_settings(parser, argv, keys)
    if not 1 <= ns.quality <= 100:
        raise ConfigError(f"--quality {ns.quality}: give 1 to 100")
    if ns.workers is not None and ns.workers < 1:
        raise ConfigError(f"--workers {ns.workers}: give 1 or more")
    max_width = positive_int("max_width", settings.get("max_width")) if "max_width" in settings else DEFAULT_MAX_WIDTH
    result = write_collages(ns.output_dir, ns.output, frames=settings.get("frames"),
                            representations=names_list(settings.get("representations")),
                            rows=positive_int("rows", settings.get("rows")), cols=positive_int("cols", settings.get("cols")),
                            max_width=max_width, workers=ns.workers, quality=ns.quality, progress=sys.stderr.isatty(),
                            warn=printer("collage"))
    lay = result.layout
    paths = result.paths()
    where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} .. {paths[-1].name}"
    print(f"vre collage: {len(paths)} collage(s) of {len(lay.names)} representations ({lay.rows}x{lay.cols} tiles, "
          f"{lay.width}x{lay.height} pixels): {where}", file=sys.stderr)
    return 0
