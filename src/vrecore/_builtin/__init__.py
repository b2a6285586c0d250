"""Core's own plugin: its types, config path, store and stream endpoints, through the same hooks as any plugin."""
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
def register_sources(register: Callable[..., None]) -> None:
    streaming = "vrecore.streaming.sources"
    register("pipe", f"{streaming}.pipe:open_pipe_source", description="'-': raw rgb24 frames on stdin")
    register("tcp", f"{streaming}.tcp:open_tcp_source", description="raw rgb24 frames over TCP (listen or client)")
    register("device", f"{streaming}.device:open_device_source", description="/dev/videoN: a capture device")
    register("file", f"{streaming}.video:open_file_source", description="a video file, paced like a camera")


@hookimpl
def register_targets(register: Callable[..., None]) -> None:
    streaming = "vrecore.streaming.targets"
    register("pipe", f"{streaming}.raw:open_pipe_target", description="'-': raw rgb24 frames on stdout")
    register("tcp", f"{streaming}.tcp:open_tcp_target", description="raw rgb24 frames served to TCP clients")
    register("web", f"{streaming}.viewer:open_web_target", description="the live web viewer")
    register("jsonl", f"{streaming}.jsonl:open_jsonl_target", description="per-frame summaries as JSON lines")


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register("directory", "vrecore.store.directory:DirectoryStore", schemes=("file",),
             description="npz folders in the seed tool's layout, on a local or shared file system (the default)")
