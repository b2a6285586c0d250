"""depth/marigold: the missing-diffusers message, parameter checks, and a tiny pipeline through the Hub path."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vre_depth.marigold import Marigold
from vrecore.errors import GraphError, PluginError, WeightsError
from vrecore.graph.build import build_graph
from vrecore.graph.representation import Batch
from vrecore.testing import RepresentationTestSuite, use_hub_cache


def graph_of(**parameters):
    return build_graph({"representations": {"m": {"type": "depth/marigold", "parameters": parameters}}})


def test_without_diffusers_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers now fails, as when not installed
    with pytest.raises(PluginError, match=r"depth/marigold needs the diffusers package.*pip install 'vre-depth\[marigold\]'"):
        graph_of()["m"].representation.preflight()


def test_without_diffusers_setup_says_what_to_install(monkeypatch):
    pytest.importorskip("diffusers")
    rep = Marigold(name="m")
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(PluginError, match=r"pip install 'vre-depth\[marigold\]'"):
        rep.setup("cpu")


@pytest.mark.parametrize("parameters,message", [
    ({"variant": "v2"}, "unknown variant 'v2'; choose one of v1-1, v1-0, lcm-v1-0"),
    ({"denoising_steps": 0}, "denoising_steps must be an integer >= 1"),
    ({"denoising_steps": 2.5}, "denoising_steps must be an integer >= 1"),
    ({"ensemble_size": 0}, "ensemble_size must be an integer >= 1"),
    ({"processing_resolution": 770}, "processing_resolution must be an integer >= 0 and a multiple of 8"),
    ({"processing_resolution": -8}, "processing_resolution must be an integer >= 0"),
    ({"seed": True}, "seed must be an integer >= 0"),
    ({"percentiles": [50, 10]}, "percentiles must be \\[low, high\\] with 0 <= low < high <= 100"),
])
def test_invalid_parameters_are_graph_errors(parameters, message):
    pytest.importorskip("diffusers")
    with pytest.raises(GraphError, match=message):
        graph_of(**parameters)


def test_valid_parameters_are_kept():
    pytest.importorskip("diffusers")
    node = graph_of(variant="lcm-v1-0", denoising_steps=4, ensemble_size=3, processing_resolution=0, seed=7)["m"]
    assert node.parameters == {"variant": "lcm-v1-0", "weights_path": None, "denoising_steps": 4, "ensemble_size": 3,
                               "processing_resolution": 0, "seed": 7, "percentiles": (2.0, 98.0), "disk_layout": "vre"}


class TestMarigold(RepresentationTestSuite):
    type_name = "depth/marigold"
    parameters = {"processing_resolution": 32, "denoising_steps": 1}
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _weights(self, marigold_hub: Path) -> None:
        """Every check loads the default variant from an offline Hub cache holding the tiny pipeline."""


def frames(n: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (n, 24, 32, 3), dtype=np.uint8)


def test_ensembles_and_seeds_on_the_tiny_pipeline(marigold_hub):
    rep = Marigold(name="m", variant="lcm-v1-0", processing_resolution=32, denoising_steps=2, ensemble_size=3)
    rep.setup("cpu")
    batch = Batch(indices=np.array([4, 5]), frames=frames(2), deps={})
    depth = rep.compute(batch)
    assert depth.shape == (2, 24, 32, 1) and depth.dtype == np.float32
    assert depth.min() == 0.0 and depth.max() == 1.0
    np.testing.assert_array_equal(rep.compute(batch), depth)  # the same frames and seed: the same noise
    other = Marigold(name="m", variant="lcm-v1-0", processing_resolution=32, denoising_steps=2, ensemble_size=3, seed=1)
    other.setup("cpu")
    assert not np.array_equal(other.compute(batch), depth)
    rep.teardown()
    with pytest.raises(RuntimeError, match="setup"):
        rep.compute(batch)


def test_a_corrupt_pipeline_is_a_weights_error(tiny_marigold, tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    folder = tmp_path / "copy"
    for f in tiny_marigold.rglob("*"):
        if f.is_file():
            (folder / f.relative_to(tiny_marigold)).parent.mkdir(parents=True, exist_ok=True)
            (folder / f.relative_to(tiny_marigold)).write_bytes(f.read_bytes())
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[:100])
    use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(WeightsError, match=r"weights 'marigold-depth-v1-1' \(local path .*cannot load the Marigold pipeline"):
        Marigold(name="m", weights_path=folder).setup("cpu")


def test_offline_without_the_weights_names_the_variant(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(WeightsError, match=r"^weights 'marigold-depth-v1-1' \(prs-eth/marigold-depth-v1-1@main, 5.2 GB\) "
                                           r"are not in the Hugging Face cache .* HF_HUB_OFFLINE=1 forbids downloading; "
                                           r"get them with `vre weights fetch marigold-depth-v1-1`"):
        Marigold(name="m").preflight()
