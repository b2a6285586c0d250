"""Loading weights: safetensors files to CPU tensors, and tensors into a torch module, never unpickling anything.

Pickled checkpoints are converted once by `vrecore.weights.convert`. torch and safetensors are imported lazily.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vrecore.errors import WeightsError
from vrecore.weights.resolving import made_by_vre

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["load_into", "load_safetensors"]

logger = logging.getLogger(__name__)

_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".tar")


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a ``.safetensors`` file to CPU tensors. Never unpickles anything.

    Raises `WeightsError` naming the file when it is missing, not a file, or corrupt.
    """
    p = Path(path)
    if not p.is_file():
        kind = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise WeightsError(f"safetensors file {p} {kind}; pass the path of a .safetensors file")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        msg = " ".join(str(err).split())[:160]
        if p.suffix.lower() in _PICKLE_SUFFIXES:
            hint = f"it looks like a pickled checkpoint: convert it once with `vre convert-weights {p} OUT.safetensors`"
        elif made_by_vre(p):
            hint = f"delete {os.path.realpath(p)} and fetch (or convert and import) it again"
        else:  # not vre's to delete: a user's file, or one an installed package ships
            hint = ("check that file: replace it with a good copy (reinstall the package that ships it, or convert "
                    "the checkpoint again with `vre convert-weights`)")
        raise WeightsError(f"cannot read safetensors file {p} (corrupt or not safetensors: {msg}); {hint}") from err


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _few(items: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def _dtype_kind(t: torch.Tensor) -> str:
    return ("complex" if t.dtype.is_complex else "float" if t.dtype.is_floating_point else
            "bool" if str(t.dtype) == "torch.bool" else "integer")


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Suggest a key prefix problem when the unexpected keys are the missing ones plus/minus a prefix."""
    if not missing or not unexpected:
        return ""
    miss, unexp = set(missing), set(unexpected)
    u0, m0 = unexpected[0], missing[0]
    for m in missing:  # checkpoint keys = prefix + model keys
        if u0.endswith(m) and u0 != m:
            p = u0[: len(u0) - len(m)]
            if all(k.startswith(p) and k[len(p):] in miss for k in unexpected):
                return f"; the checkpoint keys carry an extra prefix {p!r}: convert with --strip-prefix {p}"
    for u in unexpected:  # model keys = prefix + checkpoint keys
        if m0.endswith(u) and m0 != u:
            p = m0[: len(m0) - len(u)]
            if all(k.startswith(p) and k[len(p):] in unexp for k in missing):
                return f"; the model keys have a prefix {p!r} that the checkpoint keys lack"
    return ""


def load_into(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    variant_name: str,
    *,
    strict: bool = True,
) -> torch.nn.Module:
    """Load ``state_dict`` into ``module`` (in place) and return the module.

    Shape mismatches always raise; missing/unexpected keys raise when ``strict`` (else they are
    logged). The `WeightsError` lists a few offending tensor names with their shapes.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {_fmt_shape(state_dict[k].shape)} vs model {_fmt_shape(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    # load_state_dict would cast silently: a float32 model may take float16 weights, never integers for floats.
    other_kind = [
        f"{k}: checkpoint {_dtype_name(state_dict[k])} vs model {_dtype_name(own[k])}"
        for k in own
        if k in state_dict and _dtype_kind(state_dict[k]) != _dtype_kind(own[k])
    ]
    problems = []
    if other_kind:
        problems.append(f"{len(other_kind)} dtype mismatch(es): {_few(other_kind)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_few(mismatched)}")
    if strict and missing:
        problems.append(
            f"{len(missing)} missing key(s): {_few([f'{k} {_fmt_shape(own[k].shape)}' for k in missing])}"
        )
    if strict and unexpected:
        problems.append(
            f"{len(unexpected)} unexpected key(s): "
            f"{_few([f'{k} {_fmt_shape(state_dict[k].shape)}' for k in unexpected])}"
        )
    if problems:
        cls = type(module).__name__
        raise WeightsError(
            f"weights {variant_name!r} do not fit model {cls}: " + "; ".join(problems)
            + (_prefix_hint(missing, unexpected) or "; check that the variant/size matches the model")
        )
    if missing or unexpected:
        logger.warning(
            "weights %r loaded non-strictly into %s: %d missing (%s), %d unexpected (%s)",
            variant_name, type(module).__name__, len(missing), _few(missing), len(unexpected), _few(unexpected),
        )
    try:
        module.load_state_dict(dict(state_dict), strict=strict)
    except (RuntimeError, ValueError, TypeError) as err:
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"weights {variant_name!r} could not be loaded into {type(module).__name__}: {msg}") from err
    return module

