"""`vre report OUTPUT_DIR`: one self-contained HTML page about an export (`vrecore.visual.report`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vrecore.visual.report import REPORT_FILE, write_report

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """`vre report OUT [--output FILE]`."""
    parser = argparse.ArgumentParser(
        prog="vre report", description="Write one self-contained HTML page about an export (graph, frames, time per "
        "frame, runs, sample collages, value statistics), made from its metadata and files.")
    parser.add_argument("output_dir", help="an export: its output folder, a .zarr folder or a store's URL "
                        "(s3://...: give --output)")
    parser.add_argument("--output", type=Path, help=f"the HTML file (default: OUT/{REPORT_FILE})")
    ns = parser.parse_args(argv)
    path = write_report(ns.output_dir, ns.output, warn=lambda m: print(f"vre report: warning: {m}", file=sys.stderr))
    print(f"vre report: {path}", file=sys.stderr)
    return 0
