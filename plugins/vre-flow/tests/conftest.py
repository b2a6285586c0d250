"""Fixtures of the vre-flow tests: a real textured frame, a private vre cache, one compute thread."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _private_vre_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never write into the user's ~/.cache/vre.
    monkeypatch.setenv("VRE_CACHE", str(tmp_path_factory.getbasetemp() / "vre_cache"))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny frames on busy shared cores: thread barriers would dominate (see vre-edges' tests).
    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)


@pytest.fixture(scope="session")
def textured_frame(bikes_video: Path) -> np.ndarray:
    """Frame 150 of bikes.mp4 (640x272): a street with texture everywhere, unlike the bus roof of the first frames."""
    from vrecore.frames import open_video

    with open_video(bikes_video) as source:
        return source.get_batch([150])[0]
