"""The installed plugin distributions, read from their metadata: the ``vre`` entry points, their versions and
whether each declares a `vrecore` requirement this vrecore meets. `vrecore.graph.registry` loads them."""
from __future__ import annotations

import importlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import importlib.metadata as md

__all__ = ["CORE_DISTRIBUTION", "ENTRY_POINT_GROUP", "FoundPlugin", "canonical_name", "core_version",
           "distribution_installed", "incompatibility", "installed_plugins", "load_entry_point"]

ENTRY_POINT_GROUP = "vre"
CORE_DISTRIBUTION = "vrecore"


def canonical_name(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def distribution_installed(distribution: str) -> bool:
    """Whether a distribution of that name is installed."""
    import importlib.metadata as md

    try:
        md.distribution(distribution)
    except md.PackageNotFoundError:
        return False
    return True


_CORE_VERSION: list[str] = []  # vrecore's version, once read (from its metadata or the plugins' record)


def core_version() -> str:
    """vrecore's version, from its metadata (or the plugins' record: `installed_plugins`)."""
    if not _CORE_VERSION:
        installed_plugins()  # reads it from the plugins' record, or from vrecore's metadata
    return _CORE_VERSION[0]


@attrs.frozen
class FoundPlugin:
    """A ``vre`` entry point of an installed distribution, as read from the installed metadata."""

    name: str
    value: str
    distribution: str
    version: str
    problem: str
    """Why it cannot work with this vrecore (`incompatibility`), or ''."""

    @property
    def distribution_key(self) -> str:
        return canonical_name(self.distribution)


PLUGINS_RECORD_FORMAT = 1


def installed_plugins() -> list[FoundPlugin]:
    """The installed plugin distributions' ``vre`` entry points, by name (one per distribution, core's left out).

    Reading them means scanning the metadata of every installed distribution (~50 ms at start-up); the result is
    kept in vre's cache (`vrecore._cache`), named by the distributions' metadata folders (``*.dist-info``,
    ``*.egg-info``) on each folder of ``sys.path`` and their modification times — an install, upgrade, reinstall
    or removal makes, replaces or removes them — and read from there while those stay the same.
    ``VRE_PLUGINS_CACHE=0`` reads the metadata every time."""
    from vrecore._cache import digest, read_record, settled, switched_on, write_record

    use_cache = switched_on("VRE_PLUGINS_CACHE")
    folders = [_distributions_on(folder) for folder in sys.path] if use_cache else []
    key = digest([PLUGINS_RECORD_FORMAT, sys.version, sys.executable, folders])
    record = read_record("plugins", key, PLUGINS_RECORD_FORMAT) if use_cache else None
    if record is not None:
        try:
            found = [FoundPlugin(*map(str, row)) for row in record["plugins"]]
            version = str(record["core_version"])
        except (KeyError, TypeError, ValueError):
            pass  # read the metadata, and write the record again
        else:
            _CORE_VERSION[:] = [version]
            return found
    import importlib.metadata as md

    try:
        _CORE_VERSION[:] = [md.version(CORE_DISTRIBUTION)]
    except md.PackageNotFoundError:
        _CORE_VERSION[:] = ["0+unknown"]
    found, seen = [], set()
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else ep.name
        if canonical_name(dist_name) in seen or canonical_name(dist_name) == CORE_DISTRIBUTION:
            continue
        seen.add(canonical_name(dist_name))
        found.append(FoundPlugin(ep.name, ep.value, dist_name, dist.version if dist is not None else "?",
                                 incompatibility(dist)))
    if use_cache and settled(t for folder in folders for _, t in folder[1]):
        write_record("plugins", key, {"format": PLUGINS_RECORD_FORMAT, "core_version": core_version(),
                                      "plugins": [attrs.astuple(f) for f in found]})
    return found


_METADATA_FOLDER = re.compile(r".*\.(dist|egg)-info\Z", re.IGNORECASE)


def _distributions_on(folder: str) -> tuple[str, list[tuple[str, int | None]]]:
    """A folder of ``sys.path`` (absolute) and the (name, modification time) of each distribution's metadata in it
    (a file such as a zip archive: its own time)."""
    try:
        folder = os.path.abspath(folder or ".")
    except OSError:  # '' while the working folder no longer exists
        return folder, []
    try:
        with os.scandir(folder) as entries:
            return folder, sorted((e.name, e.stat().st_mtime_ns) for e in entries if _METADATA_FOLDER.match(e.name))
    except NotADirectoryError:
        try:
            return folder, [("", os.stat(folder).st_mtime_ns)]
        except OSError:
            return folder, []
    except OSError:
        return folder, []


_ENTRY_POINT = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?(\[.*\])?\s*$")


def load_entry_point(value: str) -> Any:
    """What an entry point's ``module:attr`` value names, imported (as ``EntryPoint.load`` does)."""
    match = _ENTRY_POINT.match(value)
    if match is None:
        raise ValueError(f"entry point {value!r} is not 'module' or 'module:attribute'")
    target = importlib.import_module(match.group("module"))
    for part in (match.group("attr") or "").split(".") if match.group("attr") else ():
        target = getattr(target, part)
    return target


_REQUIREMENT_NAME = re.compile(r"\s*[A-Za-z0-9._-]*")
_PLAIN_REQUIREMENT = re.compile(r"\s*[A-Za-z0-9._-]+\s*\(?([<>=!~][^;\[@()]*)?\)?\s*$")
"""``name`` or ``name>=1,<2`` without extras, URL or marker: its specifiers need no full requirement parser."""


def incompatibility(dist: md.Distribution | None) -> str:
    """Why a plugin distribution cannot work with this vrecore (read from its metadata), or ''."""
    if dist is None:
        return ""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        core = Version(core_version())
    except InvalidVersion:
        return ""
    for line in dist.requires or []:
        if canonical_name(_REQUIREMENT_NAME.match(line).group(0)) != CORE_DISTRIBUTION:  # type: ignore[union-attr]
            continue  # (parsing every requirement of every plugin costs more than the rest of the check)
        plain = _PLAIN_REQUIREMENT.match(line)
        try:
            if plain:  # the usual form: packaging's requirement parser (its import alone) is not needed
                specifier = SpecifierSet(plain.group(1) or "")
            else:
                from packaging.requirements import Requirement

                req = Requirement(line)
                if canonical_name(req.name) != CORE_DISTRIBUTION or (
                        req.marker is not None and not req.marker.evaluate({"extra": ""})):
                    continue
                specifier = req.specifier
        except (InvalidSpecifier, ValueError):  # (InvalidRequirement is a ValueError)
            continue
        if not specifier.contains(core, prereleases=True):
            return (f"it requires vrecore{specifier} but vrecore {core} is installed; "
                    f"upgrade the plugin or vrecore")
    return ""
