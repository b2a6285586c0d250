"""vre-motion: a third-party vre plugin (a representation, a store, a stream source and a `vre` sub-command).

This module is what the `vre` entry point names: it only registers lazy targets, so loading it imports neither
numpy-heavy code nor anything of the plugin's own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vrecore.plugin import hookimpl


@hookimpl
def register_representations(register: Callable[..., None]) -> None:
    register("motion/difference", "vre_motion.difference:FrameDifference",
             description="absolute grey-level change to the frame `delta` steps later", aliases=("motion/diff",))


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register("flat", "vre_motion.store:FlatStore", schemes=("flat",),
             description="every frame of every representation as OUT/<name>-<frame>.npz in one folder")


@hookimpl
def register_sources(register: Callable[..., None]) -> None:
    register("images", "vre_motion.source:open_source",
             description="images://FOLDER[?fps=N]: a folder of pictures replayed as a live stream")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.command("motion", "vre_motion.command:main", help="how much moves in each frame of an export's motion")


@hookimpl
def register_config_paths(register: Callable[[str], None]) -> None:
    register("pkg://vre_motion.conf")  # pipeline=motion
