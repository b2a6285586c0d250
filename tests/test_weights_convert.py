"""vre convert-weights: legacy pickled checkpoints to safetensors, weights_only loading only, and --variant recipes."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from vrecore.cli.convert_weights import main as convert_main  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.weights.convert import convert_checkpoint  # noqa: E402
from vrecore.weights.loading import load_into, load_safetensors  # noqa: E402


class _Tiny(torch.nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(4, width)
        self.norm = torch.nn.BatchNorm1d(width)
        self.head = torch.nn.Linear(width, 2)


def _random_tiny(seed: int = 0, width: int = 3) -> _Tiny:
    torch.manual_seed(seed)
    m = _Tiny(width)
    with torch.no_grad():
        m.norm.running_mean.uniform_(-1, 1)
        m.norm.running_var.uniform_(0.5, 2)
    return m


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- conversion ----------------------------------------------------------------------------------


class _ArbitraryObject:
    """Something torch.load(weights_only=True) must refuse."""

    def __init__(self):
        self.payload = "not a tensor"


def test_convert_checkpoint_nested_module_prefix(tmp_path: Path):
    model = _random_tiny(seed=3)
    sd = model.state_dict()
    ckpt = {
        "epoch": 7,
        "hyper_parameters": {"lr": 0.1, "names": ["a", "b"]},
        "state_dict": {f"module.{k}": v for k, v in sd.items()},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3)}}}],
    }
    src = tmp_path / "legacy.ckpt"
    torch.save(ckpt, src)
    dst = convert_checkpoint(src, tmp_path / "out" / "model.safetensors")
    back = load_safetensors(dst)
    _assert_same(back, sd)
    fresh = load_into(_Tiny(), back, "tiny")
    _assert_same(fresh.state_dict(), sd)

    # explicit key path + strip_prefix; non-contiguous and shared-storage tensors
    w = torch.randn(4, 6)
    nested = {"model": {"ema": {"net.a": w.t(), "net.b": w[:2], "net.c": w, "step": 3}}}
    torch.save(nested, tmp_path / "nested.pth")
    out = load_safetensors(
        convert_checkpoint(tmp_path / "nested.pth", tmp_path / "n.safetensors", key="model/ema", strip_prefix="net.")
    )
    assert set(out) == {"a", "b", "c"}
    assert torch.equal(out["a"], w.t()) and torch.equal(out["b"], w[:2]) and torch.equal(out["c"], w)

    with pytest.raises(WeightsError, match=r"no key 'nope' \(available: \['model'\]\)"):
        convert_checkpoint(tmp_path / "nested.pth", tmp_path / "x.safetensors", key="nope")


def test_convert_checkpoint_refuses_unsafe_pickle(tmp_path: Path):
    src = tmp_path / "unsafe.pth"
    torch.save({"state_dict": _random_tiny().state_dict(), "extra": _ArbitraryObject()}, src)
    with pytest.raises(WeightsError) as exc:
        convert_checkpoint(src, tmp_path / "unsafe.safetensors")
    msg = str(exc.value)
    assert str(src) in msg and "unsafe unpickling" in msg and "_ArbitraryObject" in msg and "\n" not in msg
    assert not (tmp_path / "unsafe.safetensors").exists()


def test_convert_checkpoint_bad_inputs(tmp_path: Path):
    with pytest.raises(WeightsError, match="does not exist"):
        convert_checkpoint(tmp_path / "none.pth", tmp_path / "o.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        convert_checkpoint(tmp_path / "junk.pth", tmp_path / "o.safetensors")
    torch.save({"w": torch.randn(100)}, tmp_path / "whole.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:300])
    with pytest.raises(WeightsError, match="cannot read checkpoint .*cut.pth"):
        convert_checkpoint(tmp_path / "cut.pth", tmp_path / "o.safetensors")
    torch.save({"epoch": 1}, tmp_path / "empty.pth")
    with pytest.raises(WeightsError, match="no tensors found"):
        convert_checkpoint(tmp_path / "empty.pth", tmp_path / "o.safetensors")
    with pytest.raises(WeightsError, match="must end in .safetensors"):
        convert_checkpoint(tmp_path / "empty.pth", tmp_path / "o.pth")


def test_convert_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    sd = _random_tiny().state_dict()
    torch.save({"model": sd}, tmp_path / "a.pth")
    assert convert_main([str(tmp_path / "a.pth"), str(tmp_path / "a.safetensors")]) == 0
    assert "wrote" in capsys.readouterr().out
    _assert_same(load_safetensors(tmp_path / "a.safetensors"), sd)

    code = convert_main([str(tmp_path / "missing.pth"), str(tmp_path / "b.safetensors"), "--key", "state_dict"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1 and "missing.pth" in err
    assert convert_main([]) == 2  # argparse usage error
