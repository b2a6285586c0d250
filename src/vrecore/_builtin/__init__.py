"""Core's own plugin: registers the built-in types and the directory store through the same hooks as any plugin."""
from __future__ import annotations

from collections.abc import Callable

from vrecore.graph.hookspecs import hookimpl


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    register("color/rgb", "vrecore._builtin.color:RGB", description="decoded RGB frames (uint8)")
    register("color/hsv", "vrecore._builtin.color:HSV", description="hue, saturation, value in [0, 1]")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    register("pkg://vrecore.cli.conf")


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register("directory", "vrecore.store.directory:DirectoryStore", schemes=("file",),
             description="npz folders in the seed tool's layout, on a local or shared file system (the default)")
