"""vre convert-weights --pickled-modules: checkpoints pickling whole modules of foreign classes, read with inert
stand-ins under torch.load(weights_only=True), so that no code of those classes ever runs."""
from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from vrecore.cli.convert_weights import main as convert_main  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.weights.convert import (  # noqa: E402
    StandIn,
    convert_checkpoint,
    module_state_dict,
    pickled_globals,
    read_checkpoint,
)
from vrecore.weights.loading import load_safetensors  # noqa: E402

FOREIGN = "vre_foreign_models"

# A package vre does not know, imitating a training framework that pickles whole model objects. Every way its
# classes could run code while being unpickled leaves a file behind: __setstate__ of a module and of a namespace,
# and (`Trap`, refused: see the last test) a __reduce__ that makes unpickling call a function of the package.
FOREIGN_SOURCE = '''
import pathlib
import types

import torch
from torch import nn


def write_marker(path):
    pathlib.Path(path).write_text("write_marker ran")
    return path


class Namespace(types.SimpleNamespace):
    def __setstate__(self, state):
        pathlib.Path(state["marker"] + ".namespace").write_text("Namespace.__setstate__ ran")
        self.__dict__.update(state)


class Trap:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (write_marker, (self.path,))


class Leaf(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(n))
        self.register_buffer("offset", torch.randn(n))
        self.register_buffer("scratch", torch.zeros(n), persistent=False)
        self.note = "a leaf"


class Block(nn.Module):
    def __init__(self, marker):
        super().__init__()
        self.marker = str(marker)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.leaves = nn.ModuleList([Leaf(2), nn.Sequential(Leaf(3), nn.SiLU())])
        self.register_module("absent", None)
        self.args = Namespace(marker=str(marker), imgsz=1024)
        self.cfg = {"depth_multiple": 0.33, "names": {0: "object"}, "head": [[-1, 1, "Conv", [64, 3, 2]]]}
        self.detect = Block.forward  # a function: pickled as getattr(Block, "forward")

    def forward(self, x):
        return self.conv(x)

    def __setstate__(self, state):
        pathlib.Path(state["marker"] + ".module").write_text("Block.__setstate__ ran")
        super().__setstate__(state)
'''


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[object]:
    """The foreign package, importable while the test builds its checkpoint."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / f"{FOREIGN}.py").write_text(textwrap.dedent(FOREIGN_SOURCE))
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(FOREIGN)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(FOREIGN, None)


def _checkpoint(foreign: object, tmp_path: Path) -> tuple[Path, Path, dict]:
    """An Ultralytics-like checkpoint: the whole model in float16 under "model", no EMA, training arguments."""
    torch.manual_seed(0)
    marker = tmp_path / "marker"
    model = foreign.Block(marker)  # type: ignore[attr-defined]
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.num_batches_tracked.fill_(7)
    model = model.half()
    src = tmp_path / "foreign.pt"
    torch.save({"model": model, "ema": None, "epoch": -1, "version": "8.0.120",
                "train_args": {"imgsz": 1024, "ns": foreign.Namespace(marker=str(marker), task="segment")}},  # type: ignore[attr-defined]
               src)
    return src, marker, model.state_dict()


def _no_marker(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("marker")) == []


@pytest.mark.parametrize("importable", [True, False], ids=["package-importable", "package-gone"])
def test_pickled_modules_convert_without_running_foreign_code(foreign: object, tmp_path: Path, importable: bool):
    src, marker, state = _checkpoint(foreign, tmp_path)
    if not importable:
        sys.modules.pop(FOREIGN)
        (tmp_path / "site" / f"{FOREIGN}.py").unlink()
    dst = convert_checkpoint(src, tmp_path / "out.safetensors", pickled_modules=True)
    _no_marker(tmp_path)
    assert (FOREIGN in sys.modules) == importable  # never imported by the conversion

    got = load_safetensors(dst)
    # state_dict()'s names: nested modules, parameters and persistent buffers; no non-persistent buffer, no None.
    assert sorted(got) == sorted(state) == [
        "bn.bias", "bn.num_batches_tracked", "bn.running_mean", "bn.running_var", "bn.weight", "conv.bias",
        "conv.weight", "leaves.0.offset", "leaves.0.scale", "leaves.1.0.offset", "leaves.1.0.scale"]
    for k, v in state.items():
        assert got[k].dtype == (torch.float32 if v.is_floating_point() else v.dtype), k
        assert torch.equal(got[k], v.float() if v.is_floating_point() else v), k
    assert int(got["bn.num_batches_tracked"]) == 7


def test_stand_ins_keep_what_the_pickle_says(foreign: object, tmp_path: Path):
    src, marker, state = _checkpoint(foreign, tmp_path)
    names = pickled_globals(src)
    assert {f"{FOREIGN}.Block", f"{FOREIGN}.Leaf", f"{FOREIGN}.Namespace",
            "builtins.getattr", "torch.nn.modules.conv.Conv2d", "torch.nn.modules.batchnorm.BatchNorm2d",
            "torch.nn.modules.container.ModuleList", "torch._utils._rebuild_tensor_v2",
            "collections.OrderedDict"} <= set(names)

    ckpt = read_checkpoint(src, pickled_modules=True)
    _no_marker(tmp_path)
    assert ckpt["ema"] is None and ckpt["version"] == "8.0.120" and ckpt["epoch"] == -1
    model = ckpt["model"]
    assert isinstance(model, StandIn) and model.pickled_name == f"{FOREIGN}.Block"
    assert model.marker == str(marker)
    assert model.cfg == {"depth_multiple": 0.33, "names": {0: "object"}, "head": [[-1, 1, "Conv", [64, 3, 2]]]}
    # SimpleNamespace pickles as a call of its class without arguments, then its attributes.
    assert model.args.pickled_name == f"{FOREIGN}.Namespace" and vars(model.args) == {
        "_vre_args": (), "marker": str(marker), "imgsz": 1024}
    # getattr(Block, "forward"), protocol 2's spelling of Block.forward: a stand-in of that name, never called.
    assert issubclass(model.detect, StandIn) and model.detect.pickled_name == f"{FOREIGN}.Block.forward"
    assert ckpt["train_args"]["ns"].task == "segment"
    leaf = model._modules["leaves"]._modules["0"]
    assert leaf.pickled_name == f"{FOREIGN}.Leaf" and leaf.note == "a leaf"
    assert model._modules["conv"].pickled_name == "torch.nn.modules.conv.Conv2d"
    assert model._modules["conv"].kernel_size == (3, 3) and model._modules["bn"].eps == 1e-5
    # torch's own allowed globals are still torch's: the tensors are real tensors, in the pickle's dtype.
    assert isinstance(leaf._parameters["scale"], torch.nn.Parameter) and leaf._parameters["scale"].dtype == torch.float16

    half = module_state_dict(model, float32=False)
    assert {k: v.dtype for k, v in half.items()} == {k: v.dtype for k, v in state.items()}
    with pytest.raises(WeightsError, match=r"is not a pickled torch module"):
        module_state_dict(model.args)


def test_the_cli_flag_and_the_refusal_without_it(foreign: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    src, _, state = _checkpoint(foreign, tmp_path)
    assert convert_main([str(src), str(tmp_path / "plain.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs unsafe unpickling" in err and "--pickled-modules" in err
    assert not (tmp_path / "plain.safetensors").exists()

    assert convert_main([str(src), str(tmp_path / "cli.safetensors"), "--pickled-modules", "--key", "model"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(load_safetensors(tmp_path / "cli.safetensors")) == sorted(state)
    _no_marker(tmp_path)


def test_programs_and_unreadable_pickles_are_refused(foreign: object, tmp_path: Path):
    import os

    class CallsOs:
        def __reduce__(self):
            return (os.system, ("echo hi > " + str(tmp_path / "marker"),))

    torch.save({"w": torch.ones(2), "x": CallsOs()}, tmp_path / "program.pt")
    with pytest.raises(WeightsError, match=r"names (os|posix)\.system, a global of the standard library: a "
                                           r"checkpoint that names it is a program, and vre refuses it"):
        read_checkpoint(tmp_path / "program.pt", pickled_modules=True)
    # A function of the package, which unpickling would call: refused as well, never called.
    torch.save({"w": torch.ones(2), "x": foreign.Trap(str(tmp_path / "marker.reduce"))},  # type: ignore[attr-defined]
               tmp_path / "trap.pt")
    with pytest.raises(WeightsError, match=rf"names {FOREIGN}\.write_marker, a function \(only classes become "):
        read_checkpoint(tmp_path / "trap.pt", pickled_modules=True)
    _no_marker(tmp_path)

    torch.save({"w": torch.ones(2)}, tmp_path / "new.pt", pickle_protocol=4)
    with pytest.raises(WeightsError, match=r"pickled with protocol 4 or later"):
        read_checkpoint(tmp_path / "new.pt", pickled_modules=True)

    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match=r"not a torch zip checkpoint; --pickled-modules reads files written by "
                                           r"torch.save since torch 1.6 only"):
        read_checkpoint(tmp_path / "legacy.pt", pickled_modules=True)
