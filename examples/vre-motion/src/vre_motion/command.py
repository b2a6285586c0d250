"""`vre motion OUT [--name NAME]`: how much moves in each stored frame of an export's `motion/difference`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    """Print one line per frame (index, mean change, share of pixels that changed by more than 10%)."""
    parser = argparse.ArgumentParser(prog="vre motion", description=__doc__)
    parser.add_argument("output_dir", type=Path, help="an export folder")
    parser.add_argument("--name", default="motion", help="the representation's name in the export (default: motion)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    folder = args.output_dir / args.name / "npz"
    if not folder.is_dir():
        print(f"vre motion: error: {folder} does not exist; export a motion/difference representation named "
              f"'{args.name}' first (or give --name)", file=sys.stderr)
        return 2
    for path in sorted(folder.glob("*.npz"), key=lambda p: int(p.stem)):
        with np.load(path, allow_pickle=False) as npz:
            change = npz["arr_0"].astype(np.float32)
        mean, moving = float(change.mean()), float((change > 0.1).mean())
        if args.json:
            print(json.dumps({"frame": int(path.stem), "mean": round(mean, 6), "moving": round(moving, 6)}))
        else:
            print(f"{path.stem}\t{mean:.4f}\t{moving:.2%}")
    return 0
