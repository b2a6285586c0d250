"""PHG-MAE-Distil (the seed's "safeuav"): sizes, shapes, batching, weights round trip.

Run: PYTHONPATH=src:plugins/vre-semantic/src python -m pytest plugins/vre-semantic/tests/test_phg_mae.py -q
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("huggingface_hub")


from vre_semantic._phg_mae import PHGMAEDistil, preprocess_rgb  # noqa: E402
from vre_semantic.labels import DRONESCAPES_CLASSES, DRONESCAPES_COLORS  # noqa: E402
from vre_semantic.testing import (  # noqa: E402
    build_phg_mae_distil,
    infer_phg_mae_config,
    phg_mae_layout_from_seed_hparams,
)
from vre_semantic.variants import PHG_MAE_SIZES, PHG_MAE_VARIANTS, SEED_RGB_MEAN, SEED_RGB_STD  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.plugin import load_into, load_safetensors, sha256_file  # noqa: E402
from vrecore.weights.convert import convert_checkpoint  # noqa: E402

NOMINAL = {"150k": 150_000, "430k": 430_000, "1.1M": 1_100_000, "4.4M": 4_400_000}


@pytest.fixture(autouse=True)
def _few_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


def _randomised(model: PHGMAEDistil, seed: int = 0) -> PHGMAEDistil:
    """Non-trivial BatchNorm statistics so that eval-mode outputs depend on every tensor."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model.eval()


def test_classes_and_colors():
    assert DRONESCAPES_CLASSES == (
        "land", "forest", "residential", "road", "little-objects", "water", "sky", "hill",
    )
    assert len(DRONESCAPES_COLORS) == 8 and len(set(DRONESCAPES_COLORS)) == 8
    assert DRONESCAPES_COLORS[0] == (0, 255, 0) and DRONESCAPES_COLORS[-1] == (127, 127, 63)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in DRONESCAPES_COLORS)


@pytest.mark.parametrize("size", list(NOMINAL))
def test_parameter_counts(size: str):
    torch.manual_seed(0)
    model = build_phg_mae_distil(size)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - NOMINAL[size]) <= 0.10 * NOMINAL[size], (size, n)
    assert not model.training
    assert infer_phg_mae_config(model.state_dict()) == {
        "size": size, "num_filters": PHG_MAE_SIZES[size], "in_channels": 11, "out_channels": 11,
    }


def test_state_dict_names_and_shapes_match_the_seed_layout():
    n = PHG_MAE_SIZES["430k"]
    sd = build_phg_mae_distil("430k").state_dict()
    assert len(sd) == 149  # 21 blocks x (conv w, b + 5 BatchNorm entries) + head w, b
    expected = {
        "encoder.conv1.0.weight": (n, 11, 3, 3),
        "encoder.conv3.0.weight": (n, n, 3, 3),
        "encoder.dilate1.0.weight": (8 * n, 4 * n, 3, 3),
        "encoder.dilate6.1.running_var": (8 * n,),
        "encoder.conv10_t.0.weight": (8 * n, 4 * n, 3, 3),  # ConvTranspose2d: [in, out, k, k]
        "encoder.conv11.0.weight": (4 * n, 8 * n, 3, 3),
        "encoder.conv14_t.0.weight": (n, n, 3, 3),
        "encoder.conv15.0.weight": (n, 2 * n, 3, 3),
        "encoder.conv15.1.num_batches_tracked": (),
        "decoder.weight": (11, n, 1, 1),
        "decoder.bias": (11,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(".2." in k or ".3." in k for k in sd)  # ReLU/Dropout carry no tensors


@pytest.mark.parametrize("hw", [(37, 53), (9, 17), (1, 1), (64, 96)])
def test_output_shapes_at_odd_sizes(hw: tuple[int, int]):
    model = _randomised(build_phg_mae_distil("150k"))
    with torch.no_grad():
        y = model(torch.randn(2, 3, *hw))
    assert y.shape == (2, 8, *hw) and y.dtype == torch.float32 and torch.isfinite(y).all()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 4, *hw))


