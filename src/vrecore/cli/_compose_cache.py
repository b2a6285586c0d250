"""A cache of what Hydra composed for a single run of `vre export` / `vre stream`, so that the next run of the same
shape starts without importing Hydra, scanning its plugins and composing again (most of a short run's start-up).

Hydra stays the one that composes: an entry is written only after Hydra composed a command line, and holds
exactly what it produced. A later command line is served from it when it has the same shape: the same flags,
config groups and overrides, in the same order, except for the values of plain string keys (``video=``,
``output_dir=``, ``frames=0..9``...), which Hydra would copy as they are (a value Hydra would read as anything
but that string — a number, ``true``, ``null``, a list, an interpolation — makes the override part of the
shape). An entry is used only while everything Hydra read to compose it is unchanged: the config folders' YAML
files (by content), the environment variables they name, the installed Hydra, Hydra plugins and vre's config
packages, the working folder and the interpreter. Anything Hydra's run would do besides calling the job (a
launcher, callbacks, a run folder, saved configs, environment settings, interpolations to resolve) keeps the
run on Hydra's path, as does ``-m`` or any flag but ``--config-dir``. ``VRE_CONFIG_CACHE=0`` turns it off.

Entries are JSON records in ``<vre cache>/configs`` (`vrecore._cache`); a command line naming storage options
(credentials) is never cached.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vrecore._cache import digest, read_record, settled, switched_on, write_record

__all__ = ["enabled", "lookup", "store"]

FORMAT = 1
KIND = "configs"
log = logging.getLogger(__name__)

# A value Hydra reads as the string it is: no grammar character, not a number, bool or null.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./-]+\Z")
_NOT_STRINGS = {"true", "false", "null", "inf", "-inf", "+inf", "nan"}
_ENV_NAME = re.compile(r"oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)")
_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
_PLACEHOLDER = "\x00"


def enabled() -> bool:
    return switched_on("VRE_CONFIG_CACHE")


@dataclasses.dataclass
class _Shape:
    """A command line split into what must match exactly (``args``, plain values replaced by a placeholder) and the
    plain values of string keys (``values``)."""

    args: list[str]
    values: dict[str, str]


def _string_keys(command: str) -> set[str]:
    """The schema's top-level keys whose value Hydra keeps as the string given (typed str or Any)."""
    from vrecore.cli import config

    schema = config.ExportConfig if command == "export" else config.StreamConfig
    return {f.name for f in dataclasses.fields(schema)
            if str(f.type).replace(" ", "") in ("str", "str|None", "Any", "Any|None")}


def _is_plain(value: str) -> bool:
    if not _PLAIN_VALUE.match(value) or value.lower() in _NOT_STRINGS:
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _shape(command: str, args: Sequence[str]) -> _Shape | None:
    """The command line's shape, or None when the cache does not take it."""
    string_keys = _string_keys(command)
    shape = _Shape([], {})
    seen: set[str] = set()
    k = 0
    while k < len(args):
        arg = args[k]
        if arg in _CONFIG_DIR_FLAGS and k + 1 < len(args):
            shape.args += [arg, args[k + 1]]
            k += 2
            continue
        k += 1
        if arg.partition("=")[0] in _CONFIG_DIR_FLAGS:
            shape.args.append(arg)
            continue
        key, eq, value = arg.partition("=")
        bare = key.lstrip("+~")
        if (arg.startswith("-") or not eq or bare.startswith("hydra") or "storage_options" in arg
                or "shuffle(" in value or bare in seen):
            return None
        seen.add(bare)
        if key in string_keys and _is_plain(value):
            shape.values[key] = value
            shape.args.append(f"{key}={_PLACEHOLDER}")
        else:
            shape.args.append(arg)
    return shape


def _stat(path: str | None) -> list[Any]:
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    return [path, st.st_mtime_ns, st.st_size] if st else [path, None, None]


def _package_folder(dotted: str) -> str | None:
    """The folder of a package by its dotted name, found without importing it (nor its parents)."""
    top, _, rest = dotted.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = os.path.join(location, *rest.split(".")) if rest else location
        if os.path.isdir(folder):
            return folder
    return None


def _installed() -> list[list[Any]]:
    """What composition depends on besides the config files, as ``[path, mtime_ns, size]`` of each file or folder:
    Hydra and OmegaConf, vre's schemas, every Hydra plugin (its folder's entries)."""
    stats = [_stat(str(Path(__file__).with_name("config.py")))]
    for name in ("hydra", "omegaconf"):
        spec = importlib.util.find_spec(name)
        stats.append(_stat(spec.origin if spec else None))
    plugins = importlib.util.find_spec("hydra_plugins")
    for location in sorted(plugins.submodule_search_locations or []) if plugins else []:
        with contextlib.suppress(OSError):
            stats += [_stat(os.path.join(location, entry)) for entry in sorted(os.listdir(location))]
    return stats


