"""Output locations: which registered store keeps one (``store=NAME``, a URL scheme or a suffix), never a URL taken
for a path."""
from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vrecore.errors import ConfigError, PluginError
from vrecore.graph.registry import Extension, get_registry
from vrecore.store.base import Store

__all__ = ["DEFAULT_STORE", "HIDDEN", "StoreChoice", "check_local_path", "choose_store", "hide_secret_args",
           "hide_secret_config", "hide_secret_options", "open_store", "secret_values"]

DEFAULT_STORE = "directory"
"""The store of a location that names none (no ``store=``, no URL scheme, no registered suffix)."""

# SCHEME://... (RFC 3986 scheme): pathlib would make a folder `s3:/bucket` of it.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_FILE = "file"


@attrs.frozen
class StoreChoice:
    """The registered store that keeps a location, and the location as its class receives it."""

    extension: Extension
    location: str
    """A local path (a ``file://`` URL's path), or the URL itself for the store to parse."""
    local: bool
    """Whether `location` is a local path (given as one, or as a ``file://`` URL)."""

    @property
    def store_class(self) -> type[Store]:
        """The registered class, imported."""
        cls = self.extension.load()
        if not (isinstance(cls, type) and issubclass(cls, Store)):
            raise PluginError(f"store '{self.extension.name}' from {self.extension.provider} is {cls!r}, not a "
                              f"vrecore.store.Store subclass; fix or uninstall {self.extension.provider}")
        return cls

    def check_location(self) -> None:
        """Refuse, in one line and before anything is made, a location the store cannot use."""
        self.store_class.check_location(self.location)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse, in one line naming the valid ones, an option the store's class does not take."""
        parameters = list(inspect.signature(self.store_class).parameters.values())[1:]  # after the location
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return
        valid = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = sorted(str(k) for k in options if k not in valid)
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ConfigError(f"store '{self.extension.name}' has no option{'s' if len(unknown) > 1 else ''} {names}; "
                              f"{'its options: ' + ', '.join(valid) if valid else 'it takes no options'} "
                              f"(store_options.NAME=VALUE)")

    def open(self, **options: Any) -> Store:
        """``Class(location, **options)``: the store, built (an option it does not take: one line)."""
        self.check_options(options)
        return self.store_class(self.location, **options)  # type: ignore[call-arg]


def choose_store(location: str | os.PathLike[str], *, store: str | None = None,
                 what: str = "output_dir") -> StoreChoice:
    """The store that keeps ``location``: the one named ``store``, else the one registered with its URL scheme,
    else the one registered with its suffix, else `DEFAULT_STORE`. A URL no registered store handles is refused in
    one line, never taken for a path; so is a URL whose scheme the named store does not handle."""
    text = os.fspath(location)
    match = _URL.match(text) if isinstance(text, str) else None
    scheme = match.group("scheme").lower() if match else None
    registry = get_registry()
    schemes = _claims(registry.extensions("store"), "schemes")
    if store is not None:
        chosen = registry.extension("store", store)
        if scheme is not None and schemes.get(scheme) is not chosen:
            handled = ", ".join(f"{s}://" for s, e in sorted(schemes.items()) if e is chosen) or "no URL"
            raise ConfigError(f"{what} '{text}' is a URL, and store '{store}' handles {handled}, not {scheme}://; "
                              f"give it a location it handles, or leave store unset to choose by the scheme")
    elif scheme is not None:
        if scheme not in schemes:
            known = ", ".join(f"{s}:// ({e.name})" for s, e in sorted(schemes.items())) or "none"
            raise ConfigError(f"{what} '{text}' is a URL, and no installed store handles {scheme}:// (stores handle "
                              f"{known}; a plugin may add one); give a local folder")
        chosen = schemes[scheme]
    else:
        suffixes = _claims(registry.extensions("store"), "suffixes")
        bare = text.rstrip("/" + os.sep)
        found = [s for s in suffixes if bare.lower().endswith(s)]
        chosen = suffixes[max(found, key=len)] if found else registry.extension("store", DEFAULT_STORE)
    if scheme == _FILE:
        return StoreChoice(chosen, text[len("file://"):], True)
    return StoreChoice(chosen, text, scheme is None)


