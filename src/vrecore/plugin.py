"""The one module a vre plugin imports: hook marker, representation bases, weights, errors and layout helpers.

A plugin's code imports from ``vrecore.plugin`` only (its tests add `vrecore.testing` and the public
``vrecore`` API), so that the core's modules can move without breaking it: ``hookimpl`` marks the hooks
(`register_representations`, `register_config_paths`); `Representation` with its value types (`Role`,
`OutputSpec`, `Batch`, whose ``neighbours`` carry the frames a type asks for with `frame_offsets`) is the
base of every type; `WeightedRepresentation` declares weights as data (`WeightVariant` and its sources) and
`LearnedRepresentation` adds a torch model's set-up and tear-down; the errors are the one-line ones the CLI
prints; `MultiTaskDataset` reads an export for training (a plugin's own `vre` command, e.g. `vre distill`);
`SeedDiskLayout` gives a type the seed tool's stored form, and `SeedType` (with the translators
`seed_parameter`, `seed_only`, `seed_pair`) maps the seed tool's type names a plugin owns (`register_seed_types`).
Each name loads on first use, and none imports torch or model code. docs/plugins.md describes each name.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what the lazy table below gives, for type checkers
    from vrecore.data.dataset import MultiTaskDataset
    from vrecore.errors import ConfigError, PluginError, SourceError, VreError, WeightsError
    from vrecore.graph.hookspecs import hookimpl
    from vrecore.graph.layouts import SeedDiskLayout, disk_layout_field
    from vrecore.graph.representation import Batch, OutputSpec, Representation, Role, optional_size
    from vrecore.graph.seed_types import SeedTranslator, SeedType, seed_only, seed_pair, seed_parameter
    from vrecore.store.base import FileFacts, Store
    from vrecore.store.files import encode_image
    from vrecore.store.npz import crc32, npz_bytes
    from vrecore.streaming.sources.base import StreamSource
    from vrecore.streaming.targets.base import StreamTarget
    from vrecore.weights.cache import sha256_file, weights_dir
    from vrecore.weights.convert import module_state_dict
    from vrecore.weights.learned import LearnedRepresentation
    from vrecore.weights.loading import load_into, load_safetensors
    from vrecore.weights.representation import WeightedRepresentation, variant_field
    from vrecore.weights.resolving import ResolvedWeights, damaged_fix
    from vrecore.weights.variants import ConvertRecipe, PackageSource, WeightVariant

_LAZY = {
    "hookimpl": "vrecore.graph.hookspecs",
    "Representation": "vrecore.graph.representation", "Role": "vrecore.graph.representation",
    "OutputSpec": "vrecore.graph.representation", "Batch": "vrecore.graph.representation",
    "optional_size": "vrecore.graph.representation",
    "WeightedRepresentation": "vrecore.weights.representation", "WeightVariant": "vrecore.weights.variants",
    "ConvertRecipe": "vrecore.weights.variants", "PackageSource": "vrecore.weights.variants",
    "ResolvedWeights": "vrecore.weights.resolving", "variant_field": "vrecore.weights.representation",
    "load_into": "vrecore.weights.loading", "load_safetensors": "vrecore.weights.loading",
    "damaged_fix": "vrecore.weights.resolving",
    "module_state_dict": "vrecore.weights.convert",
    "sha256_file": "vrecore.weights.cache", "weights_dir": "vrecore.weights.cache",
    "LearnedRepresentation": "vrecore.weights.learned",
    "SeedDiskLayout": "vrecore.graph.layouts", "disk_layout_field": "vrecore.graph.layouts",
    "SeedType": "vrecore.graph.seed_types", "SeedTranslator": "vrecore.graph.seed_types",
    "seed_parameter": "vrecore.graph.seed_types", "seed_only": "vrecore.graph.seed_types",
    "seed_pair": "vrecore.graph.seed_types",
    "VreError": "vrecore.errors", "ConfigError": "vrecore.errors", "PluginError": "vrecore.errors",
    "SourceError": "vrecore.errors", "WeightsError": "vrecore.errors",
    "Store": "vrecore.store.base", "FileFacts": "vrecore.store.base", "npz_bytes": "vrecore.store.npz",
    "crc32": "vrecore.store.npz", "encode_image": "vrecore.store.files",
    "StreamSource": "vrecore.streaming.sources.base", "StreamTarget": "vrecore.streaming.targets.base",
    "MultiTaskDataset": "vrecore.data.dataset",
}

__all__ = [
    "Batch",
    "ConfigError",
    "ConvertRecipe",
    "FileFacts",
    "LearnedRepresentation",
    "MultiTaskDataset",
    "OutputSpec",
    "PackageSource",
    "PluginError",
    "Representation",
    "ResolvedWeights",
    "Role",
    "SeedDiskLayout",
    "SeedTranslator",
    "SeedType",
    "SourceError",
    "Store",
    "StreamSource",
    "StreamTarget",
    "VreError",
    "WeightVariant",
    "WeightedRepresentation",
    "WeightsError",
    "crc32",
    "damaged_fix",
    "disk_layout_field",
    "encode_image",
    "hookimpl",
    "load_into",
    "load_safetensors",
    "module_state_dict",
    "npz_bytes",
    "optional_size",
    "seed_only",
    "seed_pair",
    "seed_parameter",
    "sha256_file",
    "variant_field",
    "weights_dir",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'vrecore.plugin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
