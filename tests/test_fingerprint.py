"""Every representation folder remembers what produced it: a re-run that would make frames differently
is refused before any compute, naming what changed; overwrite replaces, on_mismatch=keep mixes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vrecore.export.plan import FingerprintMismatch
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.graph.representation import stored_dtype
from vrecore.store.npz import load_npz

BASE = {"g": {"type": "test/grey"}, "s": {"type": "test/scaled", "dependencies": ["g"], "parameters": {"factor": 2.0}}}


def graph(reps, **defaults):
    return build_graph({"representations": reps, **defaults})


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and ".logs" not in p.parts}


def with_(name: str, **spec) -> dict:
    reps = json.loads(json.dumps(BASE))
    reps[name].update(spec)
    return reps


@pytest.fixture
def other_video(tmp_path_factory):
    from vrecore.frames.sample import make_sample_clip

    return make_sample_clip(tmp_path_factory.mktemp("other") / "other.mp4", width=320, height=180, frames=48, seed=7)


CHANGES = [
    ("parameters", lambda: (with_("s", parameters={"factor": 3.0}), {}),
     ["representation 's': ", "(parameters.factor: 2.0 → 3.0)"]),
    ("output_size", lambda: (with_("g", output_size=[90, 160]), {}),
     ["representation 'g': ", "output_size: null → [90,160]", "representation 's': ", "dependency 'g' changed"]),
    ("output_dtype", lambda: (with_("g", output_dtype="float16"), {}),
     ["representation 'g': ", "stored.dtype: float32 → float16"]),
    ("binary_format", lambda: (with_("s", binary_format="npz-compressed"), {}),
     ["representation 's': ", "stored.binary_format: npz → npz-compressed"]),
    ("image_format", lambda: (with_("s", image_format="jpg"), {}),
     ["representation 's': ", "stored.image_format: none → jpg"]),
    ("weights", lambda: ({"l": {"type": "test/learned", "parameters": {"weights": "v2"}}}, {}),
     ["representation 'l': ", "weights.variant: v1 → v2"]),
]


@pytest.mark.parametrize("field,change,expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_field_is_refused_naming_it_then_overwrite_replaces(registry, sample_video, tmp_path, field, change,
                                                                       expected):
    out = tmp_path / "out"
    reps, _ = change()
    first = {"l": {"type": "test/learned"}} if field == "weights" else BASE
    run_export(graph(first), sample_video, out, frames="0..8")
    before = files(out)
    with pytest.raises(FingerprintMismatch) as info:
        run_export(graph(reps), sample_video, out, frames="4..6")
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert "run again with overwrite=true to recompute them, choose another output_dir, or add frames anyway " \
           "with on_mismatch=keep" in message
    assert files(out) == before, "refused before anything was written"
    assert len(list((out / ".logs").glob("run_metadata_*.json"))) == 1, "a refused run leaves no run record"
    result = run_export(graph(reps), sample_video, out, frames="4..6", overwrite=True)
    assert result.ok
    changed = [line.split("'")[1] for line in message.splitlines()]
    for name in changed:
        frames = sorted(int(p.stem) for p in (out / name / "npz").glob("*.npz"))
        assert frames == [4, 5], f"{name}: only the new frames remain"
        arrays = [load_npz(out / name / "npz" / f"{i}.npz") for i in frames]
        assert len({(a.shape, a.dtype.str) for a in arrays}) == 1


def test_another_video_is_refused(registry, sample_video, other_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(BASE), sample_video, out, frames="0..4")
    with pytest.raises(FingerprintMismatch, match=r"representation 'g': .* \(video.sha256_edges: \S+ → \S+; "
                                                  r"video.size: \d+ → \d+\)"):
        run_export(graph(BASE), other_video, out, frames="0..4")


def test_a_moved_or_copied_video_is_the_same_video(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(BASE), sample_video, out, frames="0..4")
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    copy.write_bytes(sample_video.read_bytes())
    again = run_export(graph(BASE), copy, out, frames="0..6")
    assert again.stats["g"].skipped == 4 and again.stats["g"].computed == 2


def test_a_new_plugin_version_is_refused(registry, sample_video, tmp_path, monkeypatch):
    import vrecore.export.run

    out = tmp_path / "out"
    monkeypatch.setattr(vrecore.export.run, "_plugin_versions", lambda: {"vrecore-testing": "1.0", "vrecore": "0.1.0"})
    run_export(graph(BASE), sample_video, out, frames="0..4")
    monkeypatch.setattr(vrecore.export.run, "_plugin_versions", lambda: {"vrecore-testing": "1.1", "vrecore": "0.1.0"})
    with pytest.raises(FingerprintMismatch, match=r"plugin.version: 1.0 → 1.1"):
        run_export(graph(BASE), sample_video, out, frames="0..4")


def test_keep_adds_frames_and_records_the_folder_as_mixed(registry, sample_video, tmp_path):
    from vrecore.cli.verify import verify_export

    out = tmp_path / "out"
    run_export(graph(BASE), sample_video, out, frames="0..4")
    changed = with_("s", parameters={"factor": 3.0})
    r = run_export(graph(changed), sample_video, out, frames="0..6", on_mismatch="keep")
    assert r.stats["s"].computed == 2 and r.stats["s"].skipped == 4
    meta = json.loads((out / "s" / ".repr_metadata.json").read_text())
    assert meta["mixed"] is True and meta["parameters"]["factor"] == 3.0
    assert [fp["parameters"]["factor"] for fp in meta["earlier_fingerprints"].values()] == [2.0]
    assert verify_export(out)["s"].stale == {0, 1, 2, 3}
    np.testing.assert_allclose(load_npz(out / "s" / "npz" / "5.npz"), 3 * load_npz(out / "g" / "npz" / "5.npz"))
    # A normal run with the new configuration makes the folder consistent again.
    again = run_export(graph(changed), sample_video, out, frames="0..6")
    assert again.stats["s"].computed == 4 and again.stats["s"].recomputed_stale == 4
    assert json.loads((out / "s" / ".repr_metadata.json").read_text())["mixed"] is False
    assert verify_export(out)["s"].complete == set(range(6))


def test_the_cli_refuses_with_one_line_per_representation(sample_video, tmp_path, capsys):
    from vrecore.cli.app import main

    out = tmp_path / "out"
    args = ["export", f"video={sample_video}", f"output_dir={out}", "frames=0..3"]
    assert main(args) == 0  # in this process, as `vre` runs it
    capsys.readouterr()
    code, err = main([*args, "output_size=[90,160]"]), capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert [line.split("'")[1] for line in lines] == ["rgb", "hsv"], err
    assert all(line.startswith("vre export: error: representation '") for line in lines)


# -- output_dtype: floating-point disk forms only ----------------------------------------------------------
def test_stored_dtype_casts_floats_only():
    assert stored_dtype("float32", "float16") == "float16"
    assert stored_dtype("uint8", "float16") == "uint8"
    assert stored_dtype("bool", "float16") == "bool"
    assert stored_dtype("float32", None) == "float32"


def test_global_float16_keeps_images_and_gives_dependents_the_same_values(registry, sample_video, tmp_path):
    reps = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
            "s": {"type": "test/scaled", "dependencies": ["hsv"]}}
    run_export(graph(reps), sample_video, tmp_path / "plain", frames="0..4")
    run_export(graph(reps, output_dtype="float16"), sample_video, tmp_path / "half", frames="0..4")
    for i in range(4):
        plain = {n: load_npz(tmp_path / "plain" / n / "npz" / f"{i}.npz") for n in reps}
        half = {n: load_npz(tmp_path / "half" / n / "npz" / f"{i}.npz") for n in reps}
        assert half["rgb"].dtype == np.uint8 and np.array_equal(half["rgb"], plain["rgb"])
        assert half["hsv"].dtype == np.float16
        np.testing.assert_array_equal(half["hsv"], plain["hsv"].astype(np.float16))
        # s sees hsv as stored (float16), computed now or read back later alike:
        np.testing.assert_array_equal(half["s"], (2 * half["hsv"].astype(np.float32)).astype(np.float16))
    (tmp_path / "half" / "s" / "npz" / "2.npz").unlink()
    run_export(graph(reps, output_dtype="float16"), sample_video, tmp_path / "half", frames="0..4")
    half_hsv = load_npz(tmp_path / "half" / "hsv" / "npz" / "2.npz")
    np.testing.assert_array_equal(load_npz(tmp_path / "half" / "s" / "npz" / "2.npz"),
                                  (2 * half_hsv.astype(np.float32)).astype(np.float16))


def test_output_dtype_must_be_a_float(registry):
    from vrecore.errors import GraphError

    with pytest.raises(GraphError, match=r"output_dtype 'uint8' is not one of float16, float32, float64 \(it applies "
                                         r"to floating-point outputs"):
        graph(BASE, output_dtype="uint8")
