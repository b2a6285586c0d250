"""Import paths of vre 0.1 that moved when the core was laid out by job: each still imports, with one
DeprecationWarning naming the new path."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED = {
    "vrecore.representation": "vrecore.graph.representation",
    "vrecore.layouts": "vrecore.graph.layouts",
    "vrecore.hookspecs": "vrecore.graph.hookspecs",
    "vrecore.registry": "vrecore.graph.registry",
    "vrecore.engine": "vrecore.graph.executor",
    "vrecore.representations": "vrecore._builtin",
    "vrecore.representations.color": "vrecore._builtin.color",
    "vrecore.sample": "vrecore.frames.sample",
    "vrecore.npz": "vrecore.store.npz",
    "vrecore.verify": "vrecore.store.verify",
    "vrecore.plan": "vrecore.export.plan",
    "vrecore.chunks": "vrecore.export.chunks",
    "vrecore.writer": "vrecore.export.writer",
    "vrecore.runlog": "vrecore.export.runlog",
    "vrecore.schedule": "vrecore.export.schedule",
    "vrecore.workers": "vrecore.export.pool",
    "vrecore.ray_runner": "vrecore.export.pool",
    "vrecore.fingerprint": "vrecore.export.fingerprint",
    "vrecore.metadata": "vrecore.export.metadata",
    "vrecore.weights_convert": "vrecore.weights.convert",
    "vrecore.weights_hub": "vrecore.weights.hub",
    "vrecore.weights_store": "vrecore.weights.cache",
    "vrecore.weights_cli": "vrecore.cli.weights",
    "vrecore.config": "vrecore.cli.config",
    "vrecore.convert_config_cli": "vrecore.cli.convert_config",
    "vrecore.pack_cli": "vrecore.cli.pack",
    "vrecore.read_cli": "vrecore.cli.read",
    "vrecore.verify_cli": "vrecore.cli.verify",
    "vrecore.seed_config": "vrecore.cli.seed_config",
    "vrecore.tiles": "vrecore.visual.tiles",
    "vrecore.conf": "vrecore.cli.conf",
}
"""Old module path -> new one. Old paths that are packages now (``vrecore.graph``, ``vrecore.store``,
``vrecore.export``, ``vrecore.frames``, ``vrecore.weights``, ``vrecore.cli``) re-export their public names."""


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module: types.ModuleType) -> None:
        """The module was executed under its new name."""


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds an old module path and hands back the module at its new path."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new)) if new else None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
