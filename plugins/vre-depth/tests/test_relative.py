"""depth/dpt and depth/depth-anything-v2: conformance, weights errors, depth convention, export, preset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vre_depth import _models
from vre_depth.colormap import DEPTH_COLORS
from vre_depth.relative import DPT, DepthAnythingV2
from vre_depth.variants import DA2_VARIANTS, DPT_VARIANTS
from vrecore.errors import WeightsError
from vrecore.graph.representation import Batch
from vrecore.testing import RepresentationTestSuite, populate_hub_cache, use_hub_cache


class TestDepthAnythingV2(RepresentationTestSuite):
    type_name = "depth/depth-anything-v2"
    parameters = {"input_size": 28}
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _weights(self, hub: Path) -> None:
        """Every check loads the default variant from the offline tiny Hub cache."""


class TestDPTHybrid(RepresentationTestSuite):
    type_name = "depth/dpt"
    parameters = {"input_size": 32}
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _weights(self, hub: Path) -> None:
        """Every check loads the default variant (hybrid-midas) from the offline tiny Hub cache."""


class TestDPTLarge(TestDPTHybrid):
    parameters = {"variant": "large", "input_size": 64}


def frames(n: int = 2, shape: tuple[int, int] = (24, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape, 3), dtype=np.uint8)


def batch(n: int = 2) -> Batch:
    return Batch(indices=np.arange(n), frames=frames(n), deps={})


# -- preprocessing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [DA2_VARIANTS["small"], DPT_VARIANTS["hybrid-midas"]], ids=["da2", "dpt"])
@pytest.mark.parametrize("shape", [(90, 160), (40, 30)], ids=["down", "up"])
def test_torch_preprocessing_matches_the_image_processor(variant, shape):
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    cv2 = pytest.importorskip("cv2")
    pre = variant.meta["preprocess"]
    size = 56 if pre["keep_aspect_ratio"] else 64
    processor = DPTImageProcessorPil(size={"height": size, "width": size}, keep_aspect_ratio=pre["keep_aspect_ratio"],
                                     ensure_multiple_of=pre["multiple_of"], resample=3, image_mean=list(pre["mean"]),
                                     image_std=list(pre["std"]))
    image = cv2.GaussianBlur(frames(1, shape)[0], (0, 0), 2)
    expected = processor(images=[image], return_tensors="pt")["pixel_values"]
    got = _models.DepthNet(None, pre, torch.device("cpu")).pixel_values(image[None], size)
    assert got.shape == expected.shape
    # In grey levels: PIL rounds its resized image to uint8, the torch path does not.
    diff = (got - expected).abs() * torch.tensor(pre["std"]).view(1, 3, 1, 1) * 255
    assert diff.max() <= 1.5 and diff.mean() <= 0.5


@pytest.mark.parametrize("shape", [(540, 960), (1080, 1920), (24, 32), (300, 200), (14, 500)])
@pytest.mark.parametrize("keep,multiple,size", [(True, 14, 518), (False, 1, 384), (True, 14, 28)])
def test_model_input_size_follows_the_image_processor_rule(shape, keep, multiple, size):
    from transformers.models.dpt.image_processing_pil_dpt import get_resize_output_image_size

    expected = get_resize_output_image_size(np.zeros((3, *shape)), (size, size), keep, multiple)
    got = _models.model_input_size(*shape, size, keep_aspect_ratio=keep, multiple_of=multiple)
    assert got == (max(multiple, expected.height), max(multiple, expected.width))
    assert _models.model_input_size(540, 960, 518, keep_aspect_ratio=True, multiple_of=14) == (518, 924)


# -- depth convention ------------------------------------------------------------------------------


def loaded(cls=DepthAnythingV2, **parameters):
    rep = cls(name="depth", **parameters)
    rep.setup("cpu")
    return rep


def fake_disparity(monkeypatch, rep, make):
    """Replace the model's forward with one returning ``make(h, w)`` for every frame."""
    class Out:
        def __init__(self, predicted_depth):
            self.predicted_depth = predicted_depth

    def forward(pixel_values):
        b, _, h, w = pixel_values.shape
        return Out(torch.as_tensor(make(h, w), dtype=torch.float32).expand(b, h, w).clone())

    monkeypatch.setattr(rep._net.model, "forward", forward)


def test_zero_is_near_one_is_far_on_a_disparity_ramp(hub, monkeypatch):
    rep = loaded(input_size=28, percentiles=(0, 100), epsilon=0.05)
    # Disparity grows down the image: the top row is the farthest, the bottom row the nearest.
    fake_disparity(monkeypatch, rep, lambda h, w: np.repeat(np.linspace(0.5, 3.0, h)[:, None], w, axis=1))
    depth = rep.compute(batch())[..., 0]
    assert depth.dtype == np.float32 and depth.min() >= 0 and depth.max() <= 1
    rows = depth[0, :, 0]
    np.testing.assert_allclose([rows[0], rows[-1]], [1.0, 0.0], atol=1e-6)
    assert np.all(np.diff(rows) < 0)
    n = np.linspace(0, 1, len(rows))  # the normalised disparity of each row
    np.testing.assert_allclose(rows, 0.05 * (1 - n) / (n + 0.05), atol=1e-5)
    np.testing.assert_array_equal(depth[0], depth[1])


