"""The registry of representation types, filled by plugins through pluggy hooks and entry points.

Discovery imports only each plugin's entry module (never torch or model code): a type is
registered as a lazy ``"module:Class"`` target and imported when a graph uses it.

Environment switches:
- ``VRE_DISABLE_PLUGIN_AUTOLOAD=1``: load no installed plugin (core's own types stay).
- ``VRE_DISABLED_PLUGINS=vre-example,other``: skip these distributions.
- ``VRE_TRACE_PLUGINS=1``: print every registration to stderr.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from vrecore.errors import GraphError, PluginError
from vrecore.graph import hookspecs
from vrecore.graph.installed import (
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    FoundPlugin,
    core_version,
    distribution_installed,
    installed_plugins,
    load_entry_point,
)
from vrecore.graph.installed import canonical_name as _canonical

if TYPE_CHECKING:

    from vrecore.graph.representation import Representation

__all__ = ["ENTRY_POINT_GROUP", "FAMILIES_GROUP", "Extension", "FoundPlugin", "PluginInfo", "Registry", "TypeEntry",
           "get_registry", "installed_plugins", "reset_registry"]

log = logging.getLogger(__name__)

FAMILIES_GROUP = "vre.families"
"""Entry-point group in which a distribution declares type families, read without importing it:
``depth = "vre-example"`` says that 'depth/' types come from the distribution vre-example. A plugin
declares its own families, and may name the distribution of a family its presets use, so that an
unknown type's error says what to install or why an installed plugin is not loaded."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@attrs.frozen
class TypeEntry:
    """A registered representation type: its name, lazy target and providing distribution."""

    type_name: str
    target: str
    provider: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    """Other names that resolve to this type (e.g. the seed tool's names)."""

    def load(self) -> type[Representation]:
        """Import and return the representation class."""
        module_name, _, attr = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise PluginError(
                f"type '{self.type_name}' from {self.provider} cannot be imported ({self.target}: {e}); "
                f"reinstall {self.provider}") from e
        return cls  # type: ignore[no-any-return]


