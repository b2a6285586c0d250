"""`vre convert-weights`: turn a legacy pickled checkpoint into safetensors, loading it with weights_only=True only.

A plain conversion unwraps the tensors (``--key``, ``--strip-prefix``) into one ``.safetensors`` file. With
``--variant NAME`` the variant's own recipe runs instead: the checkpoint is checked against the digest the
variant declares for it, and the variant's transform (declared by its plugin as ``"module:function"``) turns
it into exactly the files the variant loads (e.g. ``config.json`` + ``model.safetensors``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vrecore.errors import WeightsError
from vrecore.weights import load_safetensors

__all__ = ["convert_checkpoint", "convert_for_variant", "convert_main", "read_checkpoint"]


_NEST_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params", "weights")


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _flatten_tensors(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if _is_tensor(v):
            out[name] = v
        elif isinstance(v, Mapping) and all(isinstance(kk, str) for kk in v):
            out.update(_flatten_tensors(v, name + "."))
    return out


def _unwrap(obj: Any, src: Path, key: str | None) -> Mapping[str, Any]:
    if key is not None:
        parts = [key] if (isinstance(obj, Mapping) and key in obj) else key.split("/")
        for part in parts:
            if not isinstance(obj, Mapping) or part not in obj:
                keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
                raise WeightsError(f"checkpoint {src}: no key {part!r} (available: {keys}); fix --key")
            obj = obj[part]
    else:
        for _ in range(4):  # e.g. {"model": {"state_dict": {...}}}
            if not isinstance(obj, Mapping) or any(_is_tensor(v) for v in obj.values()):
                break
            for k in _NEST_KEYS:
                if isinstance(obj.get(k), Mapping):
                    obj = obj[k]
                    break
            else:
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"checkpoint {src} holds a {type(obj).__name__}, not a dict of tensors; pass --key to select one"
        )
    return obj


def _torch_load_safe(src: Path) -> Any:
    import pickle

    import torch

    with open(src, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (protocol byte 0x80).
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise WeightsError(f"cannot read checkpoint {src} (not a torch checkpoint: it is neither a zip nor a pickle)")
    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = " ".join(str(err).split())
        m = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global ['\"]?([\w.]+)", text)
        if m:
            found = f" (it contains {m.group(1)})"
        else:
            r = re.search(r"WeightsUnpickler error: (.+?)(?: Check the documentation|$)", text)
            found = f" or is corrupt ({r.group(1)[:80]})" if r else ""
        raise WeightsError(
            f"checkpoint {src} needs unsafe unpickling{found}, which vre refuses (torch.load weights_only=True); "
            "if you trust it, re-save just its tensors in a trusted environment "
            "(torch.save(ckpt['state_dict'], 'plain.pth')) and convert that"
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"cannot read checkpoint {src} (corrupt or not a torch checkpoint: {msg})") from err


def read_checkpoint(src: str | os.PathLike[str]) -> Any:
    """The object stored in a checkpoint file: safetensors, or a torch pickle read with weights_only=True."""
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"checkpoint {src} does not exist or is not a file; check SRC")
    return load_safetensors(src) if src.suffix == ".safetensors" else _torch_load_safe(src)


def _tensors_of(obj: Any, src: Path, key: str | None, strip_prefix: str | None) -> dict[str, Any]:
    tensors = _flatten_tensors(_unwrap(obj, src, key))
    if not tensors:
        top = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"checkpoint {src}: no tensors found (top-level keys: {top}); pass --key to select them")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    if strip_prefix:
        tensors = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in tensors.items()}
        if any(not k for k in tensors):
            raise WeightsError(f"--strip-prefix {strip_prefix!r} leaves an empty tensor name")
    return tensors


def _write_file(dst: Path, content: Mapping[str, Any] | str, src_name: str) -> None:
    """Write tensors as safetensors (contiguous, unshared) or text, under a temporary name first."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        else:
            from safetensors.torch import save_file

            out: dict[str, Any] = {}
            seen_storage: set[tuple[int, int]] = set()
            for k, t in content.items():
                t = t.detach().to("cpu")
                ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) if t.numel() else (0, id(t))
                t = t.clone().contiguous() if (ident in seen_storage or not t.is_contiguous()) else t
                seen_storage.add(ident)
                out[k] = t
            save_file(out, str(tmp), metadata={"format": "pt", "vre_converted_from": src_name})
        os.chmod(tmp, 0o644)  # safetensors writes 0600; converted weights are meant to be shared
        os.replace(tmp, dst)
    except Exception as err:  # noqa: BLE001 - reported as one line
        tmp.unlink(missing_ok=True)
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"cannot write {dst} from {src_name}: {msg}") from err


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: str | None = None,
    strip_prefix: str | None = None,
) -> Path:
    """Convert a legacy ``.pth/.ckpt`` checkpoint into a ``.safetensors`` file and return ``dst``.

    Loads with ``torch.load(src, map_location="cpu", weights_only=True)`` only. Unwraps common
    nestings (``state_dict``, ``model``, ``module``...; or the explicit ``key``, "/"-separated for
    deeper levels), flattens nested dicts of tensors with "." and drops non-tensors, strips a
    ``module.`` prefix present on every key (DataParallel) and ``strip_prefix`` when given, makes
    tensors contiguous (and unshared), and writes them with ``safetensors.torch.save_file``.
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise WeightsError(f"output {dst} must end in .safetensors")
    if dst.resolve() == src.resolve():
        raise WeightsError(f"output {dst} is the input file; choose another DST")
    obj = read_checkpoint(src)
    _write_file(dst, _tensors_of(obj, src, key, strip_prefix), src.name)
    return dst


def convert_for_variant(src: str | os.PathLike[str], dst: str | os.PathLike[str], name: str) -> Path:
    """Make the files of the convert-locally variant called ``name`` from its publisher's checkpoint ``src``.

    The checkpoint must have the sha256 the variant declares for it (when it declares one). ``dst`` is the
    ``.safetensors`` file of a one-file variant, else a folder that receives the variant's files.
    """
    from vrecore.weights import find_variant, sha256_file

    variant = find_variant(name).variant
    recipe = variant.convert
    if recipe is None:
        raise WeightsError(f"weights {name!r} are published ready to load ({variant.source}): nothing to convert; "
                           f"run `vre weights fetch {name}`")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise WeightsError(f"checkpoint {src} does not exist or is not a file; download {recipe.checkpoint} from "
                           f"{recipe.url}")
    if recipe.sha256 is not None and (got := sha256_file(src)) != recipe.sha256:
        raise WeightsError(f"checkpoint {src} has sha256 {got}, but {recipe.checkpoint} published at {recipe.url} has "
                           f"{recipe.sha256}: it is another file or a broken download; download it again")
    single = len(variant.filenames) == 1
    if single and dst.suffix != ".safetensors":
        raise WeightsError(f"output {dst} must end in .safetensors (weights {name!r} are one file)")
    obj = read_checkpoint(src)
    if recipe.transform is not None:
        module, _, function = recipe.transform.partition(":")
        files = getattr(importlib.import_module(module), function)(obj)
    else:
        files = {variant.filenames[0]: _tensors_of(obj, src, recipe.key, recipe.strip_prefix)}
    if set(files) != set(variant.filenames):
        raise WeightsError(f"the conversion of {src} made {sorted(files)}, but weights {name!r} need "
                           f"{list(variant.filenames)}; this is a bug of the plugin declaring {name!r}")
    for filename, content in files.items():
        _write_file(dst if single else dst.joinpath(*filename.split("/")), content, src.name)
    return dst


def _summary(out: Path) -> str:
    files = [out] if out.is_file() else sorted(p for p in out.rglob("*.safetensors"))
    tensors = [t for f in files for t in load_safetensors(f).values()]
    return f"{len(tensors)} tensors, {sum(int(t.numel()) for t in tensors):,} values"


def convert_main(argv: list[str]) -> int:
    """``vre convert-weights SRC DST [--key K] [--strip-prefix P] [--variant NAME]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="vre convert-weights",
        description="Convert a legacy .pth/.ckpt checkpoint to .safetensors (torch.load weights_only=True only).",
    )
    parser.add_argument("src", help="input checkpoint (.pth, .pt, .ckpt, .bin)")
    parser.add_argument("dst", help="output .safetensors file (a folder for a --variant of several files)")
    parser.add_argument("--key", default=None, help="sub-dict holding the tensors, e.g. state_dict or model/ema")
    parser.add_argument("--strip-prefix", default=None, help="prefix removed from tensor names, e.g. model.")
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="make the files of this convert-locally weight variant (see `vre weights list`)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / help
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        if args.variant is not None:
            if args.key or args.strip_prefix:
                raise WeightsError("--variant applies the variant's own recipe: drop --key and --strip-prefix")
            out = convert_for_variant(args.src, args.dst, args.variant)
        else:
            out = convert_checkpoint(args.src, args.dst, key=args.key, strip_prefix=args.strip_prefix)
        summary = _summary(out)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {out} ({summary})")
    if args.variant is not None:
        print(f"next: vre weights import {args.variant} {out}")
    return 0
