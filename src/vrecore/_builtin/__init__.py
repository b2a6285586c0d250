"""Core's own plugin: its types, config path, store and stream endpoints, through the same hooks as any plugin."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vrecore.graph.hookspecs import hookimpl
from vrecore.graph.seed_types import SeedType


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
    register("zarr", "vrecore.store.zarr_store.store:ZarrStore", schemes=ZARR_SCHEMES, suffixes=(".zarr",),
             description="zarr v3 arrays, sharded by frame, on an object store (s3://...) or a local .zarr folder "
                         "(pip install 'vrecore[cloud]')")


ZARR_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory")
"""URL schemes of fsspec's file systems that the zarr store handles (others: ``store=zarr``)."""


@hookimpl
def register_seed_types(register: Callable[..., None]) -> None:
    """The seed tool's colour types are core's."""
    register("color/rgb", SeedType("color/rgb"))
    register("color/hsv", SeedType("color/hsv"))


@hookimpl
def register_commands(cli: Any) -> None:
    """Core's `vre` sub-commands (each module is imported only when its command runs)."""
    for name, target, text in _COMMANDS:
        cli.command(name, target, help=text)


_COMMANDS = (
    ("export", "vrecore.cli.export:main",
     "[KEY=VALUE ...]  export representations of a video (Hydra overrides; -m for multirun)"),
    ("stream", "vrecore.cli.stream:main",
     "[KEY=VALUE ...]  run representations live on a camera, pipe, socket or file; nothing is stored"),
    ("demo", "vrecore.cli.demo:main",
     "[KEY=VALUE ...]  export the demo footage with every expert into ./vre_demo; collages, video, report"),
    ("list", "vrecore.cli.info:list_types", "[--json]  representation types with provider, parameters and dependencies"),
    ("plugins", "vrecore.cli.info:list_plugins", "installed plugin distributions and versions"),
    ("metadata", "vrecore.cli.metadata:main", "OUTPUT_DIR  regenerate the metadata of an export from the files on disk"),
    ("verify", "vrecore.cli.verify:main",
     "OUTPUT_DIR  check stored frames: complete, missing, corrupt, stale (--deep, --repair)"),
    ("convert-weights", "vrecore.cli.convert_weights:main", "SRC DST  convert a legacy .pth/.ckpt checkpoint to safetensors"),
    ("weights", "vrecore.cli.weights:main",
     "list|fetch|verify|import  model weights: status, download ahead, check hashes, import a file"),
    ("collage", "vrecore.cli.collage:main",
     "OUTPUT_DIR  per frame, one labelled picture of every representation (OUT/.collage/<frame>.jpg)"),
    ("video", "vrecore.cli.video:main", "OUTPUT_DIR  a preview MP4 of the collages over time (OUT/preview.mp4)"),
    ("report", "vrecore.cli.report:main",
     "OUTPUT_DIR  one self-contained HTML page: graph, timings, runs, samples (OUT/report.html)"),
    ("read", "vrecore.cli.read:main", "OUTPUT_DIR  tasks, shapes, dtypes, frames and missing frames of an export (--stats)"),
    ("pack", "vrecore.cli.pack:main",
     "OUTPUT_DIR --to F  write an export as webdataset shards or a zarr store, for training at scale"),
    ("convert-config", "vrecore.cli.convert_config:main",
     "CFG  translate the seed tool's config into a vre pipeline (or: export --seed-config CFG)"),
)
"""Name, ``module:function`` (taking the arguments after the name, returning the exit code), one line of help."""
