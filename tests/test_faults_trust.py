"""Faults against the fingerprint and run bookkeeping (issue 19, items 3, 7, 8): racing runs with different
fingerprints, a lost or corrupt representation metadata file, a run killed with -9."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import vrecore.export.run
from vrecore.cli.verify import verify_export
from vrecore.export.plan import FingerprintMismatch
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}
SMALL = [90, 160]


def graph(output_size: list[int] | None = None) -> Any:
    return build_graph({"representations": RGB_HSV, **({"output_size": output_size} if output_size else {})})


def vre(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True, timeout=180)


def vre_here(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`vre ARGS` run by `main([...])` in this process, as `vre` runs it (no process start per call)."""
    from vrecore.cli.app import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["vre", *args], code, out, err)


def tree(out: Path) -> dict[str, bytes]:
    """Every file below ``out`` with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def records(out: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / name / ".frames.jsonl").read_text().splitlines()]


# -- item 3: racing fingerprints ---------------------------------------------------------------------------
RUNS = {"full": (None, "0..5"), "small": (SMALL, "3..8")}  # different fingerprints, overlapping frames


def _assert_only_the_winner_is_stored(out: Path, winner: str, run_id: str, digests: dict[str, str]) -> None:
    size, frames = RUNS[winner]
    shape = (*(size or (180, 320)), 3)
    start, stop = map(int, frames.split(".."))
    wanted = list(range(start, stop))  # (frames a..b: b excluded)
    for name in RGB_HSV:
        stored = sorted(int(p.stem) for p in (out / name / "npz").iterdir())
        assert stored == wanted, (name, stored)
        assert all(load_npz(out / name / "npz" / f"{i}.npz").shape == shape for i in stored)
        assert {r["fp"] for r in records(out, name)} == {digests[name]}
        meta = json.loads((out / name / ".repr_metadata.json").read_text())
        assert meta["fingerprint_digest"] == digests[name] and meta["mixed"] is False
        assert "claims" not in meta or meta["claims"] == {}, "the finished run released its claim"
    runs = sorted((out / ".logs").glob("run_metadata_*.json"))
    assert [p.name for p in runs] == [f"run_metadata_{run_id}.json"]
    assert [p.name for p in (out / ".logs").glob("log_*")] == [f"log_{run_id}.txt"]
    checks = verify_export(out, deep=True)
    assert all(c.complete == set(wanted) and not c.bad and not c.missing for c in checks.values())


def test_two_runs_released_together_into_a_new_folder_one_proceeds(registry, sample_video, tmp_path, monkeypatch):
    """Both plan (read only) before either records its fingerprint: the claim decides, 20 times."""
    real_make_plan = vrecore.export.run.make_plan
    barrier = threading.Barrier(2)

    def plan_then_wait(*args: Any, **kwargs: Any) -> Any:
        plan = real_make_plan(*args, **kwargs)
        barrier.wait(timeout=60)  # both runs checked the folder; now both claim it
        return plan

    monkeypatch.setattr(vrecore.export.run, "make_plan", plan_then_wait)
    for repetition in range(20):
        out = tmp_path / f"out{repetition}"
        outcome: dict[str, Any] = {}

        def run(key: str, out: Path = out, outcome: dict[str, Any] = outcome) -> None:
            size, frames = RUNS[key]
            try:
                outcome[key] = run_export(graph(size), sample_video, out, frames=frames)
            except FingerprintMismatch as e:
                outcome[key] = e

        threads = [threading.Thread(target=run, args=(key,)) for key in RUNS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        refused = [k for k, v in outcome.items() if isinstance(v, FingerprintMismatch)]
        assert len(outcome) == 2 and len(refused) == 1, (repetition, outcome)
        loser = refused[0]
        winner = next(k for k in RUNS if k != loser)
        result = outcome[winner]
        assert result.ok
        digests = json.loads(result.metadata_file.read_text())["fingerprints"]
        before = tree(out)
        monkeypatch.setattr(vrecore.export.run, "make_plan", real_make_plan)
        size, frames = RUNS[loser]
        with pytest.raises(FingerprintMismatch) as later:
            run_export(graph(size), sample_video, out, frames=frames)
        assert str(outcome[loser]) == str(later.value), "refused exactly as a later run is"
        assert tree(out) == before
        _assert_only_the_winner_is_stored(out, winner, result.run_id, digests)
        monkeypatch.setattr(vrecore.export.run, "make_plan", plan_then_wait)


def _race_child(barrier: Any, out: str, video: str, key: str, results: Any) -> None:
    size, frames = RUNS[key]
    barrier.wait(timeout=60)
    try:
        r = run_export(graph(size), video, out, frames=frames)
        results.put((key, "ok", r.run_id, json.loads(r.metadata_file.read_text())["fingerprints"]))
    except FingerprintMismatch as e:
        results.put((key, "refused", str(e), None))


def test_two_processes_released_by_a_barrier_one_proceeds(sample_video, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for repetition in range(2):
        out = tmp_path / f"out{repetition}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race_child, args=(barrier, str(out), str(sample_video), key, results))
                 for key in RUNS]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert sorted(g[1] for g in got) == ["ok", "refused"], got
        winner = next(g for g in got if g[1] == "ok")
        loser = next(g for g in got if g[1] == "refused")
        assert loser[2].startswith("representation 'rgb': the frames in ") and "overwrite=true" in loser[2]
        _assert_only_the_winner_is_stored(out, winner[0], winner[2], winner[3])


def test_a_claim_of_a_dead_run_without_frames_does_not_block(registry, sample_video, tmp_path, monkeypatch):
    """A run killed after recording its fingerprint but before any frame: a run made differently may take
    the empty folder (as before the claim existed)."""
    out = tmp_path / "out"
    monkeypatch.setattr(vrecore.export.run._Export, "_loop", lambda self, plan, executor: None)
    first = run_export(graph(), sample_video, out, frames="0..3")
    monkeypatch.undo()
    meta = json.loads((out / "rgb" / ".repr_metadata.json").read_text())
    assert first.ok and not (out / "rgb" / "npz").exists() and "claims" not in meta
    meta["claims"] = {"killed-run": {"host": socket.gethostname(), "pid": _dead_pid()}}
    (out / "rgb" / ".repr_metadata.json").write_text(json.dumps(meta))
    second = run_export(graph(SMALL), sample_video, out, frames="0..3")
    assert second.ok and load_npz(out / "rgb" / "npz" / "0.npz").shape == (90, 160, 3)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- item 7: a lost or corrupt .repr_metadata.json ---------------------------------------------------------
DAMAGE = {"missing": lambda p: p.unlink(), "corrupt": lambda p: p.write_text('{"fingerprint": {"vid')}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_lost_metadata_is_reported_then_rebuilt_from_the_records(registry, sample_video, tmp_path, damage, capsys):
    out = tmp_path / "out"
    args = ["export", f"video={sample_video}", f"output_dir={out}", "frames=0..4"]
    assert vre_here(capsys, *args).returncode == 0
    meta_file = out / "hsv" / ".repr_metadata.json"
    digest = json.loads(meta_file.read_text())["fingerprint_digest"]
    DAMAGE[damage](meta_file)
    before = tree(out)

    r = vre_here(capsys, "verify", str(out), "--deep")
    assert r.returncode == 1, r.stdout + r.stderr
    line = f"vre verify: representation 'hsv': {meta_file} is {damage}"
    assert [x for x in r.stderr.splitlines() if x.startswith(line)] == [
        f"{line}; run `vre metadata {out}` to rebuild it from the frame records"], r.stderr
    assert "Traceback" not in r.stderr

    r = vre_here(capsys, *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"vre export: error: representation 'hsv': {meta_file} is {damage} but its frames are there; run "
        f"`vre metadata {out}` to rebuild it from the frame records, then export again"], r.stderr
    assert tree(out) == before, "verify and a refused run change nothing"

    r = vre_here(capsys, "metadata", str(out))
    assert r.returncode == 0, r.stderr
    meta = json.loads(meta_file.read_text())
    assert meta["fingerprint_digest"] == digest and sorted(map(int, meta["frames"])) == [0, 1, 2, 3]
    assert vre_here(capsys, "verify", str(out), "--deep").returncode == 0

    again = run_export(graph(), sample_video, out, frames="0..4")
    assert {n: (s.computed, s.skipped) for n, s in again.stats.items()} == {"rgb": (0, 4), "hsv": (0, 4)}
    assert json.loads(meta_file.read_text())["fingerprint"]["type"] == "color/hsv", "the full fingerprint is back"


def test_verify_repair_rebuilds_lost_metadata(registry, sample_video, tmp_path, capsys):
    from vrecore.cli.verify import main

    out = tmp_path / "out"
    run_export(graph(), sample_video, out, frames="0..3")
    digest = json.loads((out / "rgb" / ".repr_metadata.json").read_text())["fingerprint_digest"]
    (out / "rgb" / ".repr_metadata.json").unlink()
    frames = {k: v for k, v in tree(out).items() if "/npz/" in k}
    assert main([str(out)]) == 1
    assert "rgb (metadata missing)" in capsys.readouterr().out
    assert main([str(out), "--repair"]) == 0
    assert "vre verify: rebuilt the metadata of rgb from the frame records" in capsys.readouterr().err.splitlines()
    assert json.loads((out / "rgb" / ".repr_metadata.json").read_text())["fingerprint_digest"] == digest
    assert main([str(out)]) == 0 and {k: v for k, v in tree(out).items() if "/npz/" in k} == frames


def test_rebuilt_metadata_still_refuses_a_run_made_differently(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(), sample_video, out, frames="0..3")
    (out / "rgb" / ".repr_metadata.json").unlink()
    from vrecore.export.metadata import regenerate_metadata

    regenerate_metadata(out)
    before = tree(out)
    with pytest.raises(FingerprintMismatch, match=r"^representation 'rgb': the frames in .* were made differently "
                                                  r"\(fingerprint [0-9a-f]{16} rebuilt from the frame records"):
        run_export(graph(SMALL), sample_video, out, frames="0..3")
    assert tree(out) == before


# -- item 8: a run killed with -9 ----------------------------------------------------------------------------
def _killed_run(out: Path, video: Path) -> dict[str, Any]:
    from tests.test_export import _script

    proc = subprocess.Popen([sys.executable, "-c", _script(out, video, "0..48", 0.05)])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "slow" / "npz").glob("*.npz"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (path,) = (out / ".logs").glob("run_metadata_*.json")
    run = json.loads(path.read_text())
    assert run["status"] == "running" and run["pid"] == proc.pid and run["host"] == socket.gethostname()
    return run


def _other_runs(out: Path) -> dict[str, Path]:
    """A running run of another host, and one of this host whose process is alive: both left alone."""
    other = {"run_id": "other-host", "status": "running", "host": "elsewhere.example", "pid": _dead_pid(),
             "started": "2000-01-01T00:00:00+00:00"}
    alive = {"run_id": "alive", "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
             "started": "2000-01-01T00:00:01+00:00"}
    paths = {}
    for run in (other, alive):
        paths[run["run_id"]] = out / ".logs" / f"run_metadata_{run['run_id']}.json"
        paths[run["run_id"]].write_text(json.dumps(run))
    return paths


def test_verify_marks_a_killed_run_died(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run = _killed_run(out, sample_video)
    others = {k: p.read_bytes() for k, p in _other_runs(out).items()}
    r = vre("verify", str(out))
    assert f"vre verify: run {run['run_id']} died (its process {run['pid']} on this host is gone); recorded" \
        in r.stderr.splitlines(), r.stderr
    after = json.loads((out / ".logs" / f"run_metadata_{run['run_id']}.json").read_text())
    assert after["status"] == "died" and after["error"].startswith(f"process {run['pid']} ended")
    assert {k: (out / ".logs" / f"run_metadata_{k}.json").read_bytes() for k in others} == others


def test_a_later_run_marks_a_killed_run_died(registry, sample_video, tmp_path):
    from vrecore.testing import register_test_types

    register_test_types()
    out = tmp_path / "out"
    run = _killed_run(out, sample_video)
    others = {k: p.read_bytes() for k, p in _other_runs(out).items()}
    later = run_export(build_graph({"representations": {
        "rgb": {"type": "color/rgb"},
        "slow": {"type": "test/slow", "batch_size": 2, "parameters": {"seconds": 0.0},
                 "binary_format": "npz-compressed", "image_format": "jpg"}}}), sample_video, out, frames="0..4")
    assert later.ok
    after = json.loads((out / ".logs" / f"run_metadata_{run['run_id']}.json").read_text())
    assert after["status"] == "died" and after["pid"] == run["pid"]
    assert {k: (out / ".logs" / f"run_metadata_{k}.json").read_bytes() for k in others} == others
    assert json.loads(later.metadata_file.read_text())["status"] == "ok"
