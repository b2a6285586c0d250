"""vrecore.weights: declared variants, resolve (cache, local path, imports, downloads), the lock file, preflight
and `vre weights`.

Hub tests run against a temporary cache laid out by `vrecore.testing.populate_hub_cache`, or against a
`vrecore.testing.LocalHub` on 127.0.0.1 that huggingface_hub downloads from through its real code.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("huggingface_hub")

from vrecore.cli.app import main  # noqa: E402
from vrecore.errors import WeightsError  # noqa: E402
from vrecore.graph.registry import get_registry, reset_registry  # noqa: E402
from vrecore.testing import LocalHub, WeightedGrey, populate_hub_cache, scale_weights, use_hub_cache  # noqa: E402
from vrecore.weights.cache import Lock, lock_path, sha256_file  # noqa: E402
from vrecore.weights.declared import declared_variants  # noqa: E402
from vrecore.weights.loading import load_into, load_safetensors  # noqa: E402
from vrecore.weights.resolving import resolve  # noqa: E402
from vrecore.weights.variants import ConvertRecipe, PackageSource, WeightVariant  # noqa: E402

REPO = "vre-test/tiny-net"


def hub_variant(name: str = "tiny-hub", revision: str = "main", **kw) -> WeightVariant:
    return WeightVariant(name=name, repo_id=REPO, revision=revision, size=1234, license="mit", **kw)


def convert_variant(**kw) -> WeightVariant:
    return WeightVariant(name="tiny-converted", size=4, license="mit",
                         convert=ConvertRecipe(url="https://example.org/tiny.ckpt", checkpoint="tiny.ckpt",
                                               key="state_dict", **kw))


@pytest.fixture
def weighted(registry, monkeypatch: pytest.MonkeyPatch):
    """WeightedGrey with variants set by the test: ``weighted({"tiny": variant, ...})``."""
    def set_variants(variants: dict[str, WeightVariant]) -> type[WeightedGrey]:
        monkeypatch.setattr(WeightedGrey, "variants", variants)
        return WeightedGrey
    return set_variants


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once, as on a machine without network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- declaring variants ----------------------------------------------------------------------------------------
def test_a_variant_has_exactly_one_source_and_a_safe_name():
    v = hub_variant(sha256={"model.safetensors": "AB" * 32}, filenames=["config.json", "model.safetensors"])
    assert v.filenames == ("config.json", "model.safetensors") and v.sha256 == {"model.safetensors": "ab" * 32}
    assert v.kind == "hub" and v.source == f"{REPO}@main" and v.convert_command is None
    c = convert_variant()
    assert c.kind == "convert-locally" and c.source == "converted from https://example.org/tiny.ckpt"
    assert c.convert_command == "vre convert-weights tiny.ckpt tiny-converted.safetensors --variant tiny-converted"
    assert WeightVariant(name="x", filenames=("a", "b"), convert=c.convert).convert_output == "x"
    with pytest.raises(ValueError, match=r"exactly one source \(repo_id, convert or package\), got none"):
        WeightVariant(name="x")
    with pytest.raises(ValueError, match=r"got \['repo_id', 'convert'\]"):
        WeightVariant(name="x", repo_id=REPO, revision="main", convert=c.convert)
    with pytest.raises(ValueError, match="needs a revision"):
        WeightVariant(name="x", repo_id=REPO)
    with pytest.raises(ValueError, match="'name' must match"):
        hub_variant(name="../up")
    with pytest.raises(ValueError, match="not one of filenames"):
        hub_variant(sha256={"other.bin": "0" * 64})
    with pytest.raises(ValueError, match="64 hex"):
        hub_variant(sha256={"model.safetensors": "abc"})
    with pytest.raises(ValueError, match=r"\.\."):
        hub_variant(filenames=("../x.safetensors",))
    with pytest.raises(ValueError, match="sha256 must be 64 lowercase hex digits"):
        ConvertRecipe(url="u", checkpoint="c", sha256="ABC")


def test_the_installed_plugins_declare_only_real_sources():
    """No placeholder: every Hub repo is a real publisher's (cited in each variants.py), every other variant
    is the publisher's checkpoint to convert, or a package; names are unique; sizes and licences are stated."""
    reset_registry()
    declared = declared_variants()
    assert {d.type_name for d in declared} >= {"depth/dpt", "depth/depth-anything-v2", "depth/marigold",
                                               "semantic/mask2former", "semantic/phg-mae-distil", "edges/hed",
                                               "edges/dexined"}
    by_name: dict[str, WeightVariant] = {}
    for d in declared:
        v = d.variant
        assert by_name.setdefault(v.name, v) is v, f"two variants are called {v.name!r}"
        assert v.license, v.name
        assert not {"placeholder", "published", "convert", "instead"} & set(v.meta), v.name
        if v.kind == "hub":
            assert v.repo_id.split("/")[0] in {"Intel", "depth-anything", "prs-eth", "facebook"}, v.name
            assert re.fullmatch(r"[0-9a-f]{40}|main|refs/pr/\d+", v.revision), (v.name, v.revision)
            assert v.size, v.name
        elif v.kind == "convert-locally":
            # The seed tool's checkpoints, or a publisher's official archive (RAFT's models.zip, cited in vre-flow).
            assert v.convert.url.startswith(("https://gitlab.com/video-representations-extractor/",
                                             "https://www.dropbox.com/s/4j4z58wuv8o0mfz/models.zip")), v.name
            assert v.convert.url.endswith(("/" + v.convert.checkpoint, ".zip")) and v.size, v.name
        else:
            assert v.package.install.startswith("pip install"), v.name
    assert len(by_name) >= 15


