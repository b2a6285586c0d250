"""The hooks a vre plugin implements; each hands the plugin a `register` callable."""
from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("vre")
hookimpl = pluggy.HookimplMarker("vre")


@hookspec
def register_representations(register: Callable[..., None]) -> None:
    """Register representation types: ``register("family/model", "module:Class", description=...)``."""


@hookspec
def register_config_paths(register: Callable[[str], None]) -> None:
    """Register Hydra config search paths such as ``"pkg://vre_example.conf"`` (pipeline presets)."""
