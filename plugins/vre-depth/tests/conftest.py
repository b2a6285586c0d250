"""Tiny random-weight checkpoints of vre-depth's architectures, served from a temporary offline Hub cache."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from vre_depth.testing import TINY_ARCHITECTURES, write_tiny_depth_model, write_tiny_marigold
from vre_depth.variants import DA2_VARIANTS, DPT_VARIANTS, MARIGOLD_VARIANTS
from vrecore.testing import populate_hub_cache, use_hub_cache

# Which tiny architecture stands in for each variant's real checkpoint.
TINY_OF = {("dpt", "hybrid-midas"): "dpt-hybrid", ("dpt", "large"): "dpt", ("da2", "small"): "da2",
           ("da2", "base"): "da2"}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Architecture name → a folder with config.json and model.safetensors of a tiny random model."""
    root = tmp_path_factory.mktemp("tiny")
    return {name: write_tiny_depth_model(name, root / name) for name in TINY_ARCHITECTURES}


@pytest.fixture(scope="session")
def tiny_hub(tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hub cache holding, for every DPT and DA2 variant's repo and pinned revision, a tiny checkpoint."""
    cache = tmp_path_factory.mktemp("hub")
    for (family, name), tiny in TINY_OF.items():
        variant = (DPT_VARIANTS if family == "dpt" else DA2_VARIANTS)[name]
        populate_hub_cache(cache, variant.repo_id, variant.revision,
                           {f: tiny_checkpoints[tiny] / f for f in variant.filenames})
    return cache


@pytest.fixture
def no_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the published sha256 of the variants: the tiny stand-ins are other files."""
    for table in (DPT_VARIANTS, DA2_VARIANTS, MARIGOLD_VARIANTS):
        for name, variant in list(table.items()):
            monkeypatch.setitem(table, name, attrs.evolve(variant, sha256=None))


@pytest.fixture
def hub(tiny_hub: Path, monkeypatch: pytest.MonkeyPatch, no_digests: None) -> Iterator[Path]:
    """huggingface_hub pointed at the tiny cache, offline."""
    yield use_hub_cache(monkeypatch, tiny_hub)


@pytest.fixture(scope="session")
def tiny_marigold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MarigoldDepthPipeline saved with the file layout of the prs-eth repos."""
    pytest.importorskip("diffusers")
    return write_tiny_marigold(tmp_path_factory.mktemp("marigold"))


@pytest.fixture
def marigold_hub(tiny_marigold: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_digests: None) -> Path:
    """huggingface_hub offline on a cache where every Marigold variant is the tiny pipeline."""
    cache = tmp_path / "hub"
    for variant in MARIGOLD_VARIANTS.values():
        populate_hub_cache(cache, variant.repo_id, variant.revision, {f: tiny_marigold / f for f in variant.filenames})
    return use_hub_cache(monkeypatch, cache)
