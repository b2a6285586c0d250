"""The hooks a vre plugin implements; each hands the plugin a `register` callable (or the command table).

Every extension point of vre is one of these hooks, and core registers its own built-ins through the same
hooks (`vrecore._builtin`). Targets are ``"module:attribute"`` strings, imported only when used, so that
loading plugins never imports torch or model code.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("vre")
hookimpl = pluggy.HookimplMarker("vre")


@hookspec
def register_representations(register: Callable[..., None]) -> None:
    """Register representation types: ``register("family/model", "module:Class", description=..., aliases=(...))``."""


@hookspec
def register_config_paths(register: Callable[[str], None]) -> None:
    """Register Hydra config search paths such as ``"pkg://vre_example.conf"`` (pipeline presets)."""


@hookspec
def register_stores(register: Callable[..., None]) -> None:
    """Register stores: ``register("name", "module:Class", schemes=("s3",), suffixes=(".zarr",), description=...)``;
    ``Class(location, **options)`` is a `vrecore.store.Store`, chosen by ``store=name``, by the URL scheme of
    ``output_dir`` or by its suffix."""


@hookspec
def register_sources(register: Callable[..., None]) -> None:
    """Register stream sources by URL scheme: ``register("rtsp", "module:open_source", description=...)``;
    ``open_source(spec, **options)`` returns a `vrecore.streaming.StreamSource`."""


@hookspec
def register_targets(register: Callable[..., None]) -> None:
    """Register stream targets by URL scheme: ``register("mqtt", "module:open_target", description=...)``;
    ``open_target(spec, **options)`` returns a `vrecore.streaming.StreamTarget`."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add ``vre`` sub-commands: ``cli.command("name", "module:main", help="one line")``, where ``main(argv)``
    takes the arguments after the command's name and returns the exit code."""


@hookspec
def register_seed_types(register: Callable[..., None]) -> None:
    """Map a type name of the seed tool (VRE 1.18) to a vre type: ``register("seed/name", SeedType(...))``
    (see `vrecore.plugin.SeedType`), so that its configs translate."""