def test_disparity_outliers_clip_at_the_percentiles(hub, monkeypatch):
    rep = loaded(input_size=28, percentiles=(2, 98))

    def make(h, w):
        d = np.repeat(np.linspace(1.0, 2.0, w)[None], h, axis=0)
        d[0, 0], d[-1, -1] = 1e6, -1e6  # two wild pixels must not squash the rest of the frame
        return d

    fake_disparity(monkeypatch, rep, make)
    depth = rep.compute(batch(1))[0, ..., 0]
    assert depth[0, 0] == 0.0 and depth[-1, -1] == 1.0
    # Any other row still spans the whole range, far on the left to near on the right.
    row = depth[depth.shape[0] // 2]
    assert row[0] == 1.0 and row[-1] == 0.0 and np.all(np.diff(row) <= 0)


def test_a_featureless_frame_is_all_far(hub, monkeypatch):
    rep = loaded(input_size=28)
    fake_disparity(monkeypatch, rep, lambda h, w: np.full((h, w), 2.5))
    np.testing.assert_array_equal(rep.compute(batch(1)), 1.0)


def test_previews_are_bright_near_and_dark_far(hub):
    rep = loaded(input_size=28)
    images = rep.make_images(np.array([0.0, 0.5, 1.0], np.float32).reshape(1, 1, 3, 1))
    assert images.dtype == np.uint8 and images.shape == (1, 1, 3, 3)
    grey = images[0, 0].astype(int).sum(axis=-1)
    assert grey[0] > grey[1] > grey[2]
    np.testing.assert_array_equal(images[0, 0, [0, 2]], DEPTH_COLORS[[0, -1]])


def test_teardown_frees_the_model(hub):
    rep = loaded(DPT, input_size=32)
    assert rep.compute(batch()).shape == (2, 32, 32, 1)
    rep.teardown()
    with pytest.raises(RuntimeError, match="setup"):
        rep.compute(batch())


# -- weights ---------------------------------------------------------------------------------------


def test_offline_without_the_weights_names_the_variant_and_the_fix(tmp_path, monkeypatch, no_digests):
    use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(WeightsError) as e:
        loaded(input_size=28)
    msg = str(e.value)
    assert msg.startswith("weights 'depth-anything-v2-small' (depth-anything/Depth-Anything-V2-Small-hf@5426e4f0f365, "
                          "99 MB) are not in the Hugging Face cache ")
    assert "HF_HUB_OFFLINE=1 forbids downloading" in msg and "`vre weights fetch depth-anything-v2-small`" in msg
    assert "weights_path=" in msg and "\n" not in msg


def test_an_unpinned_revision_in_the_cache_is_not_used(tiny_checkpoints, tmp_path, monkeypatch, no_digests):
    variant = DPT_VARIANTS["large"]
    populate_hub_cache(tmp_path / "hub", variant.repo_id, "main",
                       {f: tiny_checkpoints["dpt"] / f for f in variant.filenames})
    use_hub_cache(monkeypatch, tmp_path / "hub")
    with pytest.raises(WeightsError,
                       match=rf"'dpt-large'.*revision '{variant.revision[:12]}' is not in the cache \(cached: main"):
        loaded(DPT, variant="large")


def test_the_published_digest_is_checked(tiny_hub, monkeypatch):
    use_hub_cache(monkeypatch, tiny_hub)  # with the real variants: the tiny file is not the published one
    with pytest.raises(WeightsError, match=r"'depth-anything-v2-small': file model.safetensors \(.*\) has sha256 "
                                           r"[0-9a-f]{64}, but 'depth-anything-v2-small' is published with 3152477ce0d8d6"):
        loaded(input_size=28)


def copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_a_corrupt_checkpoint_is_a_weights_error(tiny_checkpoints, tmp_path, monkeypatch, no_digests):
    variant = DA2_VARIANTS["small"]
    data = (tiny_checkpoints["da2"] / "model.safetensors").read_bytes()
    populate_hub_cache(tmp_path / "hub", variant.repo_id, variant.revision,
                       {"config.json": tiny_checkpoints["da2"] / "config.json", "model.safetensors": data[:len(data) // 2]})
    use_hub_cache(monkeypatch, tmp_path / "hub")
    with pytest.raises(WeightsError,
                       match=r"weights 'depth-anything-v2-small' \(depth-anything/.*cannot load the model.*corrupt"):
        loaded(input_size=28)


def test_tensors_of_another_size_are_named(tiny_checkpoints, tmp_path):
    import json

    folder = copy_checkpoint(tiny_checkpoints["da2"], tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    config["fusion_hidden_size"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError,
                       match=r"weights 'depth-anything-v2-small' \(local path .*shape mismatch.*checkpoint \[.*\] vs model"):
        loaded(input_size=28, weights_path=folder)


def test_missing_tensors_are_named(tiny_checkpoints, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_checkpoint(tiny_checkpoints["dpt"], tmp_path / "ckpt")
    tensors = load_file(folder / "model.safetensors")
    del tensors["head.head.0.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"weights 'dpt-hybrid-midas' .*1 missing tensor\(s\): head.head.0.weight"):
        loaded(DPT, input_size=32, weights_path=folder)


def test_a_checkpoint_of_another_architecture_is_refused(tiny_checkpoints):
    with pytest.raises(WeightsError, match=r"'depth-anything-v2-small' .* are a 'dpt' model, not 'depth_anything'"):
        loaded(input_size=28, weights_path=tiny_checkpoints["dpt"])


def test_weights_path_reads_a_local_folder_without_the_hub(tiny_checkpoints, tmp_path, monkeypatch):
    use_hub_cache(monkeypatch, tmp_path / "empty")  # offline and empty: only the folder can serve
    rep = loaded(input_size=28, weights_path=tiny_checkpoints["da2"])
    assert rep.compute(batch()).shape == (2, 28, 28, 1)
    assert rep.metadata()["weights"] == {"variant": "depth-anything-v2-small",
                                         "source": f"local path {tiny_checkpoints['da2']}", "license": "apache-2.0"}
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_bytes((tiny_checkpoints["da2"] / "config.json").read_bytes())
    with pytest.raises(WeightsError, match=r"'depth-anything-v2-small': weights_path .* lacks \['model.safetensors'\]"):
        loaded(input_size=28, weights_path=incomplete)


# -- export and preset -----------------------------------------------------------------------------


def test_export_writes_float16_depth_and_previews_and_a_rerun_skips_setup(hub, sample_video, tmp_path, monkeypatch):
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph
    from vrecore.store.npz import load_npz

    config = {"representations": {"depth": {"type": "depth/depth-anything-v2", "parameters": {"input_size": 28},
                                            "batch_size": 2, "image_format": "jpg"}}}
    out = tmp_path / "out"
    result = run_export(build_graph(config), sample_video, out, frames="0..5")
    assert result.stats["depth"].computed == 5
    for i in range(5):
        depth = load_npz(out / "depth" / "npz" / f"{i}.npz")
        assert depth.dtype == np.float16 and depth.shape == (180, 320)
        assert 0.0 <= depth.min() and depth.max() <= 1.0 and depth.max() > depth.min()
        assert (out / "depth" / "jpg" / f"{i}.jpg").is_file()

    def no_setup(self, device):
        raise AssertionError("setup() must not run when every frame is already exported")

    monkeypatch.setattr(DepthAnythingV2, "setup", no_setup)
    again = run_export(build_graph(config), sample_video, out, frames="0..5")
    assert again.stats["depth"].computed == 0 and again.stats["depth"].skipped == 5


def test_the_depth_preset_builds():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from vrecore.cli.config import register_schemas
    from vrecore.graph.build import build_graph

    register_schemas()
    with initialize_config_module(config_module="vrecore.cli.conf", version_base=None):
        cfg = compose(config_name="export", overrides=["pipeline=depth"])
    graph = build_graph(OmegaConf.to_container(cfg, resolve=True))
    assert [(n.name, n.type_name) for n in graph] == [("rgb", "color/rgb"), ("depth", "depth/depth-anything-v2")]
    assert graph["depth"].parameters["variant"] == "small" and graph["depth"].settings.image_format == "jpg"


def test_keep_aspect_ratio_gives_the_seeds_dpt_size_and_the_same_network_on_square_inputs(tiny_checkpoints):
    from transformers import AutoModelForDepthEstimation

    dpt = DPT(name="d", variant="large", keep_aspect_ratio=True)
    assert dpt.native_size((360, 640)) == (384, 672) and dpt.native_size((540, 960)) == (384, 672)
    assert DPT(name="d", variant="large").native_size((360, 640)) == (384, 384)  # the checkpoint's square
    with pytest.raises(ValueError, match="keep_aspect_ratio"):
        DPT(name="d", variant="hybrid-midas", keep_aspect_ratio=True)
    model = AutoModelForDepthEstimation.from_pretrained(tiny_checkpoints["dpt"]).eval()
    square = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(_models.predicted_disparity(model, square), model(pixel_values=square).predicted_depth)
        wide = _models.predicted_disparity(model, torch.rand(2, 3, 32, 64))
    assert wide.shape == (2, 32, 64)  # transformers' own forward fails on it (a square patch grid)
