"""Hydra schemas of the `vre export` config (stdlib dataclasses: OmegaConf mishandles attrs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore

__all__ = ["ExportConfig", "RepresentationConfig", "register_schemas"]


@dataclass
class RepresentationConfig:
    """One representation of a pipeline; unset engine keys take the global value."""

    type: str = "???"
    dependencies: Any = field(default_factory=list)
    parameters: Dict[str, Any] = field(default_factory=dict)
    batch_size: Optional[int] = None
    binary_format: Optional[str] = None
    image_format: Optional[str] = None
    output_dtype: Optional[str] = None
    output_size: Optional[Any] = None
    export: bool = True


@dataclass
class ExportConfig:
    """`vre export`: which video, where, which frames, and the representation graph."""

    video: Optional[str] = None
    output_dir: Optional[str] = None
    output_root: Optional[str] = None
    """When output_dir is unset: export into <output_root>/<video stem> (multiruns over videos)."""
    frames: Optional[Any] = None
    representations: Dict[str, RepresentationConfig] = field(default_factory=dict)
    batch_size: int = 8
    binary_format: str = "npz"
    image_format: str = "none"
    output_dtype: Optional[str] = None
    output_size: Optional[Any] = None
    device: str = "cpu"
    overwrite: bool = False
    exception_mode: str = "stop"
    video_backend: str = "auto"
    writers: int = 2
    progress: Optional[bool] = None
    """Progress bars; None shows them when stderr is a terminal."""


def register_schemas() -> None:
    """Make the schemas available to the primary config's defaults list."""
    ConfigStore.instance().store(name="export_schema", node=ExportConfig)
