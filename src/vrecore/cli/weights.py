"""`vre weights`: list, fetch, verify and import the weights of the installed learned types."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from vrecore.errors import ConfigError, VreError, WeightsError

__all__ = ["main"]

USAGE = """vre weights list [--pipeline P [KEY=VALUE ...]] [--json]   variant, type, status, size, licence
vre weights fetch NAME ... | --pipeline P [KEY=VALUE ...] [--relock]   download ahead of time, record in the lock
vre weights verify [NAME ...]                          hash every cached file again, against the lock file
vre weights import NAME FILE [--replace]               place a converted or hand-downloaded file in the cache

--lock PATH (any command) uses that lock file (default: ./vre-weights.lock when it exists, else vre's cache)."""


@attrs.frozen
class _Target:
    """A variant to act on: declared by ``type_name``; ``weights_path`` and ``representation`` when a pipeline chose it."""

    declared: Any
    representation: str | None = None
    weights_path: str | None = None


def _pipeline_targets(pipeline: str, overrides: list[str]) -> list[_Target]:
    """The learned representations of a pipeline preset (composed like `vre export` does) and their weights."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from vrecore.cli.config import register_schemas
    from vrecore.graph.build import build_graph
    from vrecore.weights.declared import DeclaredVariant
    from vrecore.weights.representation import WeightedRepresentation

    register_schemas()
    try:
        with initialize_config_module(config_module="vrecore.cli.conf", version_base="1.3"):
            cfg = compose(config_name="export", overrides=[f"pipeline={pipeline}", *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"pipeline {pipeline!r}: {' '.join(str(err).split())[:300]}") from None
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    targets = []
    for node in build_graph({str(k): v for k, v in config.items()}):
        rep = node.representation
        if isinstance(rep, WeightedRepresentation):
            key = rep.variant_aliases.get(rep.variant, rep.variant)
            declared = DeclaredVariant(node.type_name, key, rep.weight_variant, type(rep))
            targets.append(_Target(declared, node.name, rep.weights_path))
    return targets


def _named_targets(names: Iterable[str]) -> list[_Target]:
    from vrecore.weights.declared import declared_variants, find_variant

    names = list(names)
    if names:
        return [_Target(find_variant(n)) for n in names]
    seen: set[str] = set()
    targets = []
    for d in declared_variants():
        if d.variant.name not in seen:
            seen.add(d.variant.name)
            targets.append(_Target(d))
    return targets


def _targets(ns: argparse.Namespace) -> list[_Target]:
    extra = [a for a in ns.names if "=" in a]
    names = [a for a in ns.names if "=" not in a]
    if ns.pipeline is None:
        if extra:
            raise ConfigError(f"{extra[0]}: KEY=VALUE overrides apply to a --pipeline; add --pipeline NAME")
        return _named_targets(names)
    if names:
        raise ConfigError("give either variant names or --pipeline, not both")
    return _pipeline_targets(ns.pipeline, extra)


def _error(message: str) -> None:
    for line in message.splitlines():
        print(f"vre weights: error: {line}", file=sys.stderr)


# -- list ----------------------------------------------------------------------------------------------------------
def _list(ns: argparse.Namespace) -> int:
    from vrecore.weights.resolving import variant_status
    from vrecore.weights.variants import size_text

    rows = []
    for t in _targets(ns):
        v = t.declared.variant
        status = f"local ({t.weights_path})" if t.weights_path is not None else variant_status(v)
        rows.append({"variant": v.name, "type": t.declared.type_name, "representation": t.representation,
                     "status": status, "size": v.size, "license": v.license, "source": v.source,
                     "get": v.convert_command if status == "convert-locally" else
                     v.package.install if status == "missing" and v.package is not None else None})
    if ns.json:
        print(json.dumps(rows, indent=1))
        return 0
    header = ("VARIANT", "TYPE", "STATUS", "SIZE", "LICENCE")
    table = [header] + [(r["variant"] + (f" ({r['representation']})" if r["representation"] else ""), r["type"],
                         r["status"], size_text(r["size"]), r["license"] or "?") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    for r in rows:
        if r["get"]:
            print(f"  {r['variant']}: {r['get']}")
    return 0


# -- fetch ---------------------------------------------------------------------------------------------------------
def _fetch(ns: argparse.Namespace) -> int:
    from vrecore.weights.cache import Lock
    from vrecore.weights.resolving import resolve
    from vrecore.weights.variants import size_text

    if not ns.names and ns.pipeline is None:
        raise ConfigError("say what to fetch: variant names (see `vre weights list`) or --pipeline NAME")
    failed = 0
    for t in _targets(ns):
        v = t.declared.variant
        try:
            if ns.relock and t.weights_path is None:
                Lock().remove(v.name)
            found = resolve(v, t.weights_path)
        except WeightsError as err:
            _error(str(err))
            failed += 1
            continue
        size = sum(p.stat().st_size for p in found.files.values())
        print(f"{v.name}: {found.source} ({len(found.files)} file(s), {size_text(size)})")
    return 2 if failed else 0


# -- verify --------------------------------------------------------------------------------------------------------
def _verify(ns: argparse.Namespace) -> int:
    from vrecore.weights.cache import sha256_file
    from vrecore.weights.resolving import resolve, variant_status

    bad = checked = 0
    for t in _named_targets(ns.names):
        v = t.declared.variant
        if variant_status(v) != "cached":
            continue
        try:
            found = resolve(v, download=False)
            for path in found.files.values():  # hashed again, whatever the memo says: bit rot keeps the stat
                sha256_file(path, memo=False)
            resolve(v, download=False)
        except WeightsError as err:
            _error(str(err))
            bad += 1
            continue
        checked += 1
        print(f"ok {v.name}: {len(found.files)} file(s), {found.source}")
    print(f"{checked} variant(s) verified, {bad} refused", file=sys.stderr)
    return 1 if bad else 0


# -- import --------------------------------------------------------------------------------------------------------
def _files_of(variant: Any, path: Path) -> dict[str, Path]:
    if path.is_file():
        if len(variant.filenames) != 1:
            raise WeightsError(f"{path} is a file, but weights {variant.name!r} are {len(variant.filenames)} files "
                               f"{list(variant.filenames)}: give the folder holding them")
        return {variant.filenames[0]: path}
    if not path.is_dir():
        raise WeightsError(f"{path} does not exist; give the converted or downloaded file (or folder)")
    files = {f: path.joinpath(*PurePosixPath(f).parts) for f in variant.filenames}
    missing = [f for f, p in files.items() if not p.is_file()]
    if missing:
        raise WeightsError(f"{path} lacks {missing}; weights {variant.name!r} are {list(variant.filenames)}")
    return files


def _import(ns: argparse.Namespace) -> int:
    from vrecore.weights.cache import Lock, imported_dir, place_files, sha256_file
    from vrecore.weights.declared import check_loadable, find_variant
    from vrecore.weights.variants import size_text

    declared = find_variant(ns.name)
    variant = declared.variant
    files = _files_of(variant, Path(ns.file).expanduser())
    digests = {f: sha256_file(p) for f, p in files.items()}
    lock = Lock()
    entry = lock.get(variant.name) or {}
    for fname, got in digests.items():
        published = (variant.sha256 or {}).get(fname)
        if published is not None and got != published:
            raise WeightsError(f"{files[fname]} has sha256 {got}, but {fname} of weights {variant.name!r} is "
                               f"published with {published}: it is another file; get the right one ({variant.source})")
        recorded = (entry.get("files") or {}).get(fname, {}).get("sha256")
        if recorded is not None and got != recorded and not ns.replace:
            raise WeightsError(f"{files[fname]} has sha256 {got}, but the lock file {lock.path} recorded {recorded} "
                               f"for {fname} of weights {variant.name!r}; add --replace if this file is meant to "
                               "replace the recorded one")
    check_loadable(declared, ns.file, ns.file)  # the check `vre convert-weights --variant` makes too
    folder = imported_dir(variant.name)
    place_files(files, folder)
    lock.record(variant.name, {"source": "imported", "files": {
        f: {"sha256": d, "size": files[f].stat().st_size} for f, d in sorted(digests.items())}})
    size = sum(p.stat().st_size for p in files.values())
    print(f"imported {variant.name}: {len(files)} file(s), {size_text(size)} into {folder} (recorded in {lock.path})")
    return 0


def main(argv: list[str]) -> int:
    """`vre weights COMMAND ...`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="vre weights", usage=USAGE, description="Manage model weights.")
    parser.add_argument("--lock", default=None, help="the lock file to use")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "fetch", "verify"):
        p = sub.add_parser(name)
        p.add_argument("names", nargs="*", help="variant names (default: all); KEY=VALUE overrides with --pipeline")
        if name != "verify":
            p.add_argument("--pipeline", default=None, help="the variants a pipeline preset uses")
        p.add_argument("--lock", dest="lock_here", default=None, help=argparse.SUPPRESS)
    sub.choices["list"].add_argument("--json", action="store_true", help="machine-readable output")
    sub.choices["fetch"].add_argument("--relock", action="store_true",
                                      help="record the files as they are now, replacing the lock file's record")
    imp = sub.add_parser("import")
    imp.add_argument("name", help="the variant (see `vre weights list`)")
    imp.add_argument("file", help="the converted or downloaded file, or a folder holding the variant's files")
    imp.add_argument("--replace", action="store_true", help="replace files the lock file recorded with other digests")
    imp.add_argument("--lock", dest="lock_here", default=None, help=argparse.SUPPRESS)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / help
        return int(exc.code) if isinstance(exc.code, int) else 2
    lock = ns.lock_here or ns.lock
    if lock:
        os.environ["VRE_WEIGHTS_LOCK"] = str(Path(lock).resolve())
    commands = {"list": _list, "fetch": _fetch, "verify": _verify, "import": _import}
    try:
        return commands[ns.command](ns)
    except VreError as err:
        _error(str(err))
        return err.exit_code
