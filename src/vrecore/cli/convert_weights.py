"""`vre convert-weights SRC DST`: convert a legacy .pth/.ckpt checkpoint to safetensors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vrecore.errors import WeightsError
from vrecore.weights.convert import convert_checkpoint, convert_for_variant
from vrecore.weights.loading import load_safetensors

__all__ = ["main"]


def _summary(out: Path) -> str:
    files = [out] if out.is_file() else sorted(p for p in out.rglob("*.safetensors"))
    tensors = [t for f in files for t in load_safetensors(f).values()]
    return f"{len(tensors)} tensors, {sum(int(t.numel()) for t in tensors):,} values"


def main(argv: list[str]) -> int:
    """``vre convert-weights SRC DST [--key K] [--strip-prefix P] [--pickled-modules] [--variant NAME]``; returns the
    exit code."""
    parser = argparse.ArgumentParser(
        prog="vre convert-weights",
        description="Convert a legacy .pth/.ckpt checkpoint to .safetensors (torch.load weights_only=True only).",
    )
    parser.add_argument("src", help="input checkpoint (.pth, .pt, .ckpt, .bin)")
    parser.add_argument("dst", help="output .safetensors file (a folder for a --variant of several files)")
    parser.add_argument("--key", default=None, help="sub-dict holding the tensors, e.g. state_dict or model/ema")
    parser.add_argument("--strip-prefix", default=None, help="prefix removed from tensor names, e.g. model.")
    parser.add_argument("--pickled-modules", action="store_true",
                        help="the checkpoint pickles whole torch modules of another package's classes (e.g. "
                             "Ultralytics .pt files): read them as inert stand-ins, without that code, and keep their "
                             "tensors as float32")
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="make the files of this convert-locally weight variant (see `vre weights list`)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / help
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        if args.variant is not None:
            if args.key or args.strip_prefix or args.pickled_modules:
                raise WeightsError("--variant applies the variant's own recipe: drop --key, --strip-prefix and "
                                   "--pickled-modules")
            out = convert_for_variant(args.src, args.dst, args.variant)
        else:
            out = convert_checkpoint(args.src, args.dst, key=args.key, strip_prefix=args.strip_prefix,
                                     pickled_modules=args.pickled_modules)
        summary = _summary(out)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {out} ({summary})")
    if args.variant is not None:
        print(f"next: vre weights import {args.variant} {out}")
    return 0
