"""semantic/phg-mae-distil and semantic/mask2former: conformance, offline Hub loading, clear weight errors."""
from __future__ import annotations

import functools
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# transformers found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")

from vre_semantic.labels import COCO_PANOPTIC_CLASSES, DRONESCAPES_CLASSES, MAPILLARY_VISTAS_CLASSES  # noqa: E402
from vre_semantic.mask2former import Mask2FormerSemantic, inference_size  # noqa: E402
from vre_semantic.phg_mae import PHGMAEDistilSemantic  # noqa: E402
from vre_semantic.testing import (  # noqa: E402
    populate_mask2former_hub_cache,
    write_mask2former_weights,
    write_phg_mae_weights,
)
from vre_semantic.variants import MASK2FORMER_VARIANTS, PHG_MAE_VARIANTS  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.graph.representation import Batch  # noqa: E402
from vrecore.testing import RepresentationTestSuite, use_hub_cache  # noqa: E402

_ROOT = tempfile.TemporaryDirectory(prefix="vre-semantic-weights-")


@functools.cache
def tiny(kind: str) -> Path:
    """Tiny random weights, written once per test process: ``phg-<size>`` files or Mask2Former variant folders."""
    root = Path(_ROOT.name)
    if kind.startswith("phg-"):
        return write_phg_mae_weights(root / f"{kind}.safetensors", kind[4:])
    return write_mask2former_weights(root / kind, kind)


@pytest.fixture(autouse=True)
def _one_thread():
    # torch's intra-op threads fight over the 2 shared cores; one thread is faster here and deterministic.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def frames(n: int, h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def run(rep, x: np.ndarray) -> np.ndarray:
    return rep.compute(Batch(indices=np.arange(len(x)), frames=x, deps={}))


def seed_semantic_inference(model, x: np.ndarray) -> np.ndarray:
    """The seed's semantic map of frames at the model's input size (no resize, no padding): ImageNet-normalised
    input, masks upsampled x4 (bilinear), sigmoid, class probabilities times masks summed over queries."""
    mean = torch.tensor((123.675, 116.28, 103.53)).view(1, 3, 1, 1)
    std = torch.tensor((58.395, 57.12, 57.375)).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = model.eval()(pixel_values=(torch.from_numpy(x).permute(0, 3, 1, 2).float() - mean) / std)
        masks = torch.nn.functional.interpolate(pred.masks_queries_logits, size=x.shape[1:3], mode="bilinear",
                                                align_corners=False).sigmoid()
        sem = torch.einsum("bqc,bqhw->bhwc", pred.class_queries_logits.softmax(-1)[..., :-1], masks)
    return (sem / sem.sum(-1, keepdim=True)).numpy()


# -- conformance ---------------------------------------------------------------------------------------------
class TestPHGMAEDistil(RepresentationTestSuite):
    type_name = "semantic/phg-mae-distil"
    parameters = {"variant": "150k", "input_size": [16, 24]}
    atol = 1e-4

    def prepare(self, representation, tmp_path: Path) -> None:
        representation.weights_path = str(tiny("phg-150k"))


class TestPHGMAEDistilProbabilities(TestPHGMAEDistil):
    parameters = {"variant": "model_150k", "disk_form": "probabilities"}


class TestMask2FormerCoco(RepresentationTestSuite):
    type_name = "semantic/mask2former"
    parameters = {"variant": "swin-large-coco-panoptic", "min_size": 48, "max_size": 80}
    atol = 1e-4

    def prepare(self, representation, tmp_path: Path) -> None:
        representation.weights_path = str(tiny(representation.weight_variant.meta["seed_id"]))


class TestMask2FormerMapillarySwin(TestMask2FormerCoco):
    parameters = {"variant": "49189528_0", "min_size": 64, "max_size": 64, "disk_form": "probabilities"}


class TestMask2FormerMapillaryR50(TestMask2FormerCoco):
    parameters = {"variant": "r50-mapillary-vistas-panoptic", "min_size": 40, "max_size": 64}