def test_other_channel_layouts():
    plain = _randomised(build_phg_mae_distil("150k", in_channels=3, out_channels=8, semantic_offset=0))
    with torch.no_grad():
        assert plain(torch.randn(1, 3, 20, 30)).shape == (1, 8, 20, 30)
    seed_testing = _randomised(build_phg_mae_distil("150k", in_channels=15, out_channels=15,
                                                    rgb_offset=4, semantic_offset=7))
    x = torch.randn(1, 3, 16, 24)
    full = torch.zeros(1, 15, 16, 24)
    full[:, 4:7] = x
    with torch.no_grad():
        assert torch.equal(seed_testing(x), seed_testing.forward_all(full)[:, 7:15])
    with pytest.raises(ValueError, match="semantic slot"):
        PHGMAEDistil(6, in_channels=3, out_channels=8, semantic_offset=3)
    with pytest.raises(ValueError, match="unknown PHG-MAE-Distil size"):
        build_phg_mae_distil("2M")


@pytest.mark.parametrize("size", ["150k", "1.1M"])
def test_batched_equals_unbatched(size: str):
    torch.manual_seed(1)
    model = _randomised(build_phg_mae_distil(size), seed=2)
    x = torch.randn(3, 3, 29, 41)
    with torch.no_grad():
        batched = model(x)
        singles = torch.cat([model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-5)


def test_the_declared_value_counts_are_the_architectures():
    for size, variant in PHG_MAE_VARIANTS.items():
        sd = build_phg_mae_distil(size).state_dict()
        assert variant.size == 4 * sum(v.numel() for v in sd.values()), size
        assert variant.num_params == sum(p.numel() for p in build_phg_mae_distil(size).parameters()), size


def test_the_seed_checkpoint_converts_imports_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]):
    """The path a user takes: the seed's Lightning .ckpt -> vre convert-weights --variant -> vre weights import."""
    from vre_semantic.phg_mae import PHGMAEDistilSemantic
    from vrecore.cli.app import main

    model = _randomised(build_phg_mae_distil("430k"), seed=4)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {"lr": 0.001}, "epoch": 3},
               tmp_path / "model_430k.ckpt")
    monkeypatch.chdir(tmp_path)
    assert main(["convert-weights", "model_430k.ckpt", "phg-mae-distil-430k.safetensors",
                 "--variant", "phg-mae-distil-430k"]) == 0
    assert "next: vre weights import phg-mae-distil-430k phg-mae-distil-430k.safetensors" in capsys.readouterr().out
    rep = PHGMAEDistilSemantic(name="p", variant="model_430k", input_size=[33, 47])
    with pytest.raises(WeightsError, match="not published ready to load"):
        rep.preflight()
    assert main(["weights", "import", "phg-mae-distil-430k", "phg-mae-distil-430k.safetensors"]) == 0
    rep.preflight()
    rep.setup("cpu")
    x = np.random.default_rng(0).integers(0, 256, (2, 33, 47, 3), dtype=np.uint8)
    from vrecore.graph.representation import Batch

    got = rep.compute(Batch(indices=np.arange(2), frames=x, deps={}))
    with torch.no_grad():
        ref = model(preprocess_rgb(x, size=(33, 47))).softmax(1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert rep.weights().source.startswith("imported into ")
    assert rep.weights_identity() == {"variant": "phg-mae-distil-430k", "commit": None,
                                      "sha256": {"model.safetensors": sha256_file(tmp_path / "phg-mae-distil-430k.safetensors")}}

    with pytest.raises(WeightsError, match=r"shape mismatch.*encoder.conv1.0.weight: checkpoint \[10, 11, 3, 3\] "
                                           r"vs model \[6, 11, 3, 3\]"):
        load_into(build_phg_mae_distil("150k"), load_safetensors(rep.weights().path), "phg-mae-distil-430k")


def test_a_seed_checkpoint_with_another_digest_is_refused(tmp_path: Path):
    from vrecore.weights.convert import convert_for_variant

    torch.save({"state_dict": build_phg_mae_distil("150k").state_dict()}, tmp_path / "model_150k.ckpt")
    with pytest.raises(WeightsError, match=r"checkpoint .*model_150k.ckpt has sha256 [0-9a-f]{64}, but model_150k.ckpt "
                                           r"published at https://gitlab.com/.*/model_150k.ckpt has 7d54fffcf5ace490ad2c"
                                           r"8e42dc4751acd2394598b9efb50d8ef0562586ea4fcd"):
        convert_for_variant(tmp_path / "model_150k.ckpt", tmp_path / "out.safetensors", "phg-mae-distil-150k")
    assert not (tmp_path / "out.safetensors").exists()


def _seed_like_hparams() -> dict:
    """The shape of a seed checkpoint's ``hyper_parameters`` (values from the seed's 'testing' variant)."""
    return {
        "cfg": {
            "model": {
                "parameters": {"in_channels": 15, "out_channels": 15, "num_filters": 6},
                "hparams": {"data_shape": {
                    "camera_normals_output": [3, 50, 50], "depth_output": [1, 50, 50],
                    "rgb": [3, 50, 50], "semantic_output": [8, 50, 50],
                }},
            },
            "data": {"parameters": {"task_names": ["depth_output", "camera_normals_output", "rgb", "semantic_output"]}},
        },
        "statistics": {"rgb": [[0.0, 0.0, 0.0], [255.0, 255.0, 255.0], list(SEED_RGB_MEAN), list(SEED_RGB_STD)]},
    }


def test_seed_style_lightning_checkpoint_converts_and_loads(tmp_path: Path):
    hparams = _seed_like_hparams()
    layout = phg_mae_layout_from_seed_hparams(hparams)
    assert layout == {
        "num_filters": 6, "in_channels": 15, "out_channels": 15, "rgb_offset": 4, "semantic_offset": 7,
        "train_size": (50, 50), "rgb_mean": SEED_RGB_MEAN, "rgb_std": SEED_RGB_STD,
    }
    kw = {k: layout[k] for k in ("in_channels", "out_channels", "rgb_offset", "semantic_offset")}
    model = _randomised(build_phg_mae_distil("150k", **kw), seed=5)
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": hparams, "epoch": 99,
            "pytorch-lightning_version": "2.4.0"}
    torch.save(ckpt, tmp_path / "model_150k.ckpt")

    out = convert_checkpoint(tmp_path / "model_150k.ckpt", tmp_path / "model_150k.safetensors", key="state_dict")
    sd = load_safetensors(out)
    assert infer_phg_mae_config(sd) == {"size": "150k", "num_filters": 6, "in_channels": 15, "out_channels": 15}
    fresh = load_into(build_phg_mae_distil("150k", **kw), sd, "phg-mae-distil-150k")
    x = preprocess_rgb(np.random.default_rng(0).integers(0, 256, (2, 40, 60, 3), dtype=np.uint8),
                       mean=layout["rgb_mean"], std=layout["rgb_std"], size=layout["train_size"])
    assert x.shape == (2, 3, 50, 50)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_preprocess_rgb_matches_seed_normalisation():
    frames = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 100
    x = preprocess_rgb(frames)
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32
    expected = [(255 - SEED_RGB_MEAN[0]) / SEED_RGB_STD[0], (0 - SEED_RGB_MEAN[1]) / SEED_RGB_STD[1],
                (100 - SEED_RGB_MEAN[2]) / SEED_RGB_STD[2]]
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(expected, dtype=torch.float32))
    assert preprocess_rgb(torch.as_tensor(frames), size=(8, 12)).shape == (1, 3, 8, 12)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        preprocess_rgb(frames[0])
