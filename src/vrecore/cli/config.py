"""Hydra schemas of the `vre export` and `vre stream` configs (stdlib dataclasses: OmegaConf mishandles attrs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExportConfig", "RepresentationConfig", "StreamConfig", "register_schemas"]


def _open_parameters() -> Any:
    """An empty mapping that stays open when Hydra closes the config: ``representations.X.parameters.K=V`` (or
    ``store_options.K=V``) on the command line sets a parameter the preset does not list (e.g. weights_path)
    without Hydra's ``+``; an unknown name is then refused by the graph (or the store), which names the valid
    ones."""
    from omegaconf import OmegaConf

    return OmegaConf.create({}, flags={"struct": False})


@dataclass
class RepresentationConfig:
    """One representation of a pipeline; unset engine keys take the global value."""

    type: str = "???"
    dependencies: Any = None
    """A list of names in the type's role order, or a role -> name mapping."""
    parameters: dict[str, Any] = field(default_factory=_open_parameters)
    batch_size: int | None = None
    binary_format: str | None = None
    image_format: str | None = None
    output_dtype: str | None = None
    output_size: Any | None = None
    export: bool = True


@dataclass
class ExportConfig:
    """`vre export`: which video, where, which frames, and the representation graph."""

    video: str | None = None
    videos: Any | None = None
    """Many videos in one run: a folder of videos, a glob, a text file with one path per line, or a list; each goes
    to <output_root>/<stem> (see `vrecore.export.export_videos`)."""
    output_dir: str | None = None
    output_root: str | None = None
    """When output_dir is unset: export into <output_root>/<video stem> (multiruns over videos)."""
    store: str | None = None
    """The registered store that keeps output_dir (core's: `directory`; plugins add more); none: chosen by
    output_dir's URL scheme (SCHEME://...) or suffix, else `directory` (npz folders)."""
    store_options: dict[str, Any] = field(default_factory=_open_parameters)
    """Options of the store, e.g. store_options.codec=none (zarr: codec, level, frames_per_shard, storage_options:
    fsspec's endpoint and credentials, never printed nor recorded)."""
    frames: Any | None = None
    representations: dict[str, RepresentationConfig] = field(default_factory=dict)
    batch_size: int = 8
    binary_format: str = "npz"
    image_format: str = "none"
    output_dtype: str | None = None
    output_size: Any | None = None
    device: str = "cpu"
    overwrite: bool = False
    """Recompute the selected frames and replace them; frames made differently are deleted first."""
    on_mismatch: str = "error"
    """When stored frames were made differently (another video, parameters, dtype...): `error` stops
    before any compute; `keep` adds frames anyway and records the folder as mixed."""
    exception_mode: str = "stop"
    durable: bool = False
    """fsync each file and its folder before a frame counts as done (survives a power cut)."""
    video_backend: str = "auto"
    writers: int = 2
    workers: int = 1
    """Processes sharing the frames still to compute (Strategy 1), each on the next of `devices`."""
    devices: Any | None = None
    """Devices of the worker processes, round-robin, e.g. [cuda:0,cuda:1]; default: `device`."""
    placement: Any | None = None
    """Representation (or "*") -> device (Strategy 2): each device's representations in their own processes."""
    runner: str = "local"
    """`local` (processes on this machine) or `ray` (Ray actors; `pip install vrecore[ray]`)."""
    ray_address: str | None = None
    """An existing Ray cluster (e.g. auto after `ray start --head`); none starts a local Ray instance."""
    threads: int | None = None
    """Cap on torch's and OpenCV's compute threads (1 is often fastest on a busy shared machine)."""
    progress: bool | None = None
    """Progress bars; None shows them when stderr is a terminal."""
    report: bool = False
    """Write <output_dir>/report.html at the end of the run (what `vre report` writes)."""


@dataclass
class StreamConfig:
    """`vre stream`: a live source, the representation graph, and where results go (nothing is stored)."""

    source: str | None = None
    """'-' (raw rgb24 on stdin), tcp://HOST:PORT (listen; "tcp://HOST:PORT?mode=client" to connect),
    /dev/videoN (a camera) or a video file."""
    width: int | None = None
    """Frame width: required for raw input ('-', tcp://); rescales video files; requested from cameras."""
    height: int | None = None
    fps: float | None = None
    """Nominal rate of raw input; the rate requested from a camera."""
    realtime: bool = True
    """Video files: release frames at the file's frame rate (like a camera) or as fast as decoded."""
    loop: bool = False
    """Video files: start again at the end."""
    output: Any = "web"
    """One target or a list: '-' (raw rgb24 on stdout), tcp://HOST:PORT (raw rgb24 to clients),
    web or web://HOST:PORT (live viewer), jsonl://HOST:PORT (per-frame JSON summaries to clients),
    jsonl:- (JSON summaries on stdout)."""
    output_representation: str | None = None
    """What raw outputs ('-', tcp://) write: a representation name, 'input', or 'mosaic' (all side
    by side); default: the last exported representation of the graph."""
    host: str = "127.0.0.1"
    """Address that servers bind when a spec gives none (0.0.0.0 opens them to the network)."""
    drop_frames: bool | None = None
    """Process the newest frame and drop what arrives meanwhile; None: yes, except for a video file
    read with realtime=false (every frame is processed)."""
    max_frames: int | None = None
    metrics_csv: str | None = None
    """A CSV of per-frame timings (the only file stream mode ever writes)."""
    device: str = "cpu"
    exception_mode: str = "stop"
    """`stop` at the first failing representation, or `skip` it for that frame and go on."""
    verbose: bool = False
    """Log connections and set-up steps (and tracebacks) to stderr."""
    representations: dict[str, RepresentationConfig] = field(default_factory=dict)
    # The graph-level keys of `vre export`, so that every pipeline preset composes here too; stream
    # mode stores nothing, so only output_size (the size of a representation's output) matters.
    batch_size: int = 8
    binary_format: str = "npz"
    image_format: str = "none"
    output_dtype: str | None = None
    output_size: Any | None = None


def register_schemas() -> None:
    """Make the schemas available to the primary configs' defaults lists."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="export_schema", node=ExportConfig)
    ConfigStore.instance().store(name="stream_schema", node=StreamConfig)