# -- outputs -------------------------------------------------------------------------------------------------
def test_phg_mae_matches_the_network_with_the_seed_preprocessing():
    from vre_semantic._phg_mae import preprocess_rgb
    from vre_semantic.testing import build_phg_mae_distil
    from vrecore.plugin import load_into, load_safetensors

    rep = PHGMAEDistilSemantic(name="p", variant="150k", weights_path=str(tiny("phg-150k")))
    rep.setup("cpu")
    x = frames(2)
    out = run(rep, x)
    assert out.shape == (2, 540, 960, 8) and out.dtype == np.float32  # the variant's training size
    net = load_into(build_phg_mae_distil("150k"), load_safetensors(tiny("phg-150k")), "t").eval()
    meta = PHG_MAE_VARIANTS["150k"].meta
    with torch.no_grad():
        ref = net(preprocess_rgb(x, mean=meta["rgb_mean"], std=meta["rgb_std"], size=(540, 960))).softmax(1)
    np.testing.assert_allclose(out, ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1, atol=1e-5)
    spec = rep.output_spec()
    assert spec.classes == DRONESCAPES_CLASSES and spec.disk_dtype == "uint8" and len(spec.colors) == 8
    disk = rep.to_disk(out)
    assert disk.dtype == np.uint8 and disk.shape == (2, 540, 960)
    np.testing.assert_array_equal(disk, out.argmax(-1))
    back = rep.from_disk(disk)
    assert back.dtype == np.float32 and back.shape == out.shape and set(np.unique(back)) == {0.0, 1.0}
    images = rep.make_images(back)
    np.testing.assert_array_equal(images[0, 0, 0], rep.output_spec().colors[int(disk[0, 0, 0])])
    meta_out = rep.metadata()
    assert meta_out["classes"] == list(DRONESCAPES_CLASSES) and meta_out["disk_form"] == "argmax"
    assert meta_out["weights"] == {"variant": "phg-mae-distil-150k", "source": f"local path {tiny('phg-150k')}",
                                   "license": "not stated (shipped in the MIT-licensed seed tool)"}
    rep.teardown()
    with pytest.raises(RuntimeError, match="setup"):
        run(rep, x)


def test_mask2former_semantic_inference_matches_the_seed_at_native_size():
    """With no resize and no padding, the output is the seed's: masks upsampled x4 (bilinear), sigmoid, summed."""
    from transformers import Mask2FormerForUniversalSegmentation

    rep = Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(tiny("49189528_0")),
                              min_size=64, max_size=96)
    rep.setup("cpu")
    x = frames(2, 64, 96)
    assert inference_size(64, 96, 64, 96) == (64, 96)
    out = run(rep, x)
    assert out.shape == (2, 64, 96, 65)
    ref = seed_semantic_inference(Mask2FormerForUniversalSegmentation.from_pretrained(str(tiny("49189528_0"))), x)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(out.argmax(-1), ref.argmax(-1))


def test_inference_size_is_detectron2s_resize_shortest_edge():
    assert inference_size(540, 960, 800, 1333) == (750, 1333)
    assert inference_size(540, 960, 2048, 2048) == (1152, 2048)
    assert inference_size(1080, 1920, 800, 1333) == (750, 1333)
    assert inference_size(960, 540, 540, 960) == (960, 540)
    assert inference_size(100, 100, 800, 1333) == (800, 800)


def test_classes_are_declared_before_loading():
    for variant, classes in (("47429163_0", COCO_PANOPTIC_CLASSES), ("49189528_0", MAPILLARY_VISTAS_CLASSES),
                             ("49189528_1", MAPILLARY_VISTAS_CLASSES)):
        spec = Mask2FormerSemantic(name="m", variant=variant).output_spec()
        assert spec.classes == classes and len(spec.colors) == len(classes) and spec.disk_dtype == "uint8"
    assert Mask2FormerSemantic(name="m", disk_form="probabilities").output_spec().disk_dtype == "float16"
    with pytest.raises(ValueError, match=r"unknown variant 'swin-tiny'; choose one of swin-large-coco-panoptic"):
        Mask2FormerSemantic(name="m", variant="swin-tiny")
    with pytest.raises(ValueError, match=r"unknown variant '2M'; choose one of 150k, 430k, 1.1M, 4.4M"):
        PHGMAEDistilSemantic(name="p", variant="2M")
    with pytest.raises(ValueError, match="disk_form must be one of argmax, probabilities"):
        PHGMAEDistilSemantic(name="p", disk_form="logits")
    with pytest.raises(ValueError, match=r"input_size must be \[height, width\]"):
        PHGMAEDistilSemantic(name="p", input_size=[540])
    with pytest.raises(ValueError, match="min_size must be a positive number of pixels or null"):
        Mask2FormerSemantic(name="m", min_size=0)


# -- weights through the real huggingface_hub code, offline ---------------------------------------------------
def test_the_hub_variants_load_from_an_offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = use_hub_cache(monkeypatch, tmp_path / "hub", offline=True)
    populate_mask2former_hub_cache(cache, tmp_path / "work")
    x = frames(1)
    hub_variants = [name for name, v in MASK2FORMER_VARIANTS.items() if v.repo_id is not None]
    assert hub_variants == ["swin-large-coco-panoptic", "swin-large-mapillary-vistas-semantic"]
    for name in hub_variants:
        from_hub = Mask2FormerSemantic(name="m", variant=name, min_size=32, max_size=48)
        from_hub.setup("cpu")
        local = Mask2FormerSemantic(name="m", variant=name, min_size=32, max_size=48,
                                    weights_path=str(tmp_path / "work" / MASK2FORMER_VARIANTS[name].name))
        local.setup("cpu")
        np.testing.assert_array_equal(run(from_hub, x), run(local, x))
        assert from_hub.metadata()["weights"]["source"] == MASK2FORMER_VARIANTS[name].source


