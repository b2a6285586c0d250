"""Hydra schemas of the `vre export` config (stdlib dataclasses: OmegaConf mishandles attrs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

__all__ = ["ExportConfig", "RepresentationConfig", "register_schemas"]


@dataclass
class RepresentationConfig:
    """One representation of a pipeline; unset engine keys take the global value."""

    type: str = "???"
    dependencies: Any = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
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
    output_dir: str | None = None
    output_root: str | None = None
    """When output_dir is unset: export into <output_root>/<video stem> (multiruns over videos)."""
    frames: Any | None = None
    representations: dict[str, RepresentationConfig] = field(default_factory=dict)
    batch_size: int = 8
    binary_format: str = "npz"
    image_format: str = "none"
    output_dtype: str | None = None
    output_size: Any | None = None
    device: str = "cpu"
    overwrite: bool = False
    exception_mode: str = "stop"
    video_backend: str = "auto"
    writers: int = 2
    progress: bool | None = None
    """Progress bars; None shows them when stderr is a terminal."""


def register_schemas() -> None:
    """Make the schemas available to the primary config's defaults list."""
    ConfigStore.instance().store(name="export_schema", node=ExportConfig)
