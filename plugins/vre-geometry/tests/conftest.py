"""Fixtures of vre-geometry's tests: a registry with the analytic scene types (depth, classes) besides core's test types."""
from __future__ import annotations

from typing import Any

import pytest

from vre_geometry.testing import register_scene_types


@pytest.fixture
def scene_registry(registry: Any) -> Any:
    """The global registry with vrecore's test types (test/grey...) and test/scene-depth, test/scene-semantic.

    ``registry`` (the repository's root conftest) resets the registry afterwards, which drops these too.
    """
    return register_scene_types(registry)