def open_store(location: str | os.PathLike[str], *, store: str | None = None, **options: Any) -> Store:
    """The store that keeps ``location`` (see `choose_store`), built with ``options``."""
    return choose_store(location, store=store).open(**options)


def check_local_path(value: str | os.PathLike[str], what: str) -> str:
    """``value`` as a local folder (a ``file://`` URL's path); refuse, in one line, any other URL (``s3://bucket/x``)
    given where a command reads or writes a local folder."""
    text = os.fspath(value)
    if not (isinstance(text, str) and _URL.match(text)):
        return text
    choice = choose_store(text, what=what)
    if not choice.local:
        raise ConfigError(f"{what} '{text}' is a URL of the '{choice.extension.name}' store (from "
                          f"{choice.extension.provider}); this reads a local output folder: give its path")
    return choice.location


HIDDEN = "<hidden>"
"""What a credential given in a store's ``storage_options`` shows as, wherever options are printed or recorded."""
_SECRET_OPTION = "storage_options"
_STORE_OPTIONS_ARG = re.compile(r"^(?P<key>[+~]*store_options(?:\.[^=]*)?)=(?P<value>.*)$", re.DOTALL)


def hide_secret_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A store's options as they may be recorded: the values of ``storage_options`` (endpoint, credentials...)
    replaced by `HIDDEN`, their names kept."""
    if options is None:
        return None
    out = dict(options)
    if _SECRET_OPTION in out:
        value = out[_SECRET_OPTION]
        out[_SECRET_OPTION] = {str(k): HIDDEN for k in value} if isinstance(value, Mapping) else HIDDEN
    return out


def hide_secret_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A run's config as its metadata keeps it: `hide_secret_options` applied to its ``store_options``."""
    if not config:
        return None
    out = dict(config)
    if isinstance(out.get("store_options"), Mapping):
        out["store_options"] = hide_secret_options(out["store_options"])
    return out


def secret_values(options: Mapping[str, Any] | None) -> list[str]:
    """The values of a store's ``storage_options`` (nested ones too), as text: what messages must never show."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif value is not None and not isinstance(value, bool):
            found.append(str(value))

    walk((options or {}).get(_SECRET_OPTION))
    return found


def hide_secret_args(args: Sequence[str]) -> list[str]:
    """A command line as it may be recorded: ``store_options.storage_options...=VALUE`` (or a whole
    ``store_options={...}`` naming storage_options) with its value replaced by `HIDDEN`."""
    out = []
    for arg in args:
        m = _STORE_OPTIONS_ARG.match(arg)
        if m and _SECRET_OPTION in (m.group("key") if "." in m.group("key") else m.group("value")):
            arg = f"{m.group('key')}={HIDDEN}"
        out.append(arg)
    return out


def _claims(table: dict[str, Extension], option: str) -> dict[str, Extension]:
    """Scheme (or suffix) → the store registered with it; one claimed by two stores raises PluginError naming
    both."""
    claimed: dict[str, Extension] = {}
    for extension in table.values():
        value = extension.options.get(option, ())
        for raw in (value,) if isinstance(value, str) else value:
            key = str(raw).lower().removesuffix("://") if option == "schemes" else str(raw).lower()
            other = claimed.setdefault(key, extension)
            if other is not extension:
                first, second = sorted(f"store '{e.name}' of {e.provider}" for e in (other, extension))
                raise PluginError(f"{option[:-1]} {key!r} is registered by both {first} and {second}; "
                                  f"uninstall one of them or disable it with VRE_DISABLED_PLUGINS")
    return claimed
