"""`vre metadata OUTPUT_DIR`: regenerate an export's metadata from the files on disk."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(args: list[str]) -> int:
    """`vre metadata OUTPUT_DIR`; prints the frames found per representation."""
    from vrecore.export.metadata import regenerate_metadata

    parser = argparse.ArgumentParser(prog="vre metadata", description="Regenerate an export's metadata from disk.")
    parser.add_argument("output_dir")
    ns = parser.parse_args(args)
    counts = regenerate_metadata(ns.output_dir)
    for name, n in counts.items():
        print(f"{name}: {n} frames")
    if not counts:
        print(f"vre metadata: no representation folders found in {ns.output_dir}", file=sys.stderr)
    return 0
