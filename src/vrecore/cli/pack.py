"""`vre pack OUT --to webdataset|zarr`: an export as webdataset shards or a zarr store (needs vrecore[pack])."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> int:
    from vrecore.data.packing import PACK_FORMATS, pack, pack_summary
    from vrecore.errors import ConfigError

    parser = argparse.ArgumentParser(prog="vre pack", description=(
        "Write an export (or a folder of exports) as webdataset tar shards (one sample per frame, every task, "
        "shuffled across shards), or copy one export, from any store, into a zarr store (-o NAME.zarr: sharded "
        "arrays, records and fingerprints; `vre verify` checks it). MultiTaskDataset and `vre read` open the result "
        "like the export."))
    parser.add_argument("path", help="an export folder, a folder of exports (webdataset), a .zarr export or a "
                        "store's URL (zarr; give -o)")
    parser.add_argument("--to", required=True, choices=PACK_FORMATS, dest="fmt")
    parser.add_argument("-o", "--output", type=Path,
                        help="destination (default: next to PATH, PATH_wds or PATH.zarr)")
    parser.add_argument("--tasks", help="comma-separated tasks (default: every stored one)")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per webdataset shard (1000)")
    parser.add_argument("--no-shuffle", action="store_true", help="keep frame order in the shards")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    ns = parser.parse_args(argv)
    if "://" in ns.path and ns.output is None:
        raise ConfigError(f"'{ns.path}' is a store's URL; give -o, the local destination of the pack")
    path = Path(ns.path)
    dest = ns.output or path.with_name(path.name + ("_wds" if ns.fmt == "webdataset" else ".zarr"))
    source = ns.path if "://" in ns.path else path
    summary = pack(source, dest, ns.fmt, tasks=ns.tasks.split(",") if ns.tasks else None, shard_size=ns.shard_size,
                   shuffle=not ns.no_shuffle, seed=ns.seed, overwrite=ns.overwrite)
    pack_summary(summary, lambda line: print(f"vre pack: {line}", file=sys.stderr))
    what = "shard(s)" if ns.fmt == "webdataset" else "array(s)"
    print(f"vre pack: wrote {summary['files']} {what} to {dest}", file=sys.stderr)
    return 0
