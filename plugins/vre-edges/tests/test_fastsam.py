"""FastSAM (soft-segmentation/fastsam): YOLOv8-seg in plain torch, its post-processing, the conversion of
Ultralytics' pickled checkpoints (stand-ins, no Ultralytics code) and the representation, with weights made here."""
from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from vre_edges import _fastsam  # noqa: E402
from vre_edges import _yolov8_seg as yolo  # noqa: E402
from vre_edges.fastsam import FastSAM, instance_palette, render_instances  # noqa: E402
from vre_edges.variants import FASTSAM_VARIANTS  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.graph.representation import Batch  # noqa: E402
from vrecore.weights.convert import read_checkpoint  # noqa: E402


# ---------------------------------------------------------------------------------------------------- the network
def test_parameter_counts_are_ultralytics_published_ones():
    """With Ultralytics' 80 classes and 16 DFL bins, every scale has the parameters of Ultralytics' YOLOv8-seg table
    (3.4, 11.8, 27.3, 46.0, 71.8 M); yolov8x-seg.pt holds 71,827,888, 71,797,696 with BatchNorm fused into the convs."""
    counts = {}
    for scale, published in (("n", 3.4), ("s", 11.8), ("m", 27.3), ("l", 46.0), ("x", 71.8)):
        with torch.device("meta"):
            model = yolo.YoloV8Seg(yolo.YoloArch(scale, reg_max=16, nc=80))
        counts[scale] = sum(p.numel() for p in model.parameters())
        assert round(counts[scale] / 1e6, 1) == published, scale
    bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert (counts["x"], counts["x"] - bn) == (71_827_888, 71_797_696)


def test_state_dict_names_and_arch_of():
    with torch.device("meta"):
        s = yolo.YoloV8Seg(yolo.YoloArch("s")).state_dict()
        x = yolo.YoloV8Seg(yolo.YoloArch("x", reg_max=26)).state_dict()
    assert len(s) == 417 and len(x) == 657
    assert tuple(s["model.22.dfl.conv.weight"].shape) == (1, 16, 1, 1)
    assert tuple(x["model.22.cv2.0.2.weight"].shape) == (104, 104, 1, 1)  # 4 x 26 bins
    assert tuple(s["model.22.proto.upsample.weight"].shape) == (128, 128, 2, 2)
    assert tuple(x["model.22.proto.cv3.conv.weight"].shape) == (32, 320, 1, 1)
    assert tuple(s["model.2.m.0.cv1.conv.weight"].shape) == (32, 32, 3, 3) and "model.2.m.1.cv1.conv.weight" not in s
    assert tuple(x["model.8.m.2.cv2.bn.running_var"].shape) == (320,)
    assert not any(k.startswith(("model.10.", "model.11.", "model.13.", "model.14.", "model.17.", "model.20."))
                   for k in s)
    assert yolo.arch_of(s) == yolo.YoloArch("s", reg_max=16, nc=1, nm=32)
    assert yolo.arch_of(x) == yolo.YoloArch("x", reg_max=26, nc=1, nm=32)
    with pytest.raises(ValueError, match=r"not a YOLOv8-seg state dict: it lacks model.22.dfl.conv.weight"):
        yolo.arch_of({k: v for k, v in s.items() if "dfl" not in k})
    s["model.0.conv.weight"] = torch.empty(24, 3, 3, 3, device="meta")
    with pytest.raises(ValueError, match=r"its first conv has 24 channels, which no scale has \(n: 16, s: 32"):
        yolo.arch_of(s)


def test_boxes_and_scores_decode_exactly():
    """With the box branch answering a fixed bin per side and the class branch a fixed logit, every cell's box is
    its centre minus/plus those bins times its stride, and its score the logit's sigmoid."""
    torch.manual_seed(0)
    model = yolo.YoloV8Seg(yolo.YoloArch("n", reg_max=16)).eval()
    head = model.model[22]
    bins = (3, 5, 7, 2)  # left, top, right, bottom
    with torch.no_grad():
        for branch, cls in zip(head.cv2, head.cv3, strict=True):
            branch[2].weight.zero_()
            branch[2].bias.copy_(torch.cat([F.one_hot(torch.tensor(b), 16).float() * 60 for b in bins]))
            cls[2].weight.zero_()
            cls[2].bias.fill_(1.5)
        pred, proto = model(torch.rand(2, 3, 64, 96))
    assert pred.shape == (2, 4 + 1 + 32, 8 * 12 + 4 * 6 + 2 * 3) and proto.shape == (2, 32, 16, 24)
    expected = []
    for (h, w), stride in zip(((8, 12), (4, 6), (2, 3)), yolo.STRIDES, strict=True):
        ys, xs = np.mgrid[:h, :w] + 0.5
        x1, y1, x2, y2 = xs - bins[0], ys - bins[1], xs + bins[2], ys + bins[3]
        expected.append(np.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)).reshape(4, -1) * stride)
    np.testing.assert_allclose(pred[0, :4].numpy(), np.concatenate(expected, 1), atol=1e-4)
    np.testing.assert_allclose(pred[:, 4].numpy(), 1 / (1 + np.exp(-1.5)), atol=1e-6)


