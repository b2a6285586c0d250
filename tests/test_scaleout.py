"""Scale-out: worker processes (Strategy 1), representation groups on devices (Strategy 2), both at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vrecore.export.run import WorkerFailed, run_export
from vrecore.graph.build import build_graph

REPS = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
        "g": {"type": "test/grey", "output_dtype": "float16"}, "s": {"type": "test/scaled", "dependencies": ["g"]}}


def graph(reps=None, **defaults):
    return build_graph({"representations": reps or REPS, "batch_size": 4, **defaults})


def frames_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.npz"))}


def test_two_workers_write_exactly_the_files_of_one(registry, sample_video, tmp_path):
    one = run_export(graph(), sample_video, tmp_path / "one")
    two = run_export(graph(), sample_video, tmp_path / "two", workers=2)
    assert one.ok and two.ok
    assert frames_of(tmp_path / "one") == frames_of(tmp_path / "two") and len(frames_of(tmp_path / "one")) == 4 * 48
    run = json.loads(two.metadata_file.read_text())
    workers = run["workers"]
    assert [w["index"] for w in workers] == [0, 1] and all(w["status"] == "finished" for w in workers)
    # How the chunks fall between the workers is the scheduler's business; every frame is done exactly once.
    assert sum(w["frames"] for w in workers) == 48
    for name in REPS:
        records = [json.loads(line)["frame"] for line in (tmp_path / "two" / name / ".frames.jsonl").read_text()
                   .splitlines()]
        assert sorted(records) == list(range(48)), f"{name}: each frame computed and written once"
    assert two.stats["hsv"].computed == 48 and two.stats["s"].seconds_per_frame is not None
    again = run_export(graph(), sample_video, tmp_path / "two", workers=2)
    assert again.stats["hsv"].skipped == 48 and json.loads(again.metadata_file.read_text())["workers"] is None


def test_a_re_run_spreads_only_the_missing_frames(registry, sample_video, tmp_path):
    run_export(graph(), sample_video, tmp_path / "o", frames="0..40")
    r = run_export(graph(), sample_video, tmp_path / "o", workers=2)
    workers = json.loads(r.metadata_file.read_text())["workers"]
    assert sum(w["frames"] for w in workers) == 8 and r.stats["rgb"].computed == 8


def test_placement_with_a_cross_device_dependency_computes_each_frame_once(registry, sample_video, tmp_path):
    plain = run_export(graph(), sample_video, tmp_path / "plain", frames="0..24")
    placed = run_export(graph(), sample_video, tmp_path / "placed", frames="0..24",
                        placement={"s": "cpu:1", "hsv": "cpu:1", "*": "cpu"})
    assert plain.ok and placed.ok
    assert frames_of(tmp_path / "plain") == frames_of(tmp_path / "placed")
    for name in REPS:
        records = [json.loads(line)["frame"] for line in (tmp_path / "placed" / name / ".frames.jsonl").read_text()
                   .splitlines()]
        assert sorted(records) == list(range(24)), f"{name}: each frame computed and written once"
    workers = json.loads(placed.metadata_file.read_text())["workers"]
    assert sorted((w["group"], w["device"]) for w in workers) == [("cpu", "cpu"), ("cpu:1", "cpu:1")]
    both = run_export(graph(), sample_video, tmp_path / "both", frames="0..24", workers=2,
                      placement={"s": "cpu:1", "hsv": "cpu:1", "*": "cpu"})
    assert len(json.loads(both.metadata_file.read_text())["workers"]) == 4
    assert frames_of(tmp_path / "both") == frames_of(tmp_path / "plain")


def test_placement_mistakes_are_one_line(registry, sample_video, tmp_path):
    from vrecore.errors import ConfigError

    with pytest.raises(ConfigError, match=r"placement names nope, which is not in the graph"):
        run_export(graph(), sample_video, tmp_path / "o", placement={"nope": "cpu"})
    unstored = {**REPS, "g": {**REPS["g"], "export": False}}
    with pytest.raises(ConfigError, match=r"representation 's' on cpu:1 depends on 'g' on cpu, which is not stored"):
        run_export(graph(unstored), sample_video, tmp_path / "o", placement={"s": "cpu:1"})


def test_a_failure_in_a_worker_stops_the_run(registry, sample_video, tmp_path):
    reps = {"rgb": {"type": "color/rgb"}, "f": {"type": "test/fail", "parameters": {"frames": [30]}}}
    with pytest.raises(WorkerFailed, match=r"worker \d: representation 'f' \(test/fail\) failed on frames? 2[89]"):
        run_export(graph(reps), sample_video, tmp_path / "o", workers=2)
    skipped = run_export(graph(reps), sample_video, tmp_path / "p", workers=2, exception_mode="skip")
    assert skipped.ok and skipped.stats["f"].failed == 4 and skipped.stats["rgb"].computed == 48


# -- processes killed or interrupted ---------------------------------------------------------------------
def _export_cli(out: Path, video: Path, *args: str, seconds: float = 0.25) -> subprocess.Popen[str]:
    from vrecore.testing import write_test_types_distribution

    site = write_test_types_distribution(out.parent / "site")
    conf = out.parent / "conf" / "pipeline"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "slow.yaml").write_text("# @package _global_\nrepresentations:\n  rgb: {type: color/rgb}\n"
                                    f"  slow: {{type: test/slow, parameters: {{seconds: {seconds}}}, batch_size: 2}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "vrecore.cli.app", "export", "--config-dir", str(conf.parent),
                             "pipeline=slow", f"video={video}", f"output_dir={out}", "batch_size=2", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _wait(out: Path, n: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and len(list((out / "slow" / "npz").glob("*.npz"))) < n:
        time.sleep(0.05)


def _complete_again(out: Path, video: Path) -> None:
    from vrecore.cli.verify import verify_export
    from vrecore.testing import register_test_types

    register_test_types()
    reps = {"rgb": {"type": "color/rgb"}, "slow": {"type": "test/slow", "parameters": {"seconds": 0.0},
                                                   "batch_size": 2}}
    r = run_export(build_graph({"representations": reps, "batch_size": 2}), video, out)
    assert r.ok
    checks = verify_export(out, deep=True)
    assert all(c.complete == set(range(48)) and not c.bad and not c.missing for c in checks.values())
    for name in ("rgb", "slow"):
        assert sorted(int(p.stem) for p in (out / name / "npz").iterdir()) == list(range(48)), "each frame once"


@pytest.mark.slow(seconds=8)
def test_a_killed_worker_is_named_and_nothing_else_is_lost(sample_video, tmp_path):
    out = tmp_path / "out"
    proc = _export_cli(out, sample_video, "workers=2")
    _wait(out, 6)
    victims = _workers_of(proc.pid)
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    error = [line for line in stderr.splitlines() if line.startswith("vre export: error: ")]
    assert len(error) == 1 and f"(pid {victims[0]}, cpu) died (killed by SIGKILL)" in error[0], stderr
    assert "handed to another worker" in error[0] or "no task in flight" in error[0]
    written = sorted(int(p.stem) for p in (out / "slow" / "npz").iterdir())
    assert written == list(range(48)), "the other worker finished the dead one's chunk and the rest"
    _complete_again(out, sample_video)


def test_ctrl_c_stops_every_worker(sample_video, tmp_path):
    out = tmp_path / "out"
    proc = _export_cli(out, sample_video, "workers=2")
    _wait(out, 6)
    victims = _workers_of(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted by SIGINT" in stderr
    time.sleep(0.5)
    assert all(not Path(f"/proc/{pid}").exists() for pid in victims), "every worker ended"
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert 6 <= len(list((out / "slow" / "npz").iterdir())) < 48
    _complete_again(out, sample_video)


def test_workers_need_a_path(registry, sample_video, tmp_path):
    from vrecore.errors import ConfigError
    from vrecore.frames.video import open_video

    with pytest.raises(ConfigError, match=r"workers must be a positive integer"):
        run_export(graph(), sample_video, tmp_path / "o", workers=0)
    with open_video(sample_video) as source:
        source.path = Path("/nonexistent/clip.mp4")
        with pytest.raises(ConfigError, match=r"workers > 1 needs a video file or an image folder"):
            run_export(graph(), source, tmp_path / "o", workers=2)
