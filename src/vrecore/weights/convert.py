"""`vre convert-weights`: turn a legacy pickled checkpoint into safetensors, loading it with weights_only=True only.

A plain conversion unwraps the tensors (``--key``, ``--strip-prefix``) into one ``.safetensors`` file. With
``--variant NAME`` the variant's own recipe runs instead: the checkpoint is checked against the digest the
variant declares for it, and the variant's transform (declared by its plugin as ``"module:function"``) turns
it into exactly the files the variant loads (e.g. ``config.json`` + ``model.safetensors``).

Some checkpoints pickle whole ``nn.Module`` objects of another package's classes (Ultralytics' ``.pt`` files),
which weights_only refuses. ``--pickled-modules`` reads them still with ``torch.load(weights_only=True)``: every
class of a package the pickle names becomes an inert `StandIn` that only keeps what the pickle hands it, so no
code of that package (which need not be installed) ever runs; `module_state_dict` then walks the stand-ins'
``_parameters``, ``_buffers`` and ``_modules`` to the tensors, named as ``state_dict()`` names them. One rule
for what else a pickle names (`refused_global`): anything that is not a class of a package (a function, a
builtin, anything of the standard library: os, subprocess, builtins, importlib...) is refused, naming it.

Whatever a conversion writes goes to a temporary folder beside the output first; with ``--variant`` it must
load into the variant's model there (`vrecore.weights.declared.check_loadable`, the check `vre weights import` makes)
before it is moved into place: a refused or failed conversion leaves nothing behind.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from vrecore.errors import WeightsError
from vrecore.weights.loading import load_safetensors

__all__ = ["StandIn", "convert_checkpoint", "convert_for_variant", "module_state_dict",
           "pickled_globals", "read_checkpoint", "refused_global"]


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
            "if it pickles whole modules (e.g. an Ultralytics .pt), --pickled-modules reads their tensors without "
            "running their code; else re-save just its tensors in a trusted environment "
            "(torch.save(ckpt['state_dict'], 'plain.pth')) and convert that"
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"cannot read checkpoint {src} (corrupt or not a torch checkpoint: {msg})") from err


class StandIn:
    """An inert object in place of a class a pickle names (its `pickled_name`): it keeps the arguments and the state
    the pickle hands it and runs nothing else. Each pickled name gets its own subclass."""

    pickled_name: ClassVar[str] = ""

    def __init__(self, *args: Any) -> None:
        # Called where the pickle calls the class or function it names (REDUCE): remember the arguments only.
        self.__dict__["_vre_args"] = args

    def __setstate__(self, state: Any) -> None:
        # A dict (or a (dict, slots dict) pair, as pickle's own BUILD accepts) becomes attributes; anything
        # else is kept as it is.
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        if all(p is None or (isinstance(p, dict) and all(isinstance(k, str) for k in p)) for p in parts):
            for part in parts:
                self.__dict__.update(part or {})
        else:
            self.__dict__["_vre_state"] = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.pickled_name}>"


def _data_pickle(src: Path) -> bytes:
    """The pickle of a torch zip checkpoint (``<archive>/data.pkl``)."""
    try:
        with zipfile.ZipFile(src) as z:
            names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(names) != 1:
                raise WeightsError(f"checkpoint {src} is a zip but not a torch checkpoint (no <archive>/data.pkl)")
            return z.read(names[0])
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"cannot read checkpoint {src} as a torch zip checkpoint ({err}); "
                           "--pickled-modules reads files written by torch.save since torch 1.6 only") from err


def _spellings(src: Path) -> dict[str, str]:
    """Every global the pickle names, as it spells it → its Python 3 name (as torch's unpickler reads it)."""
    import _compat_pickle
    import pickletools

    found: dict[str, str] = {}
    try:
        for op, arg, _ in pickletools.genops(_data_pickle(src)):
            if op.name == "STACK_GLOBAL":
                raise WeightsError(f"checkpoint {src} is pickled with protocol 4 or later, which "
                                   "torch.load(weights_only=True) cannot read; re-save it with torch.save's default "
                                   "protocol")
            if op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                mapped = _compat_pickle.NAME_MAPPING.get((module, name))
                py3 = mapped or (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
                found[f"{module}.{name}"] = ".".join(py3)
    except ValueError as err:  # pickletools' word for a truncated or corrupt pickle
        raise WeightsError(f"cannot read checkpoint {src} (corrupt pickle: {err})") from err
    return found


def pickled_globals(src: str | os.PathLike[str]) -> list[str]:
    """Every class or function the pickle of a torch zip checkpoint names, ``module.name``, in order of appearance.

    Scans the pickle's opcodes with `pickletools` (nothing is unpickled). Names are given as the pickle spells
    them; Python 2 spellings (``__builtin__``...) also in their Python 3 form, as torch's unpickler reads them.
    """
    found: dict[str, None] = {}
    for spelled, py3 in _spellings(Path(src)).items():
        found.update({spelled: None, py3: None})
    return list(found)


def refused_global(name: str) -> str | None:
    """Why the global ``name`` (``module.attribute``, Python 3 spelling) of a pickle may not become a `StandIn`, or
    None for a class of a package (not of the standard library), the one thing a stand-in replaces.

    Nothing is imported to tell (the package need not be installed, and importing it would run it): a class is
    what PEP 8 spells as one, a CapWords name; anything else is a function.
    """
    module, _, attribute = name.rpartition(".")
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names:
        return "a global of the standard library"
    if not attribute.lstrip("_")[:1].isupper():
        return "a function (only classes become stand-ins)"
    return None


def _stand_in(name: str) -> type[StandIn]:
    return type(f"StandIn[{name}]", (StandIn,), {"pickled_name": name, "__module__": __name__})


def _class_attribute(owner: Any, name: Any) -> type[StandIn]:
    """The pickle's ``getattr(Class, "name")``, protocol 2's way to name a class's attribute (Ultralytics' Segment
    keeps ``detect = Detect.forward``): an inert stand-in named ``module.Class.name``, which torch's unpickler will
    not call; getattr of anything but a stand-in class is refused."""
    import pickle

    if not (isinstance(owner, type) and issubclass(owner, StandIn) and isinstance(name, str)):
        raise pickle.UnpicklingError(f"the pickle calls builtins.getattr on {owner!r}, not on a class; vre refuses it")
    return _stand_in(f"{owner.pickled_name}.{name}")


def _torch_load_modules(src: Path) -> Any:
    """torch.load(weights_only=True) with every class of a package the pickle names mapped to a `StandIn`.

    torch's unpickler looks a name up in its own allowed set first (tensor rebuilding, OrderedDict, dtypes...),
    so stand-ins only ever replace what weights_only would refuse; of that, anything but a class is refused.
    """
    import pickle

    import torch
    from torch._weights_only_unpickler import _get_allowed_globals

    with open(src, "rb") as f:
        if f.read(2) != b"PK":
            raise WeightsError(f"checkpoint {src} is not a torch zip checkpoint; --pickled-modules reads files "
                               "written by torch.save since torch 1.6 only")
    allowed = _get_allowed_globals()
    safe: list[tuple[Any, str]] = []
    for name in dict.fromkeys(_spellings(src).values()):
        if name in allowed:
            continue
        if name == "builtins.getattr":
            safe.append((_class_attribute, name))
            continue
        why = refused_global(name)
        if why is not None:
            raise WeightsError(f"checkpoint {src} names {name}, {why}: a checkpoint that names it is a program, "
                               "and vre refuses it (--pickled-modules reads classes of a model's package only)")
        safe.append((_stand_in(name), name))
    try:
        with torch.serialization.safe_globals(safe):  # type: ignore[arg-type]
            return torch.load(src, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, TypeError, KeyError) as err:
        text = " ".join(str(err).split())
        called = re.search(r"(?:reduce|new object) for (?:unrecognized function |nn\.Parameter or .*? but got )"
                           r"<class '[\w.]*StandIn\[([\w.]+)\]'>", text)
        if called:  # a stand-in the pickle calls: torch refuses, and says so in a paragraph
            raise WeightsError(f"checkpoint {src} calls {called.group(1)}: a checkpoint that calls it is a program, "
                               "and vre refuses it (--pickled-modules reads classes of a model's package only)") from err
        explained = re.search(r"WeightsUnpickler error: (.+?)(?: Check the documentation|$)", text)
        msg = (explained.group(1) if explained else text)[:200]
        raise WeightsError(f"cannot read checkpoint {src} with stand-ins (corrupt, or not made of modules and "
                           f"tensors: {msg})") from err


def _is_module(obj: Any) -> bool:
    state = vars(obj) if isinstance(obj, StandIn) else {}
    return isinstance(state.get("_modules"), Mapping) and isinstance(state.get("_parameters"), Mapping)


def module_state_dict(module: Any, *, float32: bool = True) -> dict[str, Any]:
    """The tensors of a pickled ``nn.Module`` read with stand-ins, named as its ``state_dict()`` would name them:
    its and its submodules' parameters and persistent buffers. Floating-point tensors become float32 unless
    ``float32`` is False (integer buffers such as BatchNorm's ``num_batches_tracked`` keep their dtype)."""
    import torch

    if not _is_module(module):
        raise WeightsError(f"{module!r} is not a pickled torch module (it has no _parameters and _modules)")
    out: dict[str, Any] = {}

    def walk(m: Any, prefix: str, path: tuple[int, ...]) -> None:
        if id(m) in path:
            raise WeightsError(f"module {prefix.rstrip('.')} ({m!r}) contains itself")
        state = vars(m)
        skip = state.get("_non_persistent_buffers_set") or set()
        entries = [*state["_parameters"].items(),
                   *((k, v) for k, v in (state.get("_buffers") or {}).items() if k not in skip)]
        for name, tensor in entries:
            if tensor is None:
                continue
            if not isinstance(tensor, torch.Tensor):
                raise WeightsError(f"{prefix}{name} of {m!r} is a {type(tensor).__name__}, not a tensor")
            tensor = tensor.detach()
            out[prefix + name] = tensor.float() if float32 and tensor.is_floating_point() else tensor
        for name, child in state["_modules"].items():
            if child is not None:
                if not _is_module(child):
                    raise WeightsError(f"submodule {prefix}{name} of {m!r} is {child!r}, not a pickled torch module")
                walk(child, f"{prefix}{name}.", (*path, id(m)))

    walk(module, "", ())
    return out


def _modules_as_dicts(obj: Any) -> Any:
    """``obj`` with every pickled module (at the top or in nested dicts) replaced by its `module_state_dict`."""
    if _is_module(obj):
        return module_state_dict(obj)
    if isinstance(obj, Mapping):
        return {k: _modules_as_dicts(v) for k, v in obj.items()}
    return obj


def read_checkpoint(src: str | os.PathLike[str], *, pickled_modules: bool = False) -> Any:
    """The object stored in a checkpoint file: safetensors, or a torch pickle read with weights_only=True; with
    ``pickled_modules``, a torch zip pickle whose foreign classes and functions are read as `StandIn` objects."""
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"checkpoint {src} does not exist or is not a file; check SRC")
    if src.suffix == ".safetensors":
        return load_safetensors(src)
    obj = _torch_load_modules(src) if pickled_modules else _torch_load_safe(src)
    _check_tree(obj, src)
    return obj


_MAX_DEPTH = 100


def _check_tree(obj: Any, src: Path) -> None:
    """Refuse a checkpoint whose dicts contain themselves, or nest deeper than any checkpoint does (both would end
    the walks below in a RecursionError)."""
    stack: list[tuple[Any, tuple[str, ...], frozenset[int]]] = [(obj, (), frozenset())]
    while stack:
        node, where, above = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if id(node) in above:
            raise WeightsError(f"cannot convert {src}: the checkpoint has a cycle at {'.'.join(where)} (a dict that "
                               "contains itself); re-save its tensors alone (torch.save(state_dict, 'plain.pth'))")
        if len(where) > _MAX_DEPTH:
            raise WeightsError(f"cannot convert {src}: the checkpoint nests dicts deeper than {_MAX_DEPTH} levels at "
                               f"{'.'.join(where[:5])}...; re-save its tensors alone")
        stack.extend((v, (*where, str(k)), above | {id(node)}) for k, v in node.items())


def _tensors_of(obj: Any, src: Path, key: str | None, strip_prefix: str | None) -> dict[str, Any]:
    tensors = _flatten_tensors(_unwrap(_modules_as_dicts(obj), src, key))
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


def _write_one(path: Path, content: Mapping[str, Any] | str, src_name: str) -> None:
    """Write tensors as safetensors (contiguous, unshared) or text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
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
        save_file(out, str(path), metadata={"format": "pt", "vre_converted_from": src_name})
    os.chmod(path, 0o644)  # safetensors writes 0600; converted weights are meant to be shared


def _write_files(dst: Path, files: Mapping[str, Mapping[str, Any] | str], src_name: str, *, single: bool,
                 check: Callable[[Path], None] | None = None) -> None:
    """Write ``files`` (name → tensors or text) into a temporary folder beside ``dst``, ``check`` that folder, then
    move them to ``dst`` (the file of a one-file output, else the folder receiving them). A refusal or a failure
    leaves nothing behind: no temporary, no folder made for ``dst``."""
    made = [p for p in (dst.parent, *dst.parent.parents) if not os.path.lexists(p)]
    tmp = dst.parent / f".{dst.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.vre-tmp"
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        for name, content in files.items():
            _write_one(tmp.joinpath(*name.split("/")), content, src_name)
        if check is not None:
            check(tmp)
        for name in files:
            target = dst if single else dst.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp.joinpath(*name.split("/")), target)
    except Exception as err:
        # Clean-up is best effort: on a read-only disk it fails too, and must not hide why the write failed.
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(err, WeightsError):
            raise WeightsError(f"{err}; nothing written") from None
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"cannot write {dst} from {src_name}: {msg}; nothing written") from err
    shutil.rmtree(tmp, ignore_errors=True)


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: str | None = None,
    strip_prefix: str | None = None,
    pickled_modules: bool = False,
) -> Path:
    """Convert a legacy ``.pth/.ckpt`` checkpoint into a ``.safetensors`` file and return ``dst``.

    Loads with ``torch.load(src, map_location="cpu", weights_only=True)`` only (with ``pickled_modules``,
    pickled modules of any class are read as stand-ins and become their float32 state dicts). Unwraps common
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
    obj = read_checkpoint(src, pickled_modules=pickled_modules)
    _write_files(dst, {dst.name: _tensors_of(obj, src, key, strip_prefix)}, src.name, single=True)
    return dst


def convert_for_variant(src: str | os.PathLike[str], dst: str | os.PathLike[str], name: str) -> Path:
    """Make the files of the convert-locally variant called ``name`` from its publisher's checkpoint ``src``.

    The checkpoint must have the sha256 the variant declares for it (when it declares one). ``dst`` is the
    ``.safetensors`` file of a one-file variant, else a folder that receives the variant's files.
    """
    from vrecore.weights.cache import sha256_file
    from vrecore.weights.declared import check_loadable, find_variant

    declared = find_variant(name)
    variant = declared.variant
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
    obj = read_checkpoint(src, pickled_modules=recipe.pickled_modules)
    if recipe.transform is not None:
        module, _, function = recipe.transform.partition(":")
        files = getattr(importlib.import_module(module), function)(obj)
    else:
        files = {variant.filenames[0]: _tensors_of(obj, src, recipe.key, recipe.strip_prefix)}
    if set(files) != set(variant.filenames):
        raise WeightsError(f"the conversion of {src} made {sorted(files)}, but weights {name!r} need "
                           f"{list(variant.filenames)}; this is a bug of the plugin declaring {name!r}")
    # The files must load into the variant's model (names, shapes, dtypes), as `vre weights import` then checks.
    _write_files(dst, files, src.name, single=single,
                 check=lambda folder: check_loadable(declared, folder, f"the conversion of {src}"))
    return dst