def test_weights_modules_import_light():
    code = ("import sys, vrecore.weights.variants, vrecore.weights.resolving, vrecore.weights.loading, "
            "vrecore.weights.representation, vrecore.weights.declared, vrecore.weights.cache, vrecore.weights.hub, "
            "vrecore.cli.weights, vrecore.weights.convert; "
            "bad = [m for m in ('torch', 'safetensors.torch', 'huggingface_hub') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the Hub cache helper, checked against huggingface_hub itself ----------------------------------------------
def test_populate_hub_cache_matches_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    hub = use_hub_cache(monkeypatch, tmp_path / "hub")
    data = scale_weights(2.0)
    commit = populate_hub_cache(hub, REPO, "v1", {"model.safetensors": data, "sub/config.json": b"{}"})
    storage = hub / "models--vre-test--tiny-net"
    assert (storage / "refs" / "v1").read_text() == commit
    pointer = storage / "snapshots" / commit / "model.safetensors"
    assert pointer.is_symlink() and pointer.read_bytes() == data
    assert Path(huggingface_hub.hf_hub_download(REPO, "model.safetensors", revision="v1")) == pointer
    assert Path(huggingface_hub.hf_hub_download(REPO, "sub/config.json", revision=commit)).read_bytes() == b"{}"
    (repo,) = huggingface_hub.scan_cache_dir(hub).repos
    assert repo.repo_id == REPO and [r.commit_hash for r in repo.revisions] == [commit]


# --- resolve, and the lock file ---------------------------------------------------------------------------------
def test_a_cached_branch_is_pinned_by_the_lock_and_a_changed_file_is_refused(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, weighted):
    hub = use_hub_cache(monkeypatch, tmp_path / "hub")
    commit = populate_hub_cache(hub, REPO, "main", {"model.safetensors": scale_weights(2.0)})
    v = weighted({"tiny": hub_variant()}).variants["tiny"]
    found = resolve(v)
    assert found.commit == commit and found.source == f"{REPO}@{commit}" and found.path.parent.name == commit
    digest = sha256_file(found.path)
    assert Lock().get("tiny-hub") == {"source": "hub", "repo_id": REPO, "revision": "main", "commit": commit,
                                      "files": {"model.safetensors": {"sha256": digest, "size": found.path.stat().st_size}}}
    assert found.identity() == {"variant": "tiny-hub", "commit": commit, "sha256": {"model.safetensors": digest}}

    # the recorded file changes on disk: refused, naming the file and both digests
    blob = found.path.resolve()
    blob.write_bytes(scale_weights(5.0))
    with pytest.raises(WeightsError) as e:
        resolve(v)
    got = sha256_file(blob)
    assert str(e.value) == (
        f"weights 'tiny-hub': file model.safetensors ({found.path}) has sha256 {got}, but the lock file "
        f"{lock_path()} recorded {digest}; it changed or is another version: delete {blob} and run `vre weights "
        "fetch tiny-hub`, or, if you trust it, record it with `vre weights fetch tiny-hub --relock`")
    assert main(["weights", "fetch", "tiny-hub", "--relock"]) == 0
    assert resolve(v).identity()["sha256"] == {"model.safetensors": got}

    # main moves in the cache: the lock keeps the commit it recorded
    populate_hub_cache(hub, REPO, "main", {"model.safetensors": scale_weights(3.0)})
    assert resolve(v).commit == commit


def test_a_published_digest_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    hub = use_hub_cache(monkeypatch, tmp_path / "hub")
    populate_hub_cache(hub, REPO, "main", {"model.safetensors": scale_weights(2.0)})
    with pytest.raises(WeightsError, match=r"^weights 'tiny-hub': file model.safetensors \(.*\) has sha256 [0-9a-f]{64}, "
                                           r"but 'tiny-hub' is published with 0{64}; it changed"):
        resolve(hub_variant(sha256={"model.safetensors": "0" * 64}))


def test_weights_path_is_the_users_own_files(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(scale_weights(2.0))
    v = hub_variant(sha256={"model.safetensors": "0" * 64})  # a fine-tune: the published digest does not apply
    assert resolve(v, tmp_path).path == tmp_path / "model.safetensors"
    assert resolve(v, tmp_path / "model.safetensors").source == f"local path {tmp_path / 'model.safetensors'}"
    assert Lock().get("tiny-hub") is None
    with pytest.raises(WeightsError, match=r"^weights 'tiny-hub': weights_path .*nowhere does not exist; fix "
                                           r"weights_path=, or remove it to use vre-test/tiny-net@main$"):
        resolve(v, tmp_path / "nowhere")
    two = hub_variant(filenames=("config.json", "model.safetensors"))
    with pytest.raises(WeightsError, match=r"lacks \['config.json'\] \(needs \['config.json', 'model.safetensors'\]\)"):
        resolve(two, tmp_path)
    with pytest.raises(WeightsError, match="is a file but the variant needs 2 files"):
        resolve(two, tmp_path / "model.safetensors")


def test_a_package_variant_is_found_without_importing_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "site" / "vre_fake_weights_pkg"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('importing the package is not needed')\n")
    (package / "weights" / "w.safetensors").write_bytes(scale_weights(1.5))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    source = PackageSource(distribution="vre-fake-weights-pkg", module="vre_fake_weights_pkg", folder="weights",
                           install="pip install vre-fake-weights-pkg")
    v = WeightVariant(name="tiny-package", filenames=("w.safetensors",), license="mit", package=source)
    found = resolve(v)
    assert found.path == package / "weights" / "w.safetensors" and found.source == "package vre-fake-weights-pkg ?"
    assert Lock().get("tiny-package")["source"] == "package"
    gone = attrs.evolve(v, package=attrs.evolve(source, module="vre_not_installed_pkg"))
    with pytest.raises(WeightsError, match=r"^weights 'tiny-package' \(size unknown\) come with the Python package "
                                           r"vre-fake-weights-pkg, which is not installed: pip install"):
        resolve(gone)


def test_the_lock_file_is_the_projects_when_there_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from vrecore.weights.cache import weights_dir

    monkeypatch.chdir(tmp_path)
    assert lock_path() == weights_dir() / "vre-weights.lock"
    (tmp_path / "vre-weights.lock").write_text("{}")
    assert lock_path() == tmp_path / "vre-weights.lock"
    monkeypatch.setenv("VRE_WEIGHTS_LOCK", str(tmp_path / "elsewhere.lock"))
    assert lock_path() == tmp_path / "elsewhere.lock"


# --- missing weights: one line, fast, with the command that gets them ------------------------------------------
def record_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The time.sleep() calls of this thread from now on: a retry loop (huggingface_hub's backoff) waits between tries,
    an answer "at once" never does. Sleeps stay real, so a hang guard still works."""
    waits: list[float] = []
    sleep, me = time.sleep, threading.current_thread()

    def recording_sleep(seconds: float) -> None:
        if threading.current_thread() is me:
            waits.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    return waits


def test_offline_a_missing_variant_is_one_line_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weighted):
    use_hub_cache(monkeypatch, tmp_path / "empty", offline=True)
    cls = weighted({"tiny": hub_variant()})
    waits = record_waits(monkeypatch)
    with pytest.raises(WeightsError) as e:
        cls(name="w").preflight()
    assert waits == []
    assert str(e.value) == (
        f"weights 'tiny-hub' ({REPO}@main, 1.2 kB) are not in the Hugging Face cache {tmp_path / 'empty'} ({REPO} is not "
        "in the cache) and HF_HUB_OFFLINE=1 forbids downloading; get them with `vre weights fetch tiny-hub` where the "
        "Hub can be reached, or set weights_path= to local files (model.safetensors)")


def test_without_network_a_missing_variant_is_one_line_without_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       closed_port: int, weighted):
    """HF_HUB_OFFLINE unset and no network: huggingface_hub alone would retry for ~25 s; the probe answers at once."""
    use_hub_cache(monkeypatch, tmp_path / "empty", offline=False, endpoint=f"http://127.0.0.1:{closed_port}")
    cls = weighted({"tiny": hub_variant()})
    waits = record_waits(monkeypatch)
    with pytest.raises(WeightsError, match=rf"are not in the Hugging Face cache .* and http://127.0.0.1:{closed_port} "
                                           rf"cannot be reached \(127.0.0.1:{closed_port}: Connection refused\); get "
                                           r"them with `vre weights fetch tiny-hub`"):
        cls(name="w").preflight()
    assert waits == []  # no retry


def test_export_reports_each_missing_variant_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             sample_video: Path, weighted):
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    use_hub_cache(monkeypatch, tmp_path / "empty", offline=True)
    weighted({"tiny": hub_variant(), "converted": convert_variant()})
    graph = build_graph({"representations": {"a": {"type": "test/weighted-grey"},
                                             "b": {"type": "test/weighted-grey", "parameters": {"variant": "converted"}},
                                             "c": {"type": "test/grey"}}})
    waits = record_waits(monkeypatch)
    with pytest.raises(WeightsError) as e:
        run_export(graph, sample_video, tmp_path / "out")
    assert waits == []
    lines = str(e.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["representation 'a' (test/weighted-grey)",
                                                      "representation 'b' (test/weighted-grey)"]
    assert "HF_HUB_OFFLINE=1 forbids downloading" in lines[0]
    assert "convert it with `vre convert-weights tiny.ckpt tiny-converted.safetensors --variant tiny-converted`" in lines[1]
    assert not any((tmp_path / "out").glob("*/npz/*"))


# --- fetching from a Hub ---------------------------------------------------------------------------------------
def test_fetch_downloads_resolves_the_branch_and_records_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str], weighted):
    cls = weighted({"tiny": hub_variant(filenames=("config.json", "model.safetensors"))})
    with LocalHub() as hub:
        commit = hub.publish(REPO, {"config.json": b"{}", "model.safetensors": scale_weights(2.0)})
        use_hub_cache(monkeypatch, tmp_path / "cache", offline=False, endpoint=hub.url)
        assert main(["weights", "list", "tiny-hub"]) == 0
        assert re.search(r"tiny-hub\s+test/weighted-grey\s+downloadable\s+1.2 kB\s+mit", capsys.readouterr().out)

        assert main(["weights", "fetch", "tiny-hub"]) == 0
        assert f"tiny-hub: {REPO}@{commit} (2 file(s)" in capsys.readouterr().out
        entry = Lock().get("tiny-hub")
        assert entry["commit"] == commit and set(entry["files"]) == {"config.json", "model.safetensors"}
        fetched = resolve(cls.variants["tiny"]).files["model.safetensors"]
        assert entry["files"]["model.safetensors"]["sha256"] == sha256_file(fetched)

        # The branch moves on the Hub; the lock keeps this machine on the recorded commit.
        hub.publish(REPO, {"config.json": b"{}", "model.safetensors": scale_weights(7.0)})
        rep = cls(name="w")
        rep.preflight()
        rep.setup("cpu")
        frames = np.full((1, 2, 2, 3), 255, np.uint8)
        from vrecore.graph.representation import Batch

        assert rep.compute(Batch(indices=np.arange(1), frames=frames, deps={}))[0, 0, 0, 0] == 2.0
        assert rep.weights_identity()["commit"] == commit
        assert main(["weights", "list", "tiny-hub"]) == 0
        assert re.search(r"tiny-hub\s+test/weighted-grey\s+cached", capsys.readouterr().out)

        # A machine with an empty cache and this lock file downloads the locked commit, not the new main.
        use_hub_cache(monkeypatch, tmp_path / "other-cache", offline=False, endpoint=hub.url)
        assert resolve(cls.variants["tiny"]).commit == commit
        assert main(["weights", "fetch", "vre-no-such-variant"]) == 2
        assert "no weight variant is called 'vre-no-such-variant'" in capsys.readouterr().err


def test_a_download_that_fails_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with LocalHub() as hub:
        hub.publish(REPO, {"model.safetensors": scale_weights(2.0)})
        use_hub_cache(monkeypatch, tmp_path / "cache", offline=False, endpoint=hub.url)
        with pytest.raises(WeightsError, match=r"^weights 'tiny-hub': vre-test/tiny-net@main has no file "
                                               r"'other.safetensors'; check the name and revision"):
            resolve(hub_variant(filenames=("other.safetensors",)))
        with pytest.raises(WeightsError, match=r"^weights 'tiny-hub': the Hub has no repository vre-test/absent"):
            resolve(attrs.evolve(hub_variant(), repo_id="vre-test/absent"))


# --- import, verify ----------------------------------------------------------------------------------------------
def test_import_checks_then_places_the_file_and_the_lock_guards_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   weighted):
    cls = weighted({"tiny": convert_variant()})
    good, other, bad = tmp_path / "good.safetensors", tmp_path / "other.safetensors", tmp_path / "bad.safetensors"
    good.write_bytes(scale_weights(2.0))
    other.write_bytes(scale_weights(4.0))
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros(3, np.float32)}, str(bad))
    assert main(["weights", "import", "tiny-converted", str(bad)]) == 2
    assert (f"vre weights: error: {bad} is not usable as weights 'tiny-converted': weights 'tiny-converted' hold "
            "['weight'], not one tensor 'scale'") in capsys.readouterr().err
    with pytest.raises(WeightsError, match="not published ready to load"):
        cls(name="w").preflight()

    assert main(["weights", "import", "tiny-converted", str(good)]) == 0
    assert "imported tiny-converted: 1 file(s)" in capsys.readouterr().out
    found = cls(name="w").weights()
    assert found.source.startswith("imported into ") and found.path.read_bytes() == good.read_bytes()
    assert main(["weights", "list", "tiny-converted"]) == 0
    assert re.search(r"tiny-converted\s+test/weighted-grey\s+cached", capsys.readouterr().out)

    assert main(["weights", "import", "tiny-converted", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"has sha256 {sha256_file(other)}, but the lock file" in err and f"recorded {sha256_file(good)}" in err
    assert "add --replace" in err
    assert main(["weights", "import", "tiny-converted", str(other), "--replace"]) == 0
    assert cls(name="w").weights().path.read_bytes() == other.read_bytes()


def test_verify_hashes_again_whatever_the_stat_says(tmp_path: Path, capsys: pytest.CaptureFixture[str], weighted):
    cls = weighted({"tiny": convert_variant()})
    (tmp_path / "w.safetensors").write_bytes(scale_weights(2.0))
    assert main(["weights", "import", "tiny-converted", str(tmp_path / "w.safetensors")]) == 0
    assert main(["weights", "verify"]) == 0
    assert "ok tiny-converted: 1 file(s)" in capsys.readouterr().out
    # Bit rot: the same size and modification time, other bytes. The identity (from the lock) and the digest memo
    # (by stat) cannot see it; verify hashes again and can.
    path = cls(name="w").weights().path
    st = path.stat()
    path.write_bytes(scale_weights(3.0))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cls(name="w").weights_identity()["sha256"]["model.safetensors"] == sha256_file(tmp_path / "w.safetensors")
    assert main(["weights", "verify"]) == 1
    assert "weights 'tiny-converted': file model.safetensors" in capsys.readouterr().err


def test_the_identity_names_the_content_not_the_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weighted):
    """It goes into the fingerprint of the output: the same weights anywhere give the same identity, and finished
    output keeps it where the weights are gone (the lock file remembers them, no file is read)."""
    hub = use_hub_cache(monkeypatch, tmp_path / "hub")
    commit = populate_hub_cache(hub, REPO, "main", {"model.safetensors": scale_weights(2.0)})
    cls = weighted({"tiny": hub_variant()})
    digest = sha256_file(resolve(cls.variants["tiny"]).path)
    expected = {"variant": "tiny-hub", "commit": commit, "sha256": {"model.safetensors": digest}}
    assert cls(name="w").weights_identity() == expected
    for p in (hub / "models--vre-test--tiny-net").rglob("*"):
        if p.is_file() or p.is_symlink():
            p.unlink()
    assert cls(name="w").weights_identity() == expected
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.safetensors").write_bytes(scale_weights(2.0))
    local = [cls(name="w", weights_path=tmp_path / f).weights_identity() for f in ("a", "b")]
    assert local[0] == local[1] == {"variant": "tiny-hub", "commit": None, "sha256": {"model.safetensors": digest}}
    assert cls(name="w", weights_path=tmp_path / "gone").weights_identity() == {"variant": "tiny-hub", "commit": None,
                                                                                 "sha256": None}
    assert cls.unfingerprinted_parameters == ("weights_path",)


def test_convert_for_a_variant_checks_the_checkpoint_and_applies_the_recipe(tmp_path: Path, weighted):
    from vrecore.weights.convert import convert_for_variant

    torch.save({"state_dict": {"scale": torch.tensor(2.0)}, "epoch": 3}, tmp_path / "tiny.ckpt")
    weighted({"tiny": convert_variant(sha256=sha256_file(tmp_path / "tiny.ckpt"))})
    out = convert_for_variant(tmp_path / "tiny.ckpt", tmp_path / "tiny-converted.safetensors", "tiny-converted")
    assert float(load_safetensors(out)["scale"]) == 2.0
    weighted({"tiny": convert_variant(sha256="0" * 64)})
    with pytest.raises(WeightsError, match=r"has sha256 [0-9a-f]{64}, but tiny.ckpt published at "
                                           r"https://example.org/tiny.ckpt has 0{64}"):
        convert_for_variant(tmp_path / "tiny.ckpt", tmp_path / "again.safetensors", "tiny-converted")


# --- the command line: weights_path= without Hydra's + -----------------------------------------------------------
def test_a_parameter_the_preset_does_not_set_needs_no_plus(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "pipeline=rgb_hsv",
                        "representations.hsv.parameters.weights_path=/models/x", "--cfg", "job"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "weights_path: /models/x" in r.stdout
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "pipeline=rgb_hsv", "video=/nowhere.mp4",
                        "representations.hsv.parameters.weights_path=/models/x"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "representation 'hsv' (color/hsv) has unknown parameter(s) weights_path; accepted: none" in r.stderr
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "pipeline=rgb_hsv", "representations.hsv.typo=1",
                        "--cfg", "job"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    # the rest stays closed: a typo is an unknown key, with the nearest one
    assert r.returncode == 2 and "unknown key 'representations.hsv.typo'; did you mean 'representations.hsv.type'?" in r.stderr


def test_weights_list_of_a_pipeline(capsys: pytest.CaptureFixture[str]):
    reset_registry()
    assert "depth/depth-anything-v2" in get_registry().types
    assert main(["weights", "list", "--pipeline", "dronescapes2_fast", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["representation"]: r["variant"] for r in rows} == {
        "depth": "depth-anything-v2-small",
        "semantic_mask2former_swin_mapillary": "mask2former-swin-large-mapillary-vistas-semantic",
        "semantic_mask2former_r50_mapillary": "mask2former-r50-mapillary-vistas-panoptic",
        "semantic_mask2former_swin_coco": "mask2former-swin-large-coco-panoptic"}
    r50 = next(r for r in rows if r["representation"] == "semantic_mask2former_r50_mapillary")
    assert r50["status"] == "convert-locally" and r50["get"].startswith("vre convert-weights 49189528_1.ckpt ")
    assert main(["weights", "list", "--pipeline", "no_such_preset"]) == 2
    assert "vre weights: error: pipeline 'no_such_preset':" in capsys.readouterr().err


# --- loading -----------------------------------------------------------------------------------------------------
class _Tiny(torch.nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(4, width)
        self.head = torch.nn.Linear(width, 2)


def test_load_safetensors_refuses_what_is_not_safetensors(tmp_path: Path):
    good = tmp_path / "good.safetensors"
    good.write_bytes(scale_weights(1.0))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(WeightsError, match=rf"{re.escape(str(bad))} \(corrupt or not safetensors"):
        load_safetensors(bad)
    legacy = tmp_path / "old.pth"
    torch.save({"w": torch.zeros(2)}, legacy)
    with pytest.raises(WeightsError, match="vre convert-weights"):
        load_safetensors(legacy)
    with pytest.raises(WeightsError, match="does not exist"):
        load_safetensors(tmp_path / "absent.safetensors")


def test_load_into_names_the_tensors_that_do_not_fit():
    torch.manual_seed(0)
    sd = _Tiny(width=5).state_dict()
    with pytest.raises(WeightsError, match=r"'tiny-v2' do not fit model _Tiny: \d shape mismatch\(es\): lin.weight: "
                                           r"checkpoint \[5, 4\] vs model \[3, 4\]"):
        load_into(_Tiny(width=3), sd, "tiny-v2")
    sd = _Tiny().state_dict()
    with pytest.raises(WeightsError, match=r"--strip-prefix model\."):
        load_into(_Tiny(), {f"model.{k}": v for k, v in sd.items()}, "tiny")
    partial = {k: v for k, v in sd.items() if not k.startswith("head.")}
    with pytest.raises(WeightsError, match=r"2 missing key\(s\): head.weight \[2, 3\], head.bias \[2\]"):
        load_into(_Tiny(), partial, "tiny")
    assert torch.equal(load_into(_Tiny(), partial, "tiny", strict=False).lin.weight, sd["lin.weight"])


def test_every_name_vrecore_weights_exports_is_that_name_even_after_its_modules_are_imported():
    """A sub-module named like an exported name (``resolve``) would replace that name in the package."""
    import importlib
    import pkgutil
    import types

    import vrecore.weights

    for module in pkgutil.iter_modules(vrecore.weights.__path__):
        importlib.import_module(f"vrecore.weights.{module.name}")
    assert [n for n in vrecore.weights.__all__ if isinstance(getattr(vrecore.weights, n), types.ModuleType)] == []
