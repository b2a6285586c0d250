"""`vre verify OUT [--deep] [--repair]`: which stored frames are complete, missing, corrupt or stale."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vrecore.errors import ConfigError
from vrecore.export.metadata import regenerate_metadata, representation_folders
from vrecore.export.runlog import mark_dead_runs, new_run_id
from vrecore.frames.video import ranges
from vrecore.store.base import FORMAT_FOLDERS, Store
from vrecore.store.directory import DirectoryStore
from vrecore.store.verify import DiskForm, RepresentationCheck, check_frames, quarantine

__all__ = ["main", "verify_export"]

_SHOWN = 20  # bad files named per representation


def open_export(output_dir: str | Path) -> Store:
    """The store of an export: a folder, or a store's location (``s3://...``, a ``.zarr`` folder)."""
    from vrecore.store.location import choose_store

    choice = choose_store(output_dir, what="output_dir")
    if choice.extension.name == "directory":
        return DirectoryStore(Path(choice.location))
    return choice.open()


def verify_export(output_dir: str | Path, *, deep: bool = False) -> dict[str, RepresentationCheck]:
    """Check every representation of an export (see `vrecore.store.verify`); a representation whose
    dependency was recomputed differently since is stale as a whole."""
    store = open_export(output_dir)
    names = [f.name for f in representation_folders(store.root)] if isinstance(store, DirectoryStore) else \
        store.representations()
    read = {name: store.read_metadata(name) for name in names}
    metas = {name: meta or {} for name, meta in read.items()}
    checks: dict[str, RepresentationCheck] = {}
    for name, meta in metas.items():
        fingerprint = meta.get("fingerprint") or {}
        stored = fingerprint.get("stored") or {}
        expected = DiskForm(tuple(stored["shape"]), str(stored["dtype"])) if stored.get("shape") else None
        subs = [s for s in FORMAT_FOLDERS if s == "npz" and meta.get("binary_format", "npz") != "none"
                or s == meta.get("image_format")] or [s for s in FORMAT_FOLDERS if store.stat_frames(name, s)]
        check = check_frames(store, name, subs, None, expected=expected, fingerprint=meta.get("fingerprint_digest"),
                             deep=deep, run_id="verify")
        changed = _changed_dependencies(meta, metas)
        if changed:
            check.stale |= check.complete
            check.complete = set()
            check.stale_reason = f"dependency {', '.join(repr(c) for c in changed)} was computed differently since"
        if read[name] is None:
            where = store.metadata_path(name) if isinstance(store, DirectoryStore) else None
            check.metadata_problem = "corrupt" if where is not None and where.exists() else "missing"
        checks[name] = check
    return checks


def _changed_dependencies(meta: dict[str, Any], metas: dict[str, dict[str, Any]]) -> list[str]:
    """Dependencies whose folder's current fingerprint is not the one this representation was made from."""
    made_from = (meta.get("fingerprint") or {}).get("dependencies") or {}
    roles = meta.get("dependency_roles") or {}
    changed = []
    for role, dep in roles.items():
        names = dep if isinstance(dep, list) else [dep]
        digests = made_from.get(role)
        digests = digests if isinstance(digests, list) else [digests]
        for dep_name, was in zip(names, digests, strict=False):
            now = (metas.get(dep_name) or {}).get("fingerprint_digest")
            if now is not None and was is not None and now != was:
                changed.append(dep_name)
    return changed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vre verify", description=(
        "Check the stored frames of an export: complete, missing, corrupt (named) or stale. "
        "Exits 1 when any frame is bad."))
    parser.add_argument("output_dir", help="an export folder, or a store's location (s3://bucket/x, out.zarr)")
    parser.add_argument("--deep", action="store_true", help="re-read every file: CRC-32 and a full decode")
    parser.add_argument("--repair", action="store_true",
                        help="move bad files into OUT/.quarantine and compute them again with the run's config")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    ns = parser.parse_args(argv)
    out = ns.output_dir
    store = open_export(out)
    if isinstance(store, DirectoryStore) and not store.root.is_dir():
        raise ConfigError(f"'{out}' is not a folder; give the output folder of an export")
    checks = verify_export(out, deep=ns.deep)
    if not checks:
        raise ConfigError(f"'{out}' holds no representation folders (<name>/npz, jpg or png); give an export folder")
    for run, recorded in mark_dead_runs(store):
        print(f"vre verify: run {run.get('run_id')} died (its process {run['pid']} on this host is gone); "
              f"{'recorded' if recorded else 'not recorded: the output folder is not writable'}", file=sys.stderr)
    if ns.json:
        print(json.dumps({name: {"complete": len(c.complete), "missing": sorted(c.missing),
                                 "corrupt": {str(k): v for k, v in sorted(c.corrupt.items())},
                                 "stale": sorted(c.stale), "metadata": c.metadata_problem}
                          for name, c in checks.items()}, indent=1))
    else:
        _print_report(out, checks)
    lost = [name for name, c in checks.items() if c.metadata_problem]
    for name in lost:
        where = store.metadata_path(name) if isinstance(store, DirectoryStore) else f"{out}/{name}/zarr.json"
        print(f"vre verify: representation '{name}': {where} is "
              f"{checks[name].metadata_problem}; run `vre metadata {out}` to "
              f"rebuild it from the frame records", file=sys.stderr)
    if lost and ns.repair and isinstance(store, DirectoryStore):
        regenerate_metadata(store.root)
        print(f"vre verify: rebuilt the metadata of {', '.join(lost)} from the frame records", file=sys.stderr)
    bad = {name: c for name, c in checks.items() if c.corrupt or c.stale or c.missing}
    if not bad:
        return 1 if lost and not ns.repair else 0
    if not ns.repair:
        print(f"vre verify: {sum(len(c.corrupt) + len(c.stale) + len(c.missing) for c in bad.values())} bad frame(s); "
              f"run `vre verify {out} --repair` to move them aside and compute them again", file=sys.stderr)
        return 1
    return _repair(out, store, bad)