def test_missing_weights_say_what_is_missing_and_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    use_hub_cache(monkeypatch, tmp_path / "empty-hub", offline=True)
    rep = Mask2FormerSemantic(name="m", variant="swin-large-coco-panoptic")
    with pytest.raises(WeightsError, match=r"^weights 'mask2former-swin-large-coco-panoptic' \(facebook/mask2former-"
                                           r"swin-large-coco-panoptic@a4edee47b1b2, 866 MB\) are not in the Hugging "
                                           r"Face cache .*empty-hub \(facebook/.* is not in the cache\) and "
                                           r"HF_HUB_OFFLINE=1 forbids downloading; get them with `vre weights fetch "
                                           r"mask2former-swin-large-coco-panoptic`"):
        rep.preflight()
    with pytest.raises(WeightsError, match=r"weights_path .*nowhere does not exist"):
        Mask2FormerSemantic(name="m", weights_path=str(tmp_path / "nowhere")).setup("cpu")


def test_convert_locally_variants_say_how_to_get_their_weights():
    with pytest.raises(WeightsError) as e:
        PHGMAEDistilSemantic(name="p", variant="4.4M").preflight()
    assert str(e.value) == (
        "weights 'phg-mae-distil-4.4M' (18 MB) are not published ready to load: download model_4M.ckpt from "
        "https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/"
        "vre_repository/semantic_segmentation/safeuav/weights/model_4M.ckpt, convert it with `vre convert-weights "
        "model_4M.ckpt phg-mae-distil-4.4M.safetensors --variant phg-mae-distil-4.4M` and import it with "
        "`vre weights import phg-mae-distil-4.4M phg-mae-distil-4.4M.safetensors`; or set weights_path= to the "
        "converted file")
    with pytest.raises(WeightsError, match=r"^weights 'mask2former-r50-mapillary-vistas-panoptic' \(176 MB\) are not "
                                           r"published ready to load: download 49189528_1.ckpt from https://gitlab.com/"
                                           r".*/mask2former/weights/49189528_1.ckpt, convert it with `vre convert-weights "
                                           r"49189528_1.ckpt mask2former-r50-mapillary-vistas-panoptic --variant "
                                           r"mask2former-r50-mapillary-vistas-panoptic`"):
        Mask2FormerSemantic(name="m", variant="49189528_1").setup("cpu")


def test_corrupt_weights(tmp_path: Path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny("phg-150k").read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"cannot read safetensors file .*bad.safetensors \(corrupt or not "
                                           r"safetensors"):
        PHGMAEDistilSemantic(name="p", variant="150k", weights_path=str(bad)).setup("cpu")

    folder = tmp_path / "m2f"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny("47429163_0") / "config.json").read_bytes())
    (folder / "model.safetensors").write_bytes((tiny("47429163_0") / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(WeightsError, match=r"weights 'mask2former-swin-large-coco-panoptic': cannot load "
                                           r".*m2f/model.safetensors \(.*\); the file is corrupt or not this model"):
        Mask2FormerSemantic(name="m", variant="47429163_0", weights_path=str(folder)).setup("cpu")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(WeightsError,
                       match=r"cannot read .*m2f/config.json \(.*\); check or replace .*config.json \(vre did not make it\)"):
        Mask2FormerSemantic(name="m", variant="47429163_0", weights_path=str(folder)).setup("cpu")
    (folder / "config.json").write_text('{"model_type": "dpt"}')
    with pytest.raises(WeightsError, match=r"config.json describes a 'dpt' model, not mask2former"):
        Mask2FormerSemantic(name="m", variant="47429163_0", weights_path=str(folder)).setup("cpu")


def test_mismatched_weights(tmp_path: Path):
    with pytest.raises(WeightsError, match=r"weights 'phg-mae-distil-430k' do not fit model PHGMAEDistil: .*shape "
                                           r"mismatch.*encoder.conv1.0.weight: checkpoint \[6, 11, 3, 3\] vs model "
                                           r"\[10, 11, 3, 3\]"):
        PHGMAEDistilSemantic(name="p", variant="430k", weights_path=str(tiny("phg-150k"))).setup("cpu")
    with pytest.raises(WeightsError, match=r"weights 'mask2former-swin-large-mapillary-vistas-semantic': .*config.json "
                                           r"has 133 classes but the variant declares 65 \(Mask2Former model zoo, "
                                           r"Mapillary Vistas semantic"):
        Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(tiny("47429163_0"))).setup("cpu")
    # Same classes, other architecture: the Swin variant's folder with the ResNet weights.
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny("49189528_0") / "config.json").read_bytes())
    (folder / "model.safetensors").write_bytes((tiny("49189528_1") / "model.safetensors").read_bytes())
    with pytest.raises(WeightsError, match=r"mask2former-swin-large-mapillary-vistas-semantic'"):
        Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(folder)).setup("cpu")


