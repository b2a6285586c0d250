"""Fixtures of the vre-flow tests: a real textured frame, one compute thread (the root conftest gives each test
its own vre cache)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


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
    from vrecore.frames.video import open_video

    with open_video(bikes_video) as source:
        return source.get_batch([150])[0]