def _print_report(out: str, checks: dict[str, RepresentationCheck]) -> None:
    rows = [("representation", "complete", "missing", "corrupt", "stale")]
    rows += [(name + (f" (metadata {c.metadata_problem})" if c.metadata_problem else ""), str(len(c.complete)),
              str(len(c.missing)), str(len(c.corrupt)), str(len(c.stale))) for name, c in checks.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    for name, c in checks.items():
        problems = [f"{out}/{name}/{p}" for _, ps in sorted(c.corrupt.items()) for p in ps]
        for p in problems[:_SHOWN]:
            print(f"corrupt: {p}")
        if len(problems) > _SHOWN:
            print(f"corrupt: ... and {len(problems) - _SHOWN} more in {out}/{name}")
        if c.missing:
            print(f"missing: {name} frames {ranges(sorted(c.missing))}")
        if c.stale:
            print(f"stale: {name} frames {ranges(sorted(c.stale))}: {c.stale_reason}")


def _repair(out: str, store: Store, bad: dict[str, RepresentationCheck]) -> int:
    """Quarantine the bad files, then export the bad frames again with each representation's last run config."""
    store.check_writable()  # a read-only folder or a link below it: one line before anything is moved
    run_id = f"repair-{new_run_id()}"
    moved = sum(len(quarantine(store, c, run_id, stale=True)) for c in bad.values())
    if moved:
        where = store.root / ".quarantine" / run_id if isinstance(store, DirectoryStore) else f"{out}/.quarantine/{run_id}"
        print(f"vre verify: moved {moved} bad file(s) to {where}", file=sys.stderr)
    runs = sorted(store.read_run_metadata(), key=lambda r: str(r.get("started")), reverse=True)
    code = 0
    for (config_text, video), names in _group_by_run(bad, runs).items():
        frames = sorted(set().union(*(bad[n].corrupt.keys() | bad[n].stale | bad[n].missing for n in names)))
        if config_text is None or video is None or not Path(video).exists():
            print(f"vre verify: to compute {', '.join(names)} frames {ranges(frames)} again, run `vre export` with the "
                  f"video and config that made them (output_dir={out}); no run metadata names an existing video",
                  file=sys.stderr)
            code = 1
            continue
        code = max(code, _export_again(out, json.loads(config_text), video, frames))
    return code


def _group_by_run(bad: dict[str, RepresentationCheck], runs: list[dict[str, Any]]
                  ) -> dict[tuple[str | None, str | None], list[str]]:
    """Bad representations by (config, video) of the latest run whose graph has them."""
    groups: dict[tuple[str | None, str | None], list[str]] = {}
    for name in bad:
        run = next((r for r in runs if name in ((r.get("graph") or {}).get("representations") or {})), None)
        key: tuple[str | None, str | None] = (None, None)
        if run is not None:
            config = run.get("config") or run.get("graph")
            key = (json.dumps(config, sort_keys=True) if config else None, run.get("video"))
        groups.setdefault(key, []).append(name)
    return groups


def _export_again(out: str, config: dict[str, Any], video: str, frames: list[int]) -> int:
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    graph = build_graph(config)
    print(f"vre verify: computing frames {ranges(frames)} again with the config of their run", file=sys.stderr)
    result = run_export(graph, video, out, frames=frames, exception_mode=config.get("exception_mode", "stop"),
                        device=config.get("device", "cpu"), config=config, raise_on_error=False)
    print(result.summary(), file=sys.stderr)
    if not result.ok:
        print(f"vre verify: error: {result.error}", file=sys.stderr)
        return result.exit_code
    return 0
