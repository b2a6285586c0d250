"""Every stored frame is verified before it counts as done: corrupt files are quarantined and computed
again, `vre verify` names them, and nothing else changes."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrecore.errors import StorageError
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


def graph(reps=None, **defaults):
    return build_graph({"representations": reps or RGB_HSV, **defaults})


def snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    """Every frame file (not hidden metadata) with its mtime and bytes."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*")) if p.is_file() and not any(part.startswith(".") for part in
                                                                         p.relative_to(out).parts)}


def vre_here(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`vre ARGS` run by `main([...])` in this process, as `vre` runs it (no process start per call)."""
    from vrecore.cli.app import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["vre", *args], code, out, err)


def vre(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True, timeout=180,
                          **kwargs)


def _npz_of_shape(shape, dtype=np.uint8) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, np.zeros(shape, dtype))
    return buf.getvalue()


def _pickled_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, np.array([{"evil": 1}], dtype=object))
    return buf.getvalue()


CORRUPTIONS = {
    "0-byte npz": ("rgb/npz/3.npz", lambda data: b""),
    "truncated npz": ("rgb/npz/3.npz", lambda data: data[: len(data) // 3]),
    "npz of another shape": ("rgb/npz/3.npz", lambda data: _npz_of_shape((90, 160, 3))),
    "npz holding a pickled object": ("rgb/npz/3.npz", lambda data: _pickled_npz()),
    "truncated jpg": ("hsv/jpg/3.jpg", lambda data: data[: len(data) // 2]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_file_is_quarantined_and_computed_again(registry, sample_video, tmp_path, case):
    out = tmp_path / "out"
    first = run_export(graph(image_format="jpg"), sample_video, out, frames="0..6")
    rel, corrupt = CORRUPTIONS[case]
    good = (out / rel).read_bytes()
    bad = corrupt(good)
    (out / rel).write_bytes(bad)
    before = {k: v for k, v in snapshot(out).items() if k != rel}
    again = run_export(graph(image_format="jpg"), sample_video, out, frames="0..6")
    name = rel.split("/")[0]
    assert again.stats[name].computed == 1 and again.stats[name].skipped == 5
    moved = out / ".quarantine" / again.run_id / rel
    assert again.stats[name].quarantined == [str(moved)] and moved.read_bytes() == bad
    assert (out / rel).read_bytes() == good, "computed again, byte for byte what was written first"
    after = snapshot(out)
    same_frame = {k for k in before if k.startswith(f"{name}/") and Path(k).stem == "3"}
    assert {k: v for k, v in after.items() if k != rel and k not in same_frame} == \
        {k: v for k, v in before.items() if k not in same_frame}, "no other frame was touched"
    assert {k: after[k][1] for k in same_frame} == {k: before[k][1] for k in same_frame}, \
        "the frame's other files were written again with the same bytes"
    assert first.ok and again.ok


def test_a_corrupt_dependency_frame_is_computed_again_before_its_dependent_reads_it(registry, sample_video, tmp_path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    run_export(graph({"rgb": {"type": "color/rgb"}}), sample_video, out, frames="0..6")
    run_export(graph(), sample_video, clean, frames="0..6")
    (out / "rgb" / "npz" / "4.npz").write_bytes(b"PK\x03\x04 not really")
    r = run_export(graph(), sample_video, out, frames="0..6")
    assert r.stats["rgb"].computed == 1 and r.stats["hsv"].computed == 6
    assert r.stats["rgb"].quarantined == [str(out / ".quarantine" / r.run_id / "rgb" / "npz" / "4.npz")]
    for i in range(6):
        np.testing.assert_array_equal(load_npz(out / "hsv" / "npz" / f"{i}.npz"),
                                      load_npz(clean / "hsv" / "npz" / f"{i}.npz"))


def _tamper_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_unreadable_dependency_names_the_file_and_the_fix(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph({"rgb": {"type": "color/rgb", "binary_format": "npz-compressed"}}), sample_video, out,
               frames="0..4")
    _tamper_keeping_size_and_mtime(out / "rgb" / "npz" / "2.npz")  # past the quick check, on purpose
    reps = {"rgb": {"type": "color/rgb", "binary_format": "npz-compressed"},
            "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}
    with pytest.raises(StorageError, match=r"representation 'rgb': stored frame 2 \(.*/out/rgb/npz/2\.npz\) cannot "
                                           r"be read \(.*\); run `vre verify .*/out --repair`"):
        run_export(graph(reps), sample_video, out, frames="0..4")


def test_verify_reports_names_bad_files_and_repairs(registry, sample_video, tmp_path, capsys):
    out = tmp_path / "out"
    r = vre_here(capsys, "export", f"video={sample_video}", f"output_dir={out}", "frames=0..8", "image_format=jpg",
            "binary_format=npz-compressed")
    assert r.returncode == 0, r.stderr
    clean = vre_here(capsys, "verify", str(out))
    assert clean.returncode == 0 and clean.stdout.splitlines()[1].split() == ["hsv", "8", "0", "0", "0"], clean.stdout
    (out / "hsv" / "npz" / "1.npz").write_bytes(b"")
    (out / "rgb" / "jpg" / "5.jpg").write_bytes((out / "rgb" / "jpg" / "5.jpg").read_bytes()[:100])
    (out / "rgb" / "npz" / "7.npz").unlink()
    _tamper_keeping_size_and_mtime(out / "hsv" / "npz" / "6.npz")
    quick = vre_here(capsys, "verify", str(out))
    assert quick.returncode == 1
    assert f"corrupt: {out}/hsv/npz/1.npz: 0 bytes" in quick.stdout
    assert f"corrupt: {out}/rgb/jpg/5.jpg: 100 bytes" in quick.stdout
    assert "missing: rgb frames 7" in quick.stdout
    assert "hsv/npz/6.npz" not in quick.stdout, "the quick level does not see same-size, same-mtime tampering"
    assert quick.stderr.strip().endswith(f"run `vre verify {out} --repair` to move them aside and compute them again")
    deep = vre_here(capsys, "verify", str(out), "--deep")
    assert deep.returncode == 1 and f"corrupt: {out}/hsv/npz/6.npz: content changed since it was written" in deep.stdout
    repair = vre_here(capsys, "verify", str(out), "--deep", "--repair")
    assert repair.returncode == 0, repair.stderr
    quarantine = next((out / ".quarantine").iterdir())
    assert sorted(str(p.relative_to(quarantine)) for p in quarantine.rglob("*.*")) == [
        "hsv/npz/1.npz", "hsv/npz/6.npz", "rgb/jpg/5.jpg"]
    assert vre_here(capsys, "verify", str(out), "--deep").returncode == 0
    assert all(load_npz(out / "hsv" / "npz" / f"{i}.npz").shape == (180, 320, 3) for i in range(8))


def test_verify_flags_a_dependent_whose_dependency_changed(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    reps = {"g": {"type": "test/grey"}, "s": {"type": "test/scaled", "dependencies": ["g"]}}
    run_export(graph(reps), sample_video, out, frames="0..4")
    run_export(graph({"g": {"type": "test/grey", "parameters": {"offset": 0.5}}}), sample_video, out, frames="0..4",
               overwrite=True)
    from vrecore.cli.verify import verify_export

    checks = verify_export(out)
    assert checks["s"].stale == set(range(4)) and not checks["s"].complete
    assert checks["s"].stale_reason == "dependency 'g' was computed differently since"
    assert checks["g"].complete == set(range(4))


def test_metadata_rebuild_keeps_the_description_and_records_unrecorded_files(registry, sample_video, tmp_path):
    from vrecore.export.metadata import regenerate_metadata

    out = tmp_path / "out"
    reps = {"g": {"type": "test/grey", "parameters": {"offset": 0.25}, "image_format": "jpg"}}
    run_export(graph(reps), sample_video, out, frames="0..6")
    before = json.loads((out / "g" / ".repr_metadata.json").read_text())
    records = (out / "g" / ".frames.jsonl").read_text().splitlines()
    (out / "g" / ".frames.jsonl").write_text("\n".join(records[:3]) + "\n")  # as if killed before appending
    (out / "g" / "jpg" / "1.jpg").unlink()
    assert regenerate_metadata(out) == {"g": 6}
    meta = json.loads((out / "g" / ".repr_metadata.json").read_text())
    for key in ("type", "parameters", "fingerprint", "fingerprint_digest", "dependencies"):
        assert meta[key] == before[key], key
    assert meta["frames"]["1"]["formats"] == ["npz"] and meta["frames"]["2"]["formats"] == ["npz", "jpg"]
    lines = [json.loads(line) for line in (out / "g" / ".frames.jsonl").read_text().splitlines()]
    assert lines[:3] == [json.loads(r) for r in records[:3]], "records are only ever appended"
    assert sorted(r["frame"] for r in lines[3:]) == [3, 4, 5]
    assert all(r["run"] == "unrecorded" and set(r["files"]) == {"npz", "jpg"} for r in lines[3:])


def test_metadata_rebuild_while_an_export_runs_loses_none_of_its_frames(registry, sample_video, tmp_path):
    from tests.test_export import _script

    from vrecore.export.metadata import regenerate_metadata

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _script(out, sample_video, "0..48", 0.03)])
    rebuilds = 0
    while proc.poll() is None:
        if (out / "slow").is_dir():
            regenerate_metadata(out)
            rebuilds += 1
    assert proc.returncode == 0 and rebuilds >= 3
    regenerate_metadata(out)
    meta = json.loads((out / "slow" / ".repr_metadata.json").read_text())
    assert sorted(map(int, meta["frames"])) == list(range(48))
    runs = {json.loads(line)["run"] for line in (out / "slow" / ".frames.jsonl").read_text().splitlines()}
    assert len(runs - {"unrecorded"}) == 1


def test_the_seed_reader_sees_only_frame_folders(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(image_format="png"), sample_video, out, frames="0..3")
    for name in ("rgb", "hsv"):
        visible = sorted(p.name for p in (out / name).iterdir() if not p.name.startswith("."))
        assert visible == ["npz", "png"]
