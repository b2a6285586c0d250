"""Helpers for vre's tests and for plugin authors' tests: a local Hub cache for weights (`hub`), representation
types and throwaway plugins for engine tests (`types`), and the conformance suite each plugin's tests subclass
(`suite`).

Nothing here is imported by vre at run time, and heavy libraries are imported inside the functions.
"""

from __future__ import annotations

from vrecore.testing.hub import LocalHub, link_imported_weights, populate_hub_cache, use_hub_cache
from vrecore.testing.suite import RepresentationTestSuite
from vrecore.testing.types import (
    TEST_DISTRIBUTION,
    TEST_TYPES_PLUGIN,
    BrokenSetup,
    FailOn,
    GreyMean,
    Learned,
    MissingWeights,
    NeighbourDelta,
    OutOfMemoryAbove,
    OutOfMemoryOnce,
    Pooled,
    Scaled,
    Slow,
    WeightedGrey,
    register_plugin,
    register_test_types,
    scale_weights,
    unregister_plugin,
    unregister_test_types,
    write_test_types_distribution,
)

__all__ = [
    "BrokenSetup",
    "FailOn",
    "GreyMean",
    "Learned",
    "LocalHub",
    "MissingWeights",
    "NeighbourDelta",
    "OutOfMemoryAbove",
    "OutOfMemoryOnce",
    "Pooled",
    "RepresentationTestSuite",
    "Scaled",
    "Slow",
    "TEST_DISTRIBUTION",
    "TEST_TYPES_PLUGIN",
    "WeightedGrey",
    "link_imported_weights",
    "populate_hub_cache",
    "register_plugin",
    "register_test_types",
    "scale_weights",
    "unregister_plugin",
    "unregister_test_types",
    "use_hub_cache",
    "write_test_types_distribution",
]
