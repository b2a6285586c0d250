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
    from vrecore.errors import ConfigError
    from vrecore.store.location import choose_store

    store = choose_store(ns.output_dir, what="output_dir").extension.name
    if store != "directory":
        raise ConfigError(f"'{ns.output_dir}' is an export of the '{store}' store, which keeps its metadata in each "
                          f"array's zarr.json, rewritten by every run: `vre metadata` rebuilds only an export "
                          f"folder's files; `vre verify {ns.output_dir}` checks it")
    counts = regenerate_metadata(ns.output_dir)
    for name, n in counts.items():
        print(f"{name}: {n} frames")
    if not counts:
        print(f"vre metadata: no representation folders found in {ns.output_dir}", file=sys.stderr)
    return 0