def _key(command: str, shape: _Shape) -> tuple[str, list[int]]:
    """The record's name, and the modification times it depends on (for `settled`)."""
    from vrecore import __version__
    from vrecore.graph.registry import get_registry

    stats = _installed()
    material = [FORMAT, command, shape.args, sorted(shape.values), os.getcwd(), __version__, sys.executable, stats,
                get_registry().config_paths]
    return digest(material), [s[1] for s in stats if s[1] is not None]


def _source_folder(schema: str, path: str) -> str | None:
    if schema == "pkg":
        return _package_folder(path.replace("/", "."))
    if schema == "file":
        return os.path.abspath(path) if os.path.isdir(path) else None
    return None


def _sources_digest(sources: list[list[str]]) -> str | None:
    """A digest of every YAML file in the config sources, by content, and of the environment variables they name;
    None when a source's folder is not found."""
    found = hashlib.sha256()
    names: set[str] = set()
    for schema, path in sources:
        folder = _source_folder(schema, path)
        if folder is None:
            return None
        found.update(f"\0{schema}\0{path}\0{folder}\0".encode())
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".yaml", ".yml")):
                    with open(os.path.join(root, name), "rb") as f:
                        content = f.read()
                    names.update(_ENV_NAME.findall(content.decode("utf-8", "replace")))
                    found.update(f"\0{os.path.relpath(os.path.join(root, name), folder)}\0".encode())
                    found.update(hashlib.sha256(content).digest())
    for name in sorted(names):
        found.update(f"\0{name}={os.environ.get(name)}".encode())
    return found.hexdigest()


def lookup(command: str, args: Sequence[str]) -> dict[str, Any] | None:
    """The composed config (interpolation-free, as Hydra produced it) for this command line, or None on a miss."""
    if not enabled():
        return None
    try:
        return _lookup(command, args)
    except OSError as e:  # e.g. the working folder was removed: Hydra's path says what is wrong, if anything
        log.debug("no start-up record read: %s", e)
        return None


def _lookup(command: str, args: Sequence[str]) -> dict[str, Any] | None:
    shape = _shape(command, args)
    if shape is None:
        return None
    entry = read_record(KIND, _key(command, shape)[0], FORMAT)
    if entry is None or entry.get("args") != shape.args:
        return None
    try:
        if _sources_digest(entry["sources"]) != entry["digest"]:
            return None
    except (OSError, KeyError, TypeError, ValueError):
        return None
    config = entry["config"]
    if not isinstance(config, dict) or any(key not in config for key in shape.values):
        return None
    config.update(shape.values)
    return config


def store(command: str, args: Sequence[str], cfg: Any, stderr_text: str) -> bool:
    """Keep what Hydra composed for this command line (``cfg``, inside the job) when a later run may reuse it;
    whether an entry was written. ``stderr_text``: what Hydra printed while composing (a run that printed
    something is not cached: the cached one would not print it). Never fails the run: a record that cannot be made
    is not made."""
    if not enabled() or stderr_text:
        return False
    try:
        return _store(command, args, cfg)
    except Exception as e:  # an optimisation: whatever goes wrong here (a Hydra that changed, a full disk) costs the
        log.debug("no start-up record kept: %s: %s", type(e).__name__, e)  # record, never the run
        return False


def _store(command: str, args: Sequence[str], cfg: Any) -> bool:
    shape = _shape(command, args)
    if shape is None:
        return False
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hydra = HydraConfig.get()
    choices = hydra.runtime.choices
    if (hydra.mode not in (None, RunMode.RUN) or hydra.callbacks or hydra.job.env_set or hydra.job.chdir
            or hydra.run.dir != "." or hydra.output_subdir is not None or hydra.verbose
            or choices.get("hydra/job_logging") != "disabled" or choices.get("hydra/hydra_logging") != "disabled"):
        return False
    config = OmegaConf.to_container(cfg, resolve=False)
    try:
        text = json.dumps(config)
    except (TypeError, ValueError):
        return False
    if "${" in text or not isinstance(config, dict):
        return False
    if any(config.get(key) != value for key, value in shape.values.items()):
        return False  # Hydra did not copy the value as given: it is part of the shape after all
    sources = [[s.schema, s.path] for s in hydra.runtime.config_sources if s.schema != "structured"]
    sources_digest = _sources_digest(sources)
    if sources_digest is None:
        return False
    key, times = _key(command, shape)
    if not settled(times):
        return False  # something Hydra reads was just installed or changed: it may change again unseen
    for name in shape.values:
        config[name] = None  # the key stays in its place: the config's order is the one Hydra composed
    return write_record(KIND, key, {"format": FORMAT, "command": command, "args": shape.args, "sources": sources,
                                    "digest": sources_digest, "config": config})