def test_network_size_follows_the_seed():
    assert _fastsam.network_size(540, 960, 1024) == (576, 1024)
    assert _fastsam.network_size(1080, 1920, 1024) == (576, 1024)
    assert _fastsam.network_size(480, 640, 1024) == (768, 1024)
    assert _fastsam.network_size(1920, 1080, 1024) == (1024, 576)
    assert _fastsam.network_size(100, 100, 1010) == (992, 992)  # 1010 = 31 x 32 + 18: down
    assert _fastsam.network_size(100, 100, 1008) == (1024, 1024)  # 1008 = 31 x 32 + 16: up
    assert _fastsam.network_size(24, 32, 64) == (64, 64)
    assert _fastsam.network_size(10, 1000, 1024) == (32, 1024)


# --------------------------------------------------------------------------------------------- post-processing
def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
    """The definition, one pair at a time in float64."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: -scores[k]):
        a = boxes[i].astype(np.float64)
        ok = True
        for j in kept:
            b = boxes[j].astype(np.float64)
            inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            ok &= inter / union <= iou
        if ok:
            kept.append(i)
    return kept[:limit]


def test_nms_is_greedy_suppression():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (400, 2))
    boxes = np.concatenate((xy, xy + rng.uniform(5, 80, (400, 2))), 1).astype(np.float32)
    scores = rng.permutation(400).astype(np.float32)  # no ties
    for iou, limit in ((0.3, 1000), (0.7, 1000), (0.7, 25)):
        got = _fastsam.nms(boxes, scores, iou, limit).tolist()
        assert got == _greedy_nms(boxes, scores, iou, limit)
        assert 0 < len(got) <= min(limit, 400)
    assert len(_fastsam.nms(boxes, scores, 0.3, 1000)) < len(_fastsam.nms(boxes, scores, 0.7, 1000))


def _pred(boxes_xywh: list[list[float]], scores: list[float], nm: int = 2) -> torch.Tensor:
    coef = torch.arange(len(scores) * nm, dtype=torch.float32).view(len(scores), nm)
    return torch.cat((torch.tensor(boxes_xywh), torch.tensor(scores)[:, None], coef), 1).t()


def test_detections_threshold_sort_and_suppress():
    pred = _pred([[50, 50, 20, 20], [51, 50, 20, 20], [150, 60, 10, 30], [10, 10, 4, 4]], [0.6, 0.9, 0.5, 0.3])
    rows = _fastsam.detections(pred, conf=0.4, iou=0.5, nc=1)
    # Box 1 (0.9) suppresses box 0 (IoU 0.9); box 3 is below conf; coefficients travel with their box.
    np.testing.assert_allclose(rows.numpy(), [[41, 40, 61, 60, 0.9, 0, 2, 3], [145, 45, 155, 75, 0.5, 0, 4, 5]])
    assert len(_fastsam.detections(pred, conf=0.4, iou=0.95, nc=1)) == 3
    assert len(_fastsam.detections(pred, conf=0.95, iou=0.5, nc=1)) == 0
    # Two classes: the same boxes do not suppress each other across classes.
    two = torch.cat((pred[:4], torch.tensor([[0.6, 0.0, 0.5, 0.3], [0.0, 0.9, 0.0, 0.0]]), pred[5:]))
    rows = _fastsam.detections(two, conf=0.4, iou=0.5, nc=2)
    np.testing.assert_allclose(rows[:, 4:6].numpy(), [[0.9, 1], [0.6, 0], [0.5, 0]])


def test_full_frame_rule():
    rows = torch.tensor([[5.0, 19.0, 300.0, 100.0, 0.9, 0, 1, 2],     # left and top sides snap to 0
                         [30.0, 30.0, 305.0, 185.0, 0.8, 0, 3, 4],    # right and bottom snap to 320 / 200
                         [10.0, 12.0, 300.0, 190.0, 0.7, 0, 5, 6],    # snaps to (0, 0, 320, 200): the whole frame
                         [1.0, 1.0, 319.0, 170.0, 0.6, 0, 7, 8]])     # snaps to (0, 0, 320, 170): IoU 0.85, kept
    got = _fastsam.full_frame_rule(rows, 200, 320)
    np.testing.assert_allclose(got.numpy(), [[0, 0, 300, 100, 0.9, 0, 1, 2], [30, 30, 320, 200, 0.8, 0, 3, 4],
                                             [0, 0, 320, 200, 0.7, 0, 5, 6], [0, 0, 320, 170, 0.6, 0, 7, 8]])
    rows[2, :4] = torch.tensor([25.0, 25.0, 295.0, 175.0])  # no side near the border; IoU 0.74
    assert _fastsam.full_frame_rule(rows, 200, 320)[2, :4].tolist() == [25, 25, 295, 175]
    assert rows[0, 0] == 5.0  # the input is left as it was


def _instance_map_reference(rows: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
    """The seed's way, at full size: every mask upsampled whole, cut to its box by comparing pixel indices, then at
    each pixel the first covering mask in order of increasing area (stable)."""
    nm, ph, pw = proto.shape
    h, w = 4 * ph, 4 * pw
    if not len(rows):
        return torch.zeros((h, w), dtype=torch.int64)
    masks = F.interpolate((rows[:, 6:] @ proto.view(nm, -1)).sigmoid().view(-1, 1, ph, pw), size=(h, w),
                          mode="bilinear", align_corners=False)[:, 0]
    c, r = torch.arange(w).view(1, 1, w).float(), torch.arange(h).view(1, h, 1).float()
    x1, y1, x2, y2 = (rows[:, k].view(-1, 1, 1) for k in range(4))
    masks = (masks > 0.5) & (c >= x1) & (c < x2) & (r >= y1) & (r < y2)
    order = torch.argsort(masks.sum((1, 2)), stable=True)
    first = masks[order].long().argmax(0)
    return torch.where(masks.any(0), order[first] + 1, 0)


def test_instance_map_equals_the_full_size_reference():
    rng = np.random.default_rng(1)
    ph, pw, nm, n = 12, 20, 8, 60
    proto = torch.from_numpy(rng.normal(0, 1, (nm, ph, pw)).astype(np.float32))
    xy = rng.uniform(-10, 70, (n, 2)) * [1.0, 0.6]
    wh = rng.uniform(0.5, 60, (n, 2))
    rows = torch.from_numpy(np.concatenate((xy, xy + wh, rng.uniform(0.4, 1, (n, 1)), np.zeros((n, 1)),
                                            rng.normal(0, 2, (n, nm))), 1).astype(np.float32))
    rows[0, :4] = torch.tensor([0.0, 0.0, 4 * pw, 4 * ph])  # a whole-frame box
    rows[1, :4] = torch.tensor([30.0, 20.0, 30.0, 40.0])    # an empty box
    got = _fastsam.instance_map(rows, proto)
    ref = _instance_map_reference(rows, proto)
    assert got.shape == (48, 80) and got.dtype == torch.int64
    assert torch.equal(got, ref)
    assert 10 < len(torch.unique(got)) and (got == 0).any()  # many instances, and uncovered pixels
    assert torch.equal(_fastsam.instance_map(rows[:0], proto), torch.zeros((48, 80), dtype=torch.int64))


def test_smallest_mask_wins_and_ties_go_to_the_more_confident():
    proto = torch.ones(1, 4, 4)  # every mask is 1 everywhere inside its box (sigmoid(10) > 0.5)
    boxes = [[0, 0, 16, 16], [4, 4, 12, 12], [8, 8, 12, 16], [0, 12, 4, 16]]
    rows = torch.tensor([[*b, 0.9, 0, 10.0] for b in boxes])
    ids = _fastsam.instance_map(rows, proto).numpy()
    assert ids[0, 0] == 1 and ids[5, 5] == 2 and ids[9, 9] == 3 and ids[14, 9] == 3 and ids[13, 1] == 4
    assert [(ids == k).sum() for k in range(5)] == [0, 256 - 48 - 32 - 16, 64 - 16, 32, 16]
    # A twin of mask 3 (same area), less confident: it shows nowhere.
    ids = _fastsam.instance_map(torch.cat((rows, rows[2:3])), proto).numpy()
    assert (ids == 5).sum() == 0 and (ids == 3).sum() == 32


# ---------------------------------------------------------------------------------- conversion of Ultralytics' files
def _markers(tmp_path: Path) -> list[str]:
    folder = tmp_path / "markers"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_ultralytics_checkpoint_converts_to_the_network(tmp_path, random_yolo, ultralytics_checkpoint):
    model = random_yolo("s", seed=3)
    ckpt = ultralytics_checkpoint(model, tmp_path / "FastSAM-s.pt")
    files = _fastsam.fastsam_checkpoint_files(read_checkpoint(ckpt, pickled_modules=True))
    assert _markers(tmp_path) == []  # no class of the pickle ran
    state = files["model.safetensors"]
    assert list(files) == ["model.safetensors"] and sorted(state) == sorted(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v), k  # float16-exact weights come back exactly, as float32
    assert all(v.dtype == torch.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("change, message", [
    ({"eps": 1e-5}, r"model\.model\.0\.bn normalises with eps 1e-05, not 0\.001"),
    ({"head_shortcut": True}, r"model\.12\.m\.0 adds the shortcut YOLOv8-seg has there"),
])
def test_architecture_the_tensors_cannot_show_is_checked(tmp_path, random_yolo, ultralytics_checkpoint, change,
                                                         message):
    ckpt = ultralytics_checkpoint(random_yolo("n"), tmp_path / "other.pt", **change)
    with pytest.raises(WeightsError, match=message):
        _fastsam.fastsam_checkpoint_files(read_checkpoint(ckpt, pickled_modules=True))


def test_not_a_segmentation_model_is_refused(tmp_path):
    with pytest.raises(WeightsError, match=r"not an Ultralytics one \(a dict with 'model' or 'ema'\)"):
        _fastsam.fastsam_checkpoint_files({"state_dict": {}})
    torch.save({"model": {"w": torch.ones(1)}}, tmp_path / "plain.pt")
    with pytest.raises(WeightsError, match=r"holds a dict, not an Ultralytics SegmentationModel"):
        _fastsam.fastsam_checkpoint_files(read_checkpoint(tmp_path / "plain.pt", pickled_modules=True))


def _with_digest(monkeypatch: pytest.MonkeyPatch, key: str, checkpoint: Path) -> None:
    """The variant as declared, but for the sha256 of this test's checkpoint instead of the real file's."""
    from vrecore.weights.cache import sha256_file

    variant = FASTSAM_VARIANTS[key]
    assert variant.convert is not None
    monkeypatch.setitem(FASTSAM_VARIANTS, key, attrs.evolve(
        variant, convert=attrs.evolve(variant.convert, sha256=sha256_file(checkpoint))))


def test_convert_import_and_run_as_a_user_does(tmp_path, monkeypatch, capsys, random_yolo, ultralytics_checkpoint):
    """`vre convert-weights FastSAM-s.pt fastsam-s.safetensors --variant fastsam-s`, `vre weights import`, then the
    type computes exactly what the network it was made from computes."""
    from vrecore.cli.app import main

    model = random_yolo("s", seed=5)
    ckpt = ultralytics_checkpoint(model, tmp_path / "FastSAM-s.pt")
    assert main(["convert-weights", str(ckpt), str(tmp_path / "out.safetensors"), "--variant", "fastsam-s"]) == 2
    assert "has sha256" in capsys.readouterr().err  # the test file is not the published one

    _with_digest(monkeypatch, "s", ckpt)
    assert main(["convert-weights", str(ckpt), str(tmp_path / "fastsam-s.safetensors"), "--variant", "fastsam-s"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "next: vre weights import fastsam-s" in out
    assert main(["weights", "import", "fastsam-s", str(tmp_path / "fastsam-s.safetensors")]) == 0
    capsys.readouterr()
    assert _markers(tmp_path) == []

    rep = FastSAM(name="fastsam", variant="fastsam-s", input_size=128, conf=0.3)
    rep.preflight()
    rep.setup("cpu")
    frames = np.random.default_rng(0).integers(0, 256, (2, 72, 128, 3), dtype=np.uint8)
    got = rep.compute(Batch(indices=np.arange(2), frames=frames, deps={}))
    with torch.inference_mode():
        pred, proto = model(_fastsam.preprocess(frames, (96, 128), torch.device("cpu")))  # 72 = 2 x 32 + 8: up
        want = _fastsam.instance_maps(pred, proto, 0.3, 0.9, 1).numpy()
    assert got.shape == (2, 96, 128, 1) and got.dtype == np.uint16
    np.testing.assert_array_equal(got[..., 0], want)
    assert len(np.unique(got)) > 3  # the random network finds masks (its class logits are near 0: p ~ 0.5)
    assert rep.weights_identity()["variant"] == "fastsam-s"


# ------------------------------------------------------------------------------------------------ the representation
def test_parameters_and_their_errors():
    rep = FastSAM(name="f")
    assert (rep.variant, rep.conf, rep.iou, rep.input_size) == ("s", 0.4, 0.9, 1024)
    assert FastSAM(name="f", variant="fastsam-x").weight_variant.name == "fastsam-x"
    for bad, message in (({"conf": 1.5}, "conf must be in [0, 1], got 1.5"),
                         ({"iou": -0.1}, "iou must be in [0, 1], got -0.1"),
                         ({"input_size": 16}, "input_size must be an integer number of pixels >= 32"),
                         ({"input_size": 640.5}, "input_size must be an integer"),
                         ({"variant": "fastsam-m"}, "unknown variant 'fastsam-m'; choose one of s, x (or fastsam-s, "
                                                    "fastsam-x)")):
        with pytest.raises(ValueError) as e:
            FastSAM(name="f", **bad)
        assert message in str(e.value)


def test_missing_weights_say_how_to_get_them():
    for key, checkpoint in (("s", "FastSAM-s.pt"), ("x", "FastSAM-x.pt")):
        rep = FastSAM(name="f", variant=key)
        with pytest.raises(WeightsError) as e:
            rep.preflight()
        message = str(e.value)
        assert "\n" not in message and f"vre convert-weights {checkpoint} fastsam-{key}.safetensors --variant " \
                                       f"fastsam-{key}" in message
        assert rep.weight_variant.convert.url in message and f"vre weights import fastsam-{key} " in message


def test_weights_of_another_scale_are_refused(tmp_path, random_yolo):
    from safetensors.torch import save_file

    save_file(random_yolo("n").state_dict(), str(tmp_path / "n.safetensors"))
    rep = FastSAM(name="f", weights_path=str(tmp_path / "n.safetensors"))
    with pytest.raises(WeightsError, match=r"weights 'fastsam-s' hold a YOLOv8n-seg network, not the YOLOv8s-seg of "
                                           r"variant 's'; choose variant 'n' or other weights"):
        rep.setup("cpu")


def test_pictures_colour_instances_and_outline_them():
    ids = np.zeros((1, 6, 8), np.uint16)
    ids[0, 1:5, 1:4] = 1
    ids[0, 2:4, 5:7] = 2
    images = render_instances(ids)
    palette = instance_palette(2)
    assert images.shape == (1, 6, 8, 3) and images.dtype == np.uint8
    assert (images[0, 0, 7] == 0).all() and (images[0, 2, 2] == palette[1]).all()  # inside, away from borders
    outline = (0.2 * palette[1] + 0.8 * np.array([0, 0, 255]) + 0.5).astype(np.uint8)
    assert (images[0, 1, 1] == outline).all() and (images[0, 2, 4] == [0, 0, 204]).all()  # border, both sides
    assert (palette[0] == 0).all() and (palette[1:] >= 48).all() and len({tuple(c) for c in palette}) == 3
    np.testing.assert_array_equal(instance_palette(5)[:3], palette)  # an instance keeps its colour


def test_exported_with_the_engine(tmp_path, sample_video, fastsam_imported):
    from vrecore import build_graph, run_export

    graph = build_graph({"representations": {"sam": {"type": "soft-segmentation/fastsam",
                                                     "parameters": {"input_size": 96}, "image_format": "png"}}})
    result = run_export(graph, sample_video, tmp_path / "out", frames="0..3")
    assert result.stats["sam"].computed == 3
    frame = np.load(tmp_path / "out" / "sam" / "npz" / "0.npz", allow_pickle=False)
    arr = next(iter(frame.values()))
    assert arr.shape == (180, 320) and arr.dtype == np.uint16
    assert (tmp_path / "out" / "sam" / "png" / "0.png").is_file()
