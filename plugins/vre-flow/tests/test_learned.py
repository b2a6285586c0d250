"""RAFT and RIFE with weights made here (seeded random init): loading, conversion, shapes, determinism, iterations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vre_flow.testing import make_test_weights as make_weights
from vre_flow.testing import neighbour_batch, untrained_network
from vrecore.errors import WeightsError


@pytest.fixture(scope="module")
def _imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test weights placed as a user places converted ones: `vre weights import NAME FILE` (small, things, hdv2),
    once for the module (the vre cache it made)."""
    from vrecore.cli.app import main

    made = tmp_path_factory.mktemp("flow-weights")
    mp = pytest.MonkeyPatch()
    mp.setenv("VRE_CACHE", str(made / "cache"))
    try:
        for name, kind in (("raft-small", "raft-small"), ("raft-things", "raft-large"), ("rife-hdv2", "rife")):
            assert main(["weights", "import", name, str(make_weights(kind, made / f"{name}.safetensors"))]) == 0
    finally:
        mp.undo()
    return made / "cache"


@pytest.fixture
def cached_weights(_imported: Path) -> Path:
    """The module's imports in this test's own vre cache (the ~80 MB of weights linked); the made files' folder."""
    from vrecore.testing import link_imported_weights

    link_imported_weights(_imported)
    return _imported.parent


def _clip(n: int = 4, shape: tuple[int, int] = (64, 96)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, *shape, 3), dtype=np.uint8)


def _run(rep, clip: np.ndarray, indices) -> np.ndarray:
    return rep.compute(neighbour_batch(rep.frame_offsets(), clip, np.asarray(indices)))


def test_missing_weights_say_where_to_get_them_in_one_line():
    from vre_flow.learned import RAFTFlow, RIFEFlow

    for rep, command in ((RAFTFlow(name="raft"), "vre convert-weights raft-things.ckpt raft-things.safetensors "
                                                 "--variant raft-things"),
                         (RAFTFlow(name="raft", variant="small"), "vre convert-weights raft-small.pth "
                                                                  "raft-small.safetensors --variant raft-small"),
                         (RIFEFlow(name="rife"), "vre convert-weights flownet.ckpt rife-hdv2.safetensors "
                                                 "--variant rife-hdv2")):
        with pytest.raises(WeightsError) as e:
            rep.preflight()
        message = str(e.value)
        assert "\n" not in message and "are not published ready to load" in message
        assert command in message and rep.weight_variant.convert.url in message
        assert f"vre weights import {rep.weight_variant.name} " in message
        with pytest.raises(WeightsError):
            rep.setup("cpu")
        assert rep.weights_identity() == {"variant": rep.weight_variant.name, "commit": None, "sha256": None}


def test_export_stops_before_decoding_when_weights_are_missing(sample_video, tmp_path):
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    graph = build_graph({"representations": {"flow": {"type": "optical-flow/raft", "parameters": {"variant": "small"}}}})
    with pytest.raises(WeightsError, match="representation 'flow' \\(optical-flow/raft\\): weights 'raft-small'"):
        run_export(graph, sample_video, tmp_path / "out")
    assert not (tmp_path / "out" / "flow" / "npz").exists()


def test_an_official_style_checkpoint_converted_and_imported_loads(tmp_path, monkeypatch):
    """The documented path: a DataParallel checkpoint ("module." keys, as RAFT's are) -> the variant's
    `vre convert-weights` command -> `vre weights import` -> setup finds it."""
    import torch

    from vre_flow.learned import RAFTFlow
    from vrecore.cli.app import main

    monkeypatch.chdir(tmp_path)
    state = {f"module.{k}": v for k, v in untrained_network("raft-small").state_dict().items()}
    torch.save(state, tmp_path / "raft-small.pth")
    variant = RAFTFlow(name="raft", variant="small").weight_variant
    assert main(variant.convert_command.split()[1:]) == 0
    assert main(["weights", "import", variant.name, variant.convert_output]) == 0
    rep = RAFTFlow(name="raft", variant="small", iters=2)
    rep.preflight()
    rep.setup("cpu")
    expected = untrained_network("raft-small").state_dict()
    for k, v in rep._model.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)
    identity = rep.weights_identity()
    assert identity["variant"] == "raft-small" and len(identity["sha256"]["raft-small.safetensors"]) == 64


@pytest.mark.parametrize(("cls", "params", "size"), [
    ("RAFTFlow", {"variant": "small", "iters": 3}, (64, 96)),
    ("RAFTFlow", {"variant": "things", "iters": 2}, (64, 96)),
    ("RAFTFlow", {"variant": "small", "iters": 2, "input_size": [72, 120]}, (72, 120)),
    ("RIFEFlow", {}, (32, 48)),
    ("RIFEFlow", {"uhd": True}, (16, 24)),
])
def test_shapes_and_determinism(cls, params, size, cached_weights):
    import vre_flow.learned

    rep = getattr(vre_flow.learned, cls)(name="flow", **params)
    rep.setup("cpu")
    clip = _clip()
    first = _run(rep, clip, [0, 1, 2, 3])
    assert first.shape == (4, *size, 2) and first.dtype == np.float32
    assert np.isfinite(first).all() and np.abs(first).max() > 0
    np.testing.assert_array_equal(_run(rep, clip, [0, 1, 2, 3]), first)
    resized = rep.resize(first, (64, 96))
    assert resized.shape == (4, 64, 96, 2)


def test_iterations_refine_the_flow(cached_weights):
    from vre_flow.learned import RAFTFlow

    outputs = {}
    for iters in (1, 2, 4):
        rep = RAFTFlow(name="raft", variant="small", iters=iters)
        rep.setup("cpu")
        outputs[iters] = _run(rep, _clip(), [0, 1])
    assert not np.allclose(outputs[1], outputs[2]) and not np.allclose(outputs[2], outputs[4])


def test_seed_units_divide_x_by_height_and_y_by_width(cached_weights):
    from vre_flow.learned import RIFEFlow

    pixels, seed = (RIFEFlow(name="rife", units=u) for u in ("pixels", "seed"))
    pixels.setup("cpu")
    seed.setup("cpu")
    a, b = _run(pixels, _clip(), [0]), _run(seed, _clip(), [0])
    h, w = a.shape[1:3]
    np.testing.assert_allclose(b[..., 0], a[..., 0] / h, rtol=1e-6)
    np.testing.assert_allclose(b[..., 1], a[..., 1] / w, rtol=1e-6)
