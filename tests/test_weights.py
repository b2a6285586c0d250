"""vrecore.weights: WeightVariant, fetch (HF cache / local path), safetensors loading, conversion.

Every Hub test runs offline against a temporary cache built by `vrecore.testing.populate_hub_cache`
and read back through the real huggingface_hub code.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("huggingface_hub")

from safetensors.torch import save_file  # noqa: E402

from vrecore.errors import VreError, WeightsError  # noqa: E402
from vrecore.testing import populate_hub_cache, use_hub_cache  # noqa: E402
from vrecore.weights import (  # noqa: E402
    WeightVariant,
    convert_checkpoint,
    convert_main,
    fetch,
    load_into,
    load_safetensors,
)

REPO = "vre-test/tiny-net"


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
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture()
def tiny_file(tmp_path: Path) -> tuple[_Tiny, Path, str]:
    m = _random_tiny()
    path = tmp_path / "src" / "model.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return m, path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_hub_cache(monkeypatch, tmp_path / "hf-cache", offline=True)


# --- WeightVariant -------------------------------------------------------------------------------


def test_variant_fields_and_validation():
    v = WeightVariant(
        name="tiny", repo_id=REPO, revision="v1", filenames=["config.json", "model.safetensors"],
        sha256={"model.safetensors": "AB" * 32}, license="mit", num_params=23, meta={"classes": ["a"]},
    )
    assert v.filenames == ("config.json", "model.safetensors")
    assert v.sha256 == {"model.safetensors": "ab" * 32}
    assert v.source == f"{REPO}@v1"
    hash(v)  # frozen and hashable although it holds dicts
    with pytest.raises(ValueError, match="pinned revision"):
        WeightVariant(name="tiny", repo_id=REPO)
    with pytest.raises(ValueError, match="not one of filenames"):
        WeightVariant(name="tiny", repo_id=REPO, revision="v1", sha256={"other.bin": "0" * 64})
    with pytest.raises(ValueError, match="64 hex"):
        WeightVariant(name="tiny", repo_id=REPO, revision="v1", sha256={"model.safetensors": "abc"})
    with pytest.raises(ValueError, match=r"\.\."):
        WeightVariant(name="tiny", repo_id=REPO, revision="v1", filenames=("../x.safetensors",))


def test_weights_module_import_is_light():
    code = (
        "import sys, vrecore.weights; "
        "bad = [m for m in ('torch', 'safetensors.torch', 'huggingface_hub') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- the HF cache helper, checked against huggingface_hub itself ---------------------------------


def test_populate_hub_cache_matches_huggingface_hub(hub: Path, tiny_file):
    import huggingface_hub

    _, path, digest = tiny_file
    commit = populate_hub_cache(hub, REPO, "v1", {"model.safetensors": path, "sub/config.json": b"{}"})
    assert len(commit) == 40
    storage = hub / "models--vre-test--tiny-net"
    assert (storage / "refs" / "v1").read_text() == commit
    assert (storage / "blobs" / digest).is_file()  # LFS-style blob named by sha256
    pointer = storage / "snapshots" / commit / "model.safetensors"
    assert pointer.is_symlink() and pointer.resolve() == (storage / "blobs" / digest).resolve()

    by_tag = huggingface_hub.hf_hub_download(REPO, "model.safetensors", revision="v1")
    by_commit = huggingface_hub.hf_hub_download(REPO, "sub/config.json", revision=commit)
    assert Path(by_tag) == pointer and Path(by_commit).read_bytes() == b"{}"
    report = huggingface_hub.scan_cache_dir(hub)
    assert not report.warnings
    (repo,) = report.repos
    (rev,) = repo.revisions
    assert repo.repo_id == REPO and rev.commit_hash == commit and set(rev.refs) == {"v1"}


# --- fetch ---------------------------------------------------------------------------------------


def test_fetch_from_hub_cache_offline_and_load(hub: Path, tiny_file):
    model, path, digest = tiny_file
    populate_hub_cache(hub, REPO, "v1", {"model.safetensors": path})
    variant = WeightVariant(name="tiny", repo_id=REPO, revision="v1", sha256={"model.safetensors": digest})

    got = fetch(variant)
    assert got.name == "model.safetensors" and str(got).startswith(str(hub))
    fresh = _Tiny()
    load_into(fresh, load_safetensors(got), variant.name)
    _assert_same(fresh.state_dict(), model.state_dict())


def test_fetch_multi_file_returns_snapshot_folder(hub: Path, tiny_file):
    _, path, _ = tiny_file
    commit = populate_hub_cache(
        hub, REPO, "0123456789abcdef0123456789abcdef01234567",
        {"config.json": b'{"width": 3}', "weights/model.safetensors": path},
    )
    variant = WeightVariant(
        name="tiny-tf", repo_id=REPO, revision=commit, filenames=("config.json", "weights/model.safetensors")
    )
    folder = fetch(variant)
    assert folder.is_dir() and folder.name == commit
    assert (folder / "config.json").read_bytes() == b'{"width": 3}'
    assert load_safetensors(folder / "weights" / "model.safetensors")


def test_fetch_local_path_folder_and_file(tmp_path: Path, tiny_file):
    model, path, digest = tiny_file
    variant = WeightVariant(name="tiny", repo_id=REPO, revision="v1", sha256={"model.safetensors": digest})
    assert fetch(variant, local_path=path.parent) == path.parent / "model.safetensors"
    assert fetch(variant, local_path=path) == path
    local_only = WeightVariant(name="tiny-local", local_path=path.parent)
    _assert_same(load_safetensors(fetch(local_only)), model.state_dict())

    with pytest.raises(WeightsError) as exc:
        fetch(variant, local_path=tmp_path / "nowhere")
    msg = str(exc.value)
    assert "'tiny'" in msg and str(tmp_path / "nowhere") in msg and "does not exist" in msg and "\n" not in msg

    two = WeightVariant(name="tiny2", local_path=path.parent, filenames=("model.safetensors", "config.json"))
    with pytest.raises(WeightsError, match=r"lacks \['config.json'\]"):
        fetch(two)
    with pytest.raises(WeightsError, match="is a file but the variant needs 2 files"):
        fetch(two, local_path=path)
    with pytest.raises(WeightsError, match="no Hub repo and no local path"):
        fetch(WeightVariant(name="nothing"))


def test_fetch_missing_in_cache_offline_message(hub: Path):
    variant = WeightVariant(name="dpt-hybrid-midas", repo_id="vre-test/absent", revision="abc123")
    with pytest.raises(WeightsError) as exc:
        fetch(variant)
    msg = str(exc.value)
    assert isinstance(exc.value, VreError) and "\n" not in msg
    for part in ("'dpt-hybrid-midas'", "vre-test/absent@abc123", "'model.safetensors'", "offline",
                 "not in the cache", str(hub), "HF_HUB_OFFLINE", "weights_path="):
        assert part in msg, (part, msg)


def test_fetch_wrong_revision_message(hub: Path, tiny_file):
    _, path, _ = tiny_file
    populate_hub_cache(hub, REPO, "v1", {"model.safetensors": path})
    with pytest.raises(WeightsError) as exc:
        fetch(WeightVariant(name="tiny", repo_id=REPO, revision="v2"))
    msg = str(exc.value)
    assert "revision 'v2' is not in the cache" in msg and "['v1']" in msg and str(hub) in msg, msg

    with pytest.raises(WeightsError, match="file 'other.safetensors' is not in the cached snapshot"):
        fetch(WeightVariant(name="tiny", repo_id=REPO, revision="v1", filenames=("other.safetensors",)))


def test_fetch_sha256_mismatch(hub: Path, tiny_file):
    _, path, _ = tiny_file
    populate_hub_cache(hub, REPO, "v1", {"model.safetensors": path})
    wrong = "0" * 64
    variant = WeightVariant(name="tiny", repo_id=REPO, revision="v1", sha256={"model.safetensors": wrong})
    with pytest.raises(WeightsError) as exc:
        fetch(variant)
    msg = str(exc.value)
    assert "sha256 mismatch" in msg and "'model.safetensors'" in msg and "000000000000" in msg and "HF cache" in msg
    with pytest.raises(WeightsError, match="sha256 mismatch.*local path"):
        fetch(variant, local_path=path)


# --- loading -------------------------------------------------------------------------------------


def test_load_safetensors_corrupt_file(tmp_path: Path, tiny_file):
    _, path, _ = tiny_file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:40])
    with pytest.raises(WeightsError) as exc:
        load_safetensors(bad)
    assert str(bad) in str(exc.value) and "corrupt" in str(exc.value)
    legacy = tmp_path / "old.pth"
    torch.save({"w": torch.zeros(2)}, legacy)
    with pytest.raises(WeightsError, match="vre convert-weights"):
        load_safetensors(legacy)
    with pytest.raises(WeightsError, match="does not exist"):
        load_safetensors(tmp_path / "absent.safetensors")


def test_load_into_shape_mismatch_lists_tensors():
    sd = _random_tiny(width=5).state_dict()
    with pytest.raises(WeightsError) as exc:
        load_into(_Tiny(width=3), sd, "tiny-v2")
    msg = str(exc.value)
    assert "'tiny-v2'" in msg and "_Tiny" in msg and "shape mismatch" in msg
    assert "lin.weight: checkpoint [5, 4] vs model [3, 4]" in msg, msg
    assert "\n" not in msg


def test_load_into_missing_unexpected_and_prefix_hint():
    sd = _random_tiny().state_dict()
    with pytest.raises(WeightsError) as exc:
        load_into(_Tiny(), {f"model.{k}": v for k, v in sd.items()}, "tiny")
    msg = str(exc.value)
    assert "missing key(s): lin.weight [3, 4]" in msg and "unexpected key(s): model.lin.weight [3, 4]" in msg
    assert "--strip-prefix model." in msg

    partial = {k: v for k, v in sd.items() if not k.startswith("head.")}
    with pytest.raises(WeightsError, match=r"2 missing key\(s\): head.weight \[2, 3\], head.bias \[2\]"):
        load_into(_Tiny(), partial, "tiny")
    m = load_into(_Tiny(), partial, "tiny", strict=False)  # tolerated when not strict
    assert torch.equal(m.lin.weight, sd["lin.weight"])


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