def test_optional_tensors_may_be_absent_but_no_other(tmp_path: Path, capfd: pytest.CaptureFixture):
    """The published checkpoints (transformers 4) lack SwinBackbone's unused swin.layernorm, which transformers 5 has."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(tiny("49189528_0") / "model.safetensors")
    for name, dropped in (("published", "swin.layernorm"), ("broken", "hidden_states_norms.stage1")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_bytes((tiny("49189528_0") / "config.json").read_bytes())
        save_file({k: v for k, v in tensors.items() if dropped not in k}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
    Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(tmp_path / "published")).setup("cpu")
    assert "MISSING" not in capfd.readouterr().err  # no misleading transformers load report
    with pytest.raises(WeightsError, match=r"do not fit swin Mask2Former from .*broken: 2 missing tensor\(s\): "
                                           r"model.pixel_level_module.encoder.hidden_states_norms.stage1"):
        Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(tmp_path / "broken")).setup("cpu")


def test_differently_named_classes_are_reported_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    import json

    folder = tmp_path / "renamed"
    folder.mkdir()
    cfg = json.loads((tiny("49189528_0") / "config.json").read_text())
    cfg["id2label"]["0"] = "animal--bird"
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes((tiny("49189528_0") / "model.safetensors").read_bytes())
    rep = Mask2FormerSemantic(name="m", variant="49189528_0", weights_path=str(folder), min_size=32, max_size=48)
    rep.setup("cpu")
    assert "names 1 class(es) differently from the variant (first: 0: 'animal--bird' vs 'Bird')" in caplog.text
    assert rep.output_spec().classes[0] == "Bird"


def test_the_seeds_r50_checkpoint_converts_imports_and_gives_the_models_output(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch,
                                                                               capsys: pytest.CaptureFixture[str]):
    """The path a user takes for the R50 Mapillary model: the seed's 49189528_1.ckpt (detectron2 names) ->
    `vre convert-weights --variant` (config.json + transformers tensors) -> `vre weights import` -> an export."""
    import attrs

    from vre_semantic.testing import write_seed_mask2former_checkpoint
    from vrecore.cli.app import main

    name = "mask2former-r50-mapillary-vistas-panoptic"
    ckpt, model = write_seed_mask2former_checkpoint(tmp_path / "49189528_1.ckpt")
    monkeypatch.chdir(tmp_path)
    assert main(["convert-weights", "49189528_1.ckpt", name, "--variant", name]) == 2
    assert "but 49189528_1.ckpt published at https://gitlab.com/" in capsys.readouterr().err
    # The stand-in is not the seed's file, whose sha256 the variant declares.
    variant = MASK2FORMER_VARIANTS["r50-mapillary-vistas-panoptic"]
    monkeypatch.setitem(MASK2FORMER_VARIANTS, "r50-mapillary-vistas-panoptic",
                        attrs.evolve(variant, convert=attrs.evolve(variant.convert, sha256=None)))
    assert main(["convert-weights", "49189528_1.ckpt", name, "--variant", name]) == 0
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["config.json", "model.safetensors"]
    assert main(["weights", "import", name, name]) == 0
    assert f"imported {name}: 2 file(s)" in capsys.readouterr().out

    rep = Mask2FormerSemantic(name="m", variant="49189528_1", min_size=64, max_size=96)
    rep.setup("cpu")
    x = frames(1, 64, 96)
    np.testing.assert_allclose(run(rep, x), seed_semantic_inference(model, x), atol=1e-5)


def test_a_checkpoint_that_is_not_the_seeds_is_refused_by_the_conversion():
    from vre_semantic._mask2former_seed import seed_checkpoint_to_transformers

    with pytest.raises(WeightsError, match="has no 'state_dict'"):
        seed_checkpoint_to_transformers({"model": {}})
    with pytest.raises(WeightsError, match=r"lacks \d+ tensor\(s\) of a Mask2Former with a ResNet backbone \(first: "
                                           r"backbone.stem.conv1.weight"):
        seed_checkpoint_to_transformers({"state_dict": {"sem_seg_head.predictor.query_feat.weight": torch.zeros(2, 4)}})
