"""Model weights as data: declare a `WeightVariant`, `fetch` its files, load them safely.

A learned expert never hard-codes where its weights live. It declares one `WeightVariant` per
published checkpoint (Hugging Face Hub repo + pinned revision + file names + optional sha256),
and at setup time calls::

    path = fetch(variant, local_path=weights_path)      # folder, or the file when there is one
    state_dict = load_safetensors(path)
    load_into(model, state_dict, variant.name)

`fetch` goes through ``huggingface_hub.hf_hub_download``, so the usual Hugging Face settings apply
unchanged: ``HF_HUB_OFFLINE=1`` (use the cache only), ``HF_HOME`` / ``HF_HUB_CACHE`` (where the
cache is). A ``local_path`` (argument or variant field) bypasses the Hub entirely.

Only safetensors files are ever loaded. Legacy ``.pth`` / ``.ckpt`` checkpoints are converted once
with `convert_checkpoint` (``vre convert-weights SRC DST``), which uses
``torch.load(..., weights_only=True)`` and never a plain unpickle.

Every failure is a `WeightsError` whose message is one line naming the variant, the
repo/revision/file, where vre looked, and how to fix it.

This module imports torch, safetensors and huggingface_hub lazily (inside functions) so that
``import vrecore`` stays light.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import attrs

from vrecore.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "WeightVariant",
    "convert_checkpoint",
    "convert_main",
    "fetch",
    "load_into",
    "load_safetensors",
    "sha256_file",
]

logger = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_FIX_FETCH = "run once with internet (HF_HUB_OFFLINE unset) to download it, or set weights_path=/path/to/files"


# --------------------------------------------------------------------------------------------
# WeightVariant
# --------------------------------------------------------------------------------------------


def _check_filenames(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError(f"WeightVariant {instance.name!r}: filenames must not be empty")
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValueError(f"WeightVariant {instance.name!r}: bad filename {name!r}")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ".." in parts:
            raise ValueError(
                f"WeightVariant {instance.name!r}: filename {name!r} must be relative to the repo, "
                "with '/' separators and no '..'"
            )


def _to_sha_dict(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    return {str(k): str(v).strip().lower() for k, v in dict(value).items()}


def _check_sha256(instance: Any, attribute: Any, value: dict[str, str] | None) -> None:
    if value is None:
        return
    for fname, digest in value.items():
        if fname not in instance.filenames:
            raise ValueError(
                f"WeightVariant {instance.name!r}: sha256 given for {fname!r}, "
                f"which is not one of filenames {list(instance.filenames)}"
            )
        if not _SHA256_RE.match(digest):
            raise ValueError(f"WeightVariant {instance.name!r}: sha256 of {fname!r} is not 64 hex digits")


def _to_opt_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen(kw_only=True)
class WeightVariant:
    """One published set of weights of a model: where to get it and what it means.

    ``filenames`` are paths inside the Hub repo (e.g. ``("model.safetensors",)`` or, for a
    transformers model, ``("config.json", "model.safetensors")``). ``meta`` carries whatever the
    expert needs besides tensors (preprocessing, class names, colours, metrics...).
    """

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    repo_id: str | None = None
    """Hugging Face Hub repo ("org/name"); None for local-only weights."""
    revision: str | None = attrs.field(default=None)
    """Pinned commit hash (preferred) or tag. Required when ``repo_id`` is set."""
    filenames: tuple[str, ...] = attrs.field(
        default=("model.safetensors",), converter=tuple, validator=_check_filenames
    )
    sha256: dict[str, str] | None = attrs.field(
        default=None, converter=_to_sha_dict, validator=_check_sha256, hash=False
    )
    """Optional filename → lowercase hex sha256, checked by `fetch`."""
    license: str | None = None
    num_params: int | None = None
    meta: dict[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    local_path: Path | None = attrs.field(default=None, converter=_to_opt_path)
    """A folder holding ``filenames`` (or the file itself for a one-file variant), used instead of the Hub."""

    @revision.validator
    def _check_revision(self, attribute: Any, value: str | None) -> None:
        if self.repo_id is not None and not value:
            raise ValueError(
                f"WeightVariant {self.name!r}: repo_id {self.repo_id!r} needs a pinned revision "
                "(commit hash or tag)"
            )

    @property
    def source(self) -> str:
        """Human-readable origin, e.g. ``org/name@3f2a...`` or the local path."""
        if self.repo_id is not None:
            return f"{self.repo_id}@{self.revision}"
        return str(self.local_path) if self.local_path is not None else "<no source>"


# --------------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------------

_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's content, memoised per (real path, size, mtime) in this process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    memo_key = (real, st.st_size, st.st_mtime_ns)
    if memo_key in _SHA_MEMO:
        return _SHA_MEMO[memo_key]
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _SHA_MEMO[memo_key] = digest
    return digest


def _verify_sha(variant: WeightVariant, fname: str, path: Path, where: str) -> None:
    if not variant.sha256 or fname not in variant.sha256:
        return
    expected = variant.sha256[fname]
    got = sha256_file(path)
    if got != expected:
        raise WeightsError(
            f"weights {variant.name!r}: sha256 mismatch for {fname!r} ({where}: {path}): "
            f"expected {expected[:12]}..., got {got[:12]}...; the file is corrupt or a different "
            f"version: delete {os.path.realpath(path)} and fetch again, or point weights_path= to the right file"
        )


def _fetch_local(variant: WeightVariant, lp: Path) -> Path:
    lp = lp.expanduser()
    where = f"local path {lp}"
    fix = "fix weights_path=/local_path= or unset it to download from the Hub" + (
        f" ({variant.source})" if variant.repo_id else ""
    )
    if not lp.exists():
        raise WeightsError(f"weights {variant.name!r}: {where} does not exist; {fix}")
    if lp.is_file():
        if len(variant.filenames) != 1:
            raise WeightsError(
                f"weights {variant.name!r}: {where} is a file but the variant needs "
                f"{len(variant.filenames)} files {list(variant.filenames)}; point it to the folder "
                "holding them"
            )
        _verify_sha(variant, variant.filenames[0], lp, "local path")
        return lp
    missing = [f for f in variant.filenames if not (lp / f).is_file()]
    if missing:
        raise WeightsError(
            f"weights {variant.name!r}: {where} lacks {missing} (needs {list(variant.filenames)}); {fix}"
        )
    for fname in variant.filenames:
        _verify_sha(variant, fname, lp / fname, "local path")
    if len(variant.filenames) == 1:
        return lp / variant.filenames[0]
    return lp


def _diagnose_cache(cache_dir: str, repo_id: str, revision: str, filename: str) -> str:
    """Explain, from the cache layout, why ``filename`` at ``revision`` was not found."""
    storage = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    if not storage.is_dir():
        return f"repo {repo_id} is not in the cache"
    refs_dir, snaps_dir = storage / "refs", storage / "snapshots"
    cached_refs = sorted(
        str(p.relative_to(refs_dir)) for p in refs_dir.rglob("*") if p.is_file()
    ) if refs_dir.is_dir() else []
    cached_commits = sorted(p.name for p in snaps_dir.iterdir()) if snaps_dir.is_dir() else []
    if _COMMIT_RE.match(revision):
        commit = revision
    else:
        ref = refs_dir / revision
        if not ref.is_file():
            known = cached_refs or [c[:12] for c in cached_commits]
            return f"revision {revision!r} is not in the cache (cached revisions: {known or 'none'})"
        commit = ref.read_text().strip()
    if not (snaps_dir / commit).is_dir():
        known = cached_refs + [c[:12] for c in cached_commits]
        return f"revision {revision!r} (commit {commit[:12]}) is not in the cache (cached: {known or 'none'})"
    return f"file {filename!r} is not in the cached snapshot {commit[:12]}"


def _fetch_hub(variant: WeightVariant) -> Path:
    try:
        import huggingface_hub
        from huggingface_hub import constants as hf_constants
        from huggingface_hub import errors as hf_errors
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise WeightsError(
            f"weights {variant.name!r}: huggingface_hub is not installed, cannot fetch "
            f"{variant.source}; pip install huggingface_hub, or set weights_path=/path/to/files"
        ) from None
    assert variant.repo_id is not None and variant.revision is not None
    cache_dir = str(hf_constants.HF_HUB_CACHE)
    offline = bool(hf_constants.HF_HUB_OFFLINE)
    where = f"HF cache {cache_dir}" + (" (HF_HUB_OFFLINE=1)" if offline else "")
    paths: list[Path] = []
    for fname in variant.filenames:
        what = f"{variant.repo_id}@{variant.revision} file {fname!r}"
        try:
            p = huggingface_hub.hf_hub_download(variant.repo_id, fname, revision=variant.revision)
        except hf_errors.GatedRepoError:
            raise WeightsError(
                f"weights {variant.name!r}: {variant.repo_id} is gated; accept its licence on "
                f"huggingface.co and log in (hf auth login / HF_TOKEN), or set weights_path=/path/to/files"
            ) from None
        except hf_errors.RepositoryNotFoundError:
            raise WeightsError(
                f"weights {variant.name!r}: repo {variant.repo_id} not found on the Hub (or private); "
                "check the variant's repo_id, log in if it is private, or set weights_path=/path/to/files"
            ) from None
        except hf_errors.RevisionNotFoundError:
            raise WeightsError(
                f"weights {variant.name!r}: revision {variant.revision!r} not found in {variant.repo_id} "
                "on the Hub; fix the variant's revision, or set weights_path=/path/to/files"
            ) from None
        except hf_errors.LocalEntryNotFoundError as err:
            # Offline (or no network) and not in the cache.
            reason = _diagnose_cache(cache_dir, variant.repo_id, variant.revision, fname)
            state = "offline" if offline else "Hub unreachable"
            raise WeightsError(
                f"weights {variant.name!r}: cannot get {what} ({state}; {reason}); looked in {where}; "
                f"{_FIX_FETCH}"
            ) from err
        except hf_errors.EntryNotFoundError:
            raise WeightsError(
                f"weights {variant.name!r}: {what} does not exist in the repo at that revision; "
                "fix the variant's filenames/revision, or set weights_path=/path/to/files"
            ) from None
        except (hf_errors.HfHubHTTPError, OSError, ValueError) as err:
            msg = " ".join(str(err).split())[:200]
            raise WeightsError(
                f"weights {variant.name!r}: download of {what} failed ({type(err).__name__}: {msg}); "
                f"cache {cache_dir}; check the network and retry, or set weights_path=/path/to/files"
            ) from err
        path = Path(p)
        _verify_sha(variant, fname, path, "HF cache")
        paths.append(path)
    if len(paths) == 1:
        return paths[0]
    # The snapshot folder: strip each file's relative name off its path.
    first, fname = paths[0], variant.filenames[0]
    return first.parents[len(PurePosixPath(fname).parts) - 1]


def fetch(variant: WeightVariant, *, local_path: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder holding the variant's files, or the file itself when there is one.

    ``local_path`` (or ``variant.local_path``) is used instead of the Hub when given: a folder
    containing ``variant.filenames`` or, for a one-file variant, the file itself. Otherwise each
    file is obtained with ``huggingface_hub.hf_hub_download(repo_id, filename, revision=...)``
    (cache first; honours HF_HUB_OFFLINE, HF_HOME, HF_HUB_CACHE). Declared sha256 are checked.
    Raises `WeightsError` (one line: what, where it looked, how to fix) on any failure.
    """
    lp = local_path if local_path is not None else variant.local_path
    if lp is not None:
        return _fetch_local(variant, Path(lp))
    if variant.repo_id is None:
        raise WeightsError(
            f"weights {variant.name!r}: the variant has no Hub repo and no local path; "
            "set weights_path=/path/to/files"
        )
    return _fetch_hub(variant)


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

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
        hint = (
            f"it looks like a pickled checkpoint: convert it once with `vre convert-weights {p} OUT.safetensors`"
            if p.suffix.lower() in _PICKLE_SUFFIXES
            else f"delete {os.path.realpath(p)} and fetch again (or re-convert it)"
        )
        raise WeightsError(f"cannot read safetensors file {p} (corrupt or not safetensors: {msg}); {hint}") from err


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _few(items: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


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
    problems = []
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


# --------------------------------------------------------------------------------------------
# conversion of legacy pickled checkpoints
# --------------------------------------------------------------------------------------------

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
    if not src.is_file():
        raise WeightsError(f"checkpoint {src} does not exist or is not a file; check SRC")
    if dst.suffix != ".safetensors":
        raise WeightsError(f"output {dst} must end in .safetensors")
    if dst.resolve() == src.resolve():
        raise WeightsError(f"output {dst} is the input file; choose another DST")

    if src.suffix == ".safetensors":
        obj: Any = load_safetensors(src)
    else:
        obj = _torch_load_safe(src)
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

    out: dict[str, Any] = {}
    seen_storage: set[tuple[int, int]] = set()
    for k, t in tensors.items():
        t = t.detach().to("cpu")
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) if t.numel() else (0, id(t))
        t = t.clone().contiguous() if (ident in seen_storage or not t.is_contiguous()) else t
        seen_storage.add(ident)
        out[k] = t

    from safetensors.torch import save_file

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        save_file(out, str(tmp), metadata={"format": "pt", "vre_converted_from": src.name})
        os.chmod(tmp, 0o644)  # safetensors writes 0600; converted weights are meant to be shared
        os.replace(tmp, dst)
    except Exception as err:  # noqa: BLE001 - reported as one line
        tmp.unlink(missing_ok=True)
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"cannot write {dst} from {src}: {msg}") from err
    return dst


def convert_main(argv: list[str]) -> int:
    """``vre convert-weights SRC DST [--key K] [--strip-prefix P]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="vre convert-weights",
        description="Convert a legacy .pth/.ckpt checkpoint to .safetensors (torch.load weights_only=True only).",
    )
    parser.add_argument("src", help="input checkpoint (.pth, .pt, .ckpt, .bin)")
    parser.add_argument("dst", help="output .safetensors file")
    parser.add_argument("--key", default=None, help="sub-dict holding the tensors, e.g. state_dict or model/ema")
    parser.add_argument("--strip-prefix", default=None, help="prefix removed from tensor names, e.g. model.")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / help
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        out = convert_checkpoint(args.src, args.dst, key=args.key, strip_prefix=args.strip_prefix)
        tensors = load_safetensors(out)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    n_params = sum(int(t.numel()) for t in tensors.values())
    print(f"wrote {out} ({len(tensors)} tensors, {n_params:,} values)")
    return 0