@attrs.frozen
class Extension:
    """A store, stream source, stream target, sub-command or seed type that a plugin (or core) registered."""

    kind: str
    """store, source, target, command or seed type."""
    name: str
    target: Any
    """``"module:attribute"`` (imported by `load`), or the object itself."""
    provider: str
    description: str = ""
    options: dict[str, Any] = attrs.field(factory=dict)
    """What else the registration said (a store's ``schemes`` and ``suffixes``)."""

    def load(self) -> Any:
        """The registered object, imported on first use."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr) if attr else importlib.import_module(module_name)
        except (ImportError, AttributeError) as e:
            raise PluginError(f"{self.kind} '{self.name}' from {self.provider} cannot be imported ({self.target}: {e}); "
                              f"reinstall {self.provider}") from e


class _CommandTable:
    """What `register_commands` hands a plugin: ``cli.command(name, "module:main", help=...)``, or as a decorator
    ``@cli.command(name, help=...)`` over ``def main(argv) -> int``."""

    def __init__(self, add: Callable[..., None]) -> None:
        self._add = add

    def command(self, name: str, target: str | Callable[[list[str]], int] | None = None, *, help: str = "") -> Any:  # noqa: A002
        if target is not None:
            self._add(name, target, description=help)
            return target

        def decorate(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
            self._add(name, fn, description=help)
            return fn

        return decorate


_EXTENSION_HOOKS = {"store": "register_stores", "source": "register_sources", "target": "register_targets",
                    "command": "register_commands", "seed type": "register_seed_types"}


@attrs.frozen
class PluginInfo:
    """An installed plugin distribution and what happened when it was loaded."""

    name: str
    version: str
    module: str
    status: str
    """loaded, disabled, incompatible or failed."""
    reason: str = ""


class Registry:
    """Representation types and Hydra config paths, collected from core and plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("vre")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._providers: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        """Distribution → version of every registered plugin (recorded in output fingerprints)."""
        self.targets: dict[str, str | None] = {}
        """Distribution → ``module:attribute`` of its plugin object when importable (worker processes
        register in-process plugins, such as tests', from it)."""
        self._types: dict[str, TypeEntry] | None = None
        self._aliases: dict[str, str] = {}
        self._config_paths: list[tuple[str, str]] | None = None
        self._extensions: dict[str, dict[str, Extension]] = {}

    # -- loading ---------------------------------------------------------------------------------
    def register_plugin(self, plugin: Any, distribution: str, version: str = "0") -> None:
        """Register a plugin object or module under its distribution's name (tests use this too)."""
        self.pm.register(plugin, name=distribution)
        self._providers[distribution] = distribution
        self.versions[distribution] = version
        self.targets[distribution] = _import_path(plugin)
        self._forget()

    def unregister_plugin(self, distribution: str) -> None:
        """Remove a plugin registered with `register_plugin`."""
        self.pm.unregister(name=distribution)
        self._providers.pop(distribution, None)
        self.versions.pop(distribution, None)
        self.targets.pop(distribution, None)
        self._forget()

    def _forget(self) -> None:
        self._types = None
        self._config_paths = None
        self._extensions = {}

    def has_plugin(self, distribution: str) -> bool:
        """Whether a plugin is registered under this distribution name."""
        return distribution in self._providers

    def load_builtin(self) -> None:
        """Register core's own types."""
        # By name, like any plugin: the graph does not depend on the types registered through it.
        self.register_plugin(importlib.import_module("vrecore._builtin"), CORE_DISTRIBUTION, core_version())

    def load_entry_points(self) -> None:
        """Load installed plugins from the ``vre`` entry-point group, honouring the switches."""
        if _env_flag("VRE_DISABLE_PLUGIN_AUTOLOAD"):
            return
        disabled = {_canonical(n) for n in os.environ.get("VRE_DISABLED_PLUGINS", "").split(",") if n.strip()}
        for found in installed_plugins():
            if found.distribution_key in disabled or _canonical(found.name) in disabled:
                self.plugins.append(PluginInfo(found.distribution, found.version, found.value, "disabled",
                                               "VRE_DISABLED_PLUGINS"))
                continue
            if found.problem:
                print(f"vre: skipping plugin {found.distribution} {found.version}: {found.problem}", file=sys.stderr)
                self.plugins.append(PluginInfo(found.distribution, found.version, found.value, "incompatible",
                                               found.problem))
                continue
            try:
                module = load_entry_point(found.value)
            except Exception as e:  # a broken plugin must not take the others down
                reason = f"{type(e).__name__}: {e}"
                print(f"vre: skipping plugin {found.distribution} {found.version}: it failed to import ({reason}); "
                      f"reinstall it or disable it with VRE_DISABLED_PLUGINS={found.distribution}", file=sys.stderr)
                self.plugins.append(PluginInfo(found.distribution, found.version, found.value, "failed", reason))
                continue
            self.register_plugin(module, found.distribution, found.version)
            self.plugins.append(PluginInfo(found.distribution, found.version, found.value, "loaded"))
        self.check_hooks()

    def check_hooks(self) -> None:
        """Every hook implementation names a hook vre has (a typo such as ``register_representation`` is an
        error naming the plugin, not a silent no-op)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            provider = self._providers.get(self.pm.get_name(e.plugin) or "", "a plugin")
            hooks = ", ".join(sorted(self.pm.hook.__dict__))
            raise PluginError(f"{provider}: {e}; vre's hooks are {hooks}") from None

    def _each_plugin(self, hook: str, **kwargs: Callable[[str], Any]) -> None:
        """Call ``hook`` through ``pm.hook`` once per plugin (newest first, as pluggy orders them), handing it
        the argument that ``kwargs[name](provider)`` makes, so that what a plugin registers carries its name."""
        caller = getattr(self.pm.hook, hook)
        impls = caller.get_hookimpls()
        for impl in reversed(impls):
            others = [i.plugin for i in impls if i is not impl]
            provider = self._providers[impl.plugin_name]
            self.pm.subset_hook_caller(hook, remove_plugins=others)(**{k: make(provider) for k, make in kwargs.items()})

    # -- queries ---------------------------------------------------------------------------------
    @property
    def types(self) -> dict[str, TypeEntry]:
        """Every registered type by name; a duplicate name raises PluginError naming both providers."""
        if self._types is None:
            types: dict[str, TypeEntry] = {}
            alias_map: dict[str, str] = {}
            trace = _env_flag("VRE_TRACE_PLUGINS")

            def claim(provider: str, name: str) -> None:
                owner = types[name].provider if name in types else (
                    types[alias_map[name]].provider if name in alias_map else None)
                if owner is not None:
                    first, second = sorted((owner, provider))
                    raise PluginError(
                        f"representation type '{name}' is registered by both {first} and {second}; "
                        f"uninstall one of them or disable it with VRE_DISABLED_PLUGINS")

            def register(provider: str, type_name: str, target: str, *, description: str = "",
                         aliases: tuple[str, ...] | list[str] = ()) -> None:
                for name in (type_name, *aliases):
                    claim(provider, name)
                if trace:
                    print(f"vre: {provider} registers {type_name} -> {target}"
                          + (f" (aliases {', '.join(aliases)})" if aliases else ""), file=sys.stderr)
                types[type_name] = TypeEntry(type_name, target, provider, description, tuple(aliases))
                alias_map.update({a: type_name for a in aliases})

            self._each_plugin("register_representations", register=lambda provider: functools.partial(register, provider))
            self._types, self._aliases = types, alias_map
        return self._types

    @property
    def aliases(self) -> dict[str, str]:
        """Alias → the type name it stands for."""
        _ = self.types
        return self._aliases

    def resolve(self, type_name: str) -> str:
        """The registered name of ``type_name`` (itself, the type an alias stands for, or the type a seed tool's
        name becomes: `register_seed_types`)."""
        if type_name in self.types:
            return type_name
        if type_name in self.aliases:
            return self.aliases[type_name]
        seed = self.extensions("seed type").get(type_name)
        return str(seed.load().ours) if seed is not None else type_name

    @property
    def config_paths(self) -> list[tuple[str, str]]:
        """(provider, Hydra search path) pairs, core's first."""
        if self._config_paths is None:
            paths: list[tuple[str, str]] = []
            self._each_plugin("register_config_paths",
                              register=lambda provider: lambda path: paths.append((provider, path)))
            self._config_paths = paths
        return self._config_paths

    def extensions(self, kind: str) -> dict[str, Extension]:
        """What plugins registered through the hook of ``kind`` (store, source, target, command, seed type), by
        name; one name registered twice raises PluginError naming both providers."""
        if kind not in self._extensions:
            found: dict[str, Extension] = {}
            trace = _env_flag("VRE_TRACE_PLUGINS")

            def add(provider: str, name: str, target: Any, *, description: str = "", **options: Any) -> None:
                if name in found:
                    first, second = sorted((found[name].provider, provider))
                    raise PluginError(f"{kind} '{name}' is registered by both {first} and {second}; "
                                      f"uninstall one of them or disable it with VRE_DISABLED_PLUGINS")
                if trace:
                    print(f"vre: {provider} registers {kind} {name} -> {target}", file=sys.stderr)
                found[name] = Extension(kind, name, target, provider, description, options)

            hook = _EXTENSION_HOOKS[kind]
            argument = "cli" if kind == "command" else "register"
            wrap = (lambda provider: _CommandTable(functools.partial(add, provider))) if kind == "command" else (
                lambda provider: functools.partial(add, provider))
            self._each_plugin(hook, **{argument: wrap})
            self._extensions[kind] = found
        return self._extensions[kind]

    def extension(self, kind: str, name: str) -> Extension:
        """One registered extension, or a one-line error listing those of its kind."""
        table = self.extensions(kind)
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise GraphError(f"unknown {kind} '{name}'; installed: {known} (a plugin may add more: see `vre plugins`)")
        return table[name]

    def get(self, type_name: str, *, wanted_by: str | None = None) -> TypeEntry:
        """The entry of a type, or a GraphError saying which plugin provides it."""
        canonical = self.resolve(type_name)
        if canonical in self.types:
            if canonical != type_name:
                log.warning("type '%s' is another name of '%s' (%s); vre uses '%s'", type_name, canonical,
                            self.types[canonical].provider, canonical)
            return self.types[canonical]
        who = f"representation '{wanted_by}' has " if wanted_by else ""
        family = type_name.split("/", 1)[0]
        close = sorted(t for t in self.types if t.split("/", 1)[0] == family)
        if close:
            hint = f"installed '{family}/' types: {', '.join(close)}"
        else:
            hint = self._family_hint(family) or "run `vre list` to see the installed types"
        raise GraphError(f"{who}unknown type '{type_name}'; {hint}")

    def _family_hint(self, family: str) -> str | None:
        """What installed distributions declare about a family (`FAMILIES_GROUP`), as a fix."""
        import importlib.metadata as md

        providers = sorted({ep.value.strip() for ep in md.entry_points(group=FAMILIES_GROUP) if ep.name == family})
        if not providers:
            return None
        status = {_canonical(p.name): p for p in self.plugins}
        fixes = []
        for dist in providers:
            info = status.get(_canonical(dist))
            if info is not None and info.status == "disabled":
                fixes.append(f"{dist} provides them but is disabled ({info.reason}); enable it")
            elif info is not None and info.status != "loaded":
                fixes.append(f"{dist} provides them but is {info.status} ({info.reason})")
            elif distribution_installed(dist):
                fixes.append(f"{dist} provides them (installed, not loaded in this registry)")
            else:
                fixes.append(f"install {dist}, which provides them")
        return f"'{family}/' types: " + "; or ".join(fixes)


def _import_path(plugin: Any) -> str | None:
    """``module`` or ``module:attribute`` under which ``plugin`` can be imported again, if any."""
    import types

    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    module = sys.modules.get(getattr(type(plugin), "__module__", ""))
    if module is None:
        return None
    for attr, value in vars(module).items():
        if value is plugin:
            return f"{module.__name__}:{attr}"
    return None


def register_from_targets(registry: Registry, plugins: dict[str, tuple[str, str | None]]) -> None:
    """Register ``{distribution: (version, target)}`` plugins that ``registry`` lacks (a worker process
    gets the plugins its parent registered in-process)."""
    for dist, (version, target) in plugins.items():
        if registry.has_plugin(dist) or target is None:
            continue
        module_name, _, attr = target.partition(":")
        obj = importlib.import_module(module_name)
        registry.register_plugin(getattr(obj, attr) if attr else obj, dist, version)


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry: core's types plus the installed plugins, loaded once."""
    global _registry
    if _registry is None:
        registry = Registry()
        registry.load_builtin()
        registry.load_entry_points()
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the loaded registry (tests, or after installing a plugin in-process)."""
    global _registry
    _registry = None
