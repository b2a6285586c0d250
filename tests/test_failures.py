"""No traceback for anything a user or the machine can cause: one line naming the thing and the fix,
exit != 0, and nothing already written lost. Signals, crashes and shared folders included."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


def vre(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def vre_here(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`vre ARGS` run by `main([...])` in this process, as `vre` runs it (no process start per call)."""
    from vrecore.cli.app import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["vre", *args], code, out, err)


def one_error_line(r: subprocess.CompletedProcess[str], command: str = "export") -> str:
    """The single `vre CMD: error:` line of a run, checking there is no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith(f"vre {command}: error: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def frame_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.npz"))}


def no_temporaries(out: Path) -> bool:
    return not [p for p in out.rglob("*") if ".tmp-" in p.name]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (needs root, as in CI): ``mount(size)`` returns its folder."""
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"mounting a tmpfs needs root: {r.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# -- the file system -----------------------------------------------------------------------------------
def test_read_only_output_folder(sample_video, tmpfs):
    disk = tmpfs("8m")
    out = disk / "out"
    assert vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..4").returncode == 0
    before = frame_files(out)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..8")
    assert r.returncode != 0
    assert f"output_dir '{out}' is not writable (Read-only file system); choose a writable output_dir" in one_error_line(r)
    assert frame_files(out) == before


def test_disk_full_at_start(sample_video, tmpfs):
    disk = tmpfs("256k")
    (disk / "filler").write_bytes(b"\0" * (250 * 1024))
    out = disk / "out"
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..4")
    assert r.returncode != 0
    assert "no space left on the device; free space (or choose another output_dir) and run again" in one_error_line(r)
    assert no_temporaries(disk)


def test_disk_full_mid_run_keeps_the_frames_done(sample_video, tmpfs):
    from vrecore.cli.verify import verify_export

    out = tmpfs("1m") / "out"
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "pipeline=rgb_hsv", "representations.hsv.export=false",
            "frames=0..20")
    assert r.returncode == 1
    line = one_error_line(r)
    assert f"writing {out}/rgb: no space left on the device" in line and "the frames written so far are kept" in line
    assert no_temporaries(out)
    done = verify_export(out)["rgb"]
    assert 2 <= len(done.complete) < 20 and not done.corrupt, "the frames done so far stay valid"


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("override,message", [
    ("+unknownkey=1", "unknown key 'unknownkey' for `vre export`; valid keys: video, videos, output_dir,"),
    ("device=cuda", "device 'cuda' is not available: this machine has no CUDA GPU that torch can use; use device=cpu"),
    ("device=cuda:7", "device 'cuda:7' is not available"),
    ("device=gpu", "device 'gpu' is not a device torch knows; use cpu, cuda, cuda:N or mps"),
    ("frames=0..10:0", "frames=0..10:0: the step must be 1 or more"),
    ("frames=[]", "frames=[] selects no frames"),
    ("frames=''", "frames='' selects nothing"),
    ("frames=[3,-1,99]", "frames=[3,-1,99] has entries out of range (-1, 99): the video has 48 frames (valid: 0..48, end "
                         "exclusive)"),
])
def test_bad_input_is_one_line(sample_video, tmp_path, override, message, capsys):
    pytest.importorskip("torch") if override.startswith("device") else None
    out = tmp_path / "out"
    r = vre_here(capsys, "export", f"video={sample_video}", f"output_dir={out}", override)
    assert r.returncode == 2
    assert message in one_error_line(r)
    assert not out.exists() or not list(out.rglob("*.npz"))


def _image_folder(tmp_path: Path, sample_video: Path, n: int = 6) -> Path:
    from PIL import Image

    from vrecore.frames.video import open_video

    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(open_video(sample_video).get_batch(range(n))):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


def test_a_corrupt_first_image_is_named_then_skipped_on_request(sample_video, tmp_path, capsys):
    folder = _image_folder(tmp_path, sample_video)
    (folder / "0000.png").write_bytes(b"\x89PNG broken")
    stop = vre_here(capsys, "export", f"video={folder}", f"output_dir={tmp_path / 'a'}")
    assert stop.returncode == 1
    assert f"image '{folder}/0000.png' (frame 0) cannot be read" in one_error_line(stop)
    skip = vre_here(capsys, "export", f"video={folder}", f"output_dir={tmp_path / 'b'}", "exception_mode=skip")
    assert skip.returncode == 0, skip.stderr
    assert "vre export: warning: 2 frame(s) failed and were skipped (exception_mode=skip)" in skip.stderr
    assert sorted(p.name for p in (tmp_path / "b" / "hsv" / "npz").iterdir()) == [f"{i}.npz" for i in range(1, 6)]


def test_metrics_csv_in_a_missing_folder(sample_video, tmp_path):
    r = vre("stream", f"source={sample_video}", "output=jsonl:-", "realtime=false", "max_frames=2",
            f"metrics_csv={tmp_path}/nope/m.csv")
    assert r.returncode == 2
    assert f"metrics_csv={tmp_path}/nope/m.csv: the folder {tmp_path}/nope does not exist" in one_error_line(r, "stream")


def _tiny_video(path: Path, width: int, height: int, frames: int = 6) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((height, width, 3), 40 * i, np.uint8),
                                                         format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_a_2x2_video_exports(tmp_path):
    video = _tiny_video(tmp_path / "tiny.mp4", 2, 2)
    r = vre("export", f"video={video}", f"output_dir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr
    assert load_npz(tmp_path / "out" / "rgb" / "npz" / "5.npz").shape == (2, 2, 3)
    assert load_npz(tmp_path / "out" / "hsv" / "npz" / "5.npz").shape == (2, 2, 3)


def _lying_video(tmp_path: Path) -> Path:
    """An mp4 whose header (moov first) promises 48 frames while its data stops halfway."""
    import av

    full = tmp_path / "full.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        for _ in range(48):
            for p in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8),
                                                         format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = full.read_bytes()
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(data[: len(data) // 2])
    with av.open(str(lying)) as c:
        assert c.streams.video[0].frames == 48
    return lying


def test_a_video_that_lies_about_its_length(tmp_path, capsys):
    video = _lying_video(tmp_path)
    r = vre_here(capsys, "export", f"video={video}", f"output_dir={tmp_path / 'a'}")
    assert r.returncode == 1
    line = one_error_line(r)
    assert f"video '{video}'" in line and "could not be decoded" in line and "exception_mode=skip" in line
    kept = sorted(int(p.stem) for p in (tmp_path / "a" / "rgb" / "npz").glob("*.npz"))
    assert kept == list(range(len(kept))) and kept, "the frames before the damage are exported and kept"
    skip = vre_here(capsys, "export", f"video={video}", f"output_dir={tmp_path / 'b'}", "exception_mode=skip")
    assert skip.returncode == 0 and "failed and were skipped" in skip.stderr


def test_skip_covers_a_set_up_that_fails(registry, sample_video, tmp_path):
    reps = {"rgb": {"type": "color/rgb"}, "b": {"type": "test/broken-setup"},
            "s": {"type": "test/scaled", "dependencies": ["b"]}}
    r = run_export(build_graph({"representations": reps}), sample_video, tmp_path / "o", frames="0..4",
                   exception_mode="skip")
    assert r.ok and r.stats["rgb"].computed == 4
    assert r.stats["b"].failed == 4 and "set-up failed: RuntimeError: test: the model cannot be loaded" in r.stats["b"].errors[0]
    assert r.stats["s"].failed == 4 and r.stats["s"].errors == ["frames 0..4: dependency 'b' failed"]
    from vrecore.errors import ExportError

    with pytest.raises(ExportError, match=r"representation 'b' \(test/broken-setup\) set-up failed: RuntimeError"):
        run_export(build_graph({"representations": reps}), sample_video, tmp_path / "o2", frames="0..4")


# -- signals and crashes -------------------------------------------------------------------------------
def _slow_export(out: Path, video: Path, frames: str, seconds: float, slow_from: int = 0) -> subprocess.Popen[str]:
    from vrecore.testing import write_test_types_distribution

    site = write_test_types_distribution(out.parent / "site")
    conf = out.parent / "conf" / "pipeline"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "slow.yaml").write_text("# @package _global_\nrepresentations:\n  rgb: {type: color/rgb}\n"
                                    f"  slow: {{type: test/slow, parameters: {{seconds: {seconds}, slow_from: {slow_from}}}, "
                                    "batch_size: 2, binary_format: npz-compressed, image_format: jpg}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "vrecore.cli.app", "export", "--config-dir", str(conf.parent),
                             "pipeline=slow", f"video={video}", f"output_dir={out}", f"frames={frames}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_frames(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and len(list((out / "slow" / "npz").glob("*.npz"))) < n:
        time.sleep(0.02)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_cleanly(sample_video, tmp_path, signum, code):
    out = tmp_path / "out"
    proc = _slow_export(out, sample_video, "0..48", 0.1)
    _wait_for_frames(out, 4)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and f"interrupted by {signal.Signals(signum).name}" in stderr
    run = json.loads(next((out / ".logs").glob("run_metadata_*.json")).read_text())
    assert run["status"] == "interrupted" and run["signal"] == signum
    written = sorted(int(p.stem) for p in (out / "slow" / "npz").glob("*.npz"))
    assert 4 <= len(written) < 48 and run["representations"]["slow"]["computed"] == len(written)
    assert no_temporaries(out)
    r = run_export_again(out, sample_video)
    assert r["slow"] == (48 - len(written), len(written))


def run_export_again(out: Path, video: Path) -> dict[str, tuple[int, int]]:
    from vrecore.testing import register_test_types

    register_test_types()
    graph = build_graph({"representations": {
        "rgb": {"type": "color/rgb"},
        "slow": {"type": "test/slow", "parameters": {"seconds": 0.0}, "batch_size": 2,
                 "binary_format": "npz-compressed", "image_format": "jpg"}}})
    r = run_export(graph, video, out, frames="0..48")
    from vrecore.cli.verify import verify_export

    checks = verify_export(out, deep=True)
    assert all(c.complete == set(range(48)) and not c.bad and not c.missing for c in checks.values()), checks
    return {name: (s.computed, s.skipped) for name, s in r.stats.items()}


def test_a_second_ctrl_c_exits_at_once(sample_video, tmp_path):
    out = tmp_path / "out"
    proc = _slow_export(out, sample_video, "0..48", 600.0, slow_from=2)  # frames 0-1 at once, then a 600 s batch
    try:
        _wait_for_frames(out, 2)
        proc.send_signal(signal.SIGINT)  # the first waits for the batch in flight
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)  # a hang guard: waiting for the batch in flight would take 600 s
    finally:
        proc.kill()
    assert proc.returncode == 130
    for p in (out / "slow" / "npz").glob("*.npz"):
        load_npz(p)  # no partial file under a final name
    run_export_again(out, sample_video)


@pytest.mark.slow(seconds=15)
def test_kill_9_at_random_moments(sample_video, tmp_path):
    """12 runs killed at random moments (start-up, planning, computing, writing, finishing), each followed by the
    next; then one run completes everything."""
    out = tmp_path / "out"
    rng = random.Random(1234)
    for _ in range(12):
        proc = _slow_export(out, sample_video, "0..48", 0.02)
        time.sleep(rng.uniform(0.3, 2.0))
        proc.kill()
        proc.wait()
    counts = run_export_again(out, sample_video)
    assert sum(counts["slow"]) == 48
    for name in ("rgb", "slow"):
        assert sorted(int(p.stem) for p in (out / name / "npz").iterdir()) == list(range(48)), "each frame once"


def test_temporaries_of_other_hosts_are_never_reaped(registry, sample_video, tmp_path):
    from vrecore.store.files import HOST

    out = tmp_path / "out"
    run_export(build_graph({"representations": RGB_HSV}), sample_video, out, frames="0..2")
    other = out / "rgb" / "npz" / "7.npz.tmp-otherhost-1-0123abcd"
    dead = out / "rgb" / "npz" / f"8.npz.tmp-{HOST}-999999-0123abcd"
    other.write_bytes(b"another machine is writing this")
    dead.write_bytes(b"left by a killed process")
    run_export(build_graph({"representations": RGB_HSV}), sample_video, out, frames="0..3")
    assert other.exists() and not dead.exists()


def test_durable_writes(registry, sample_video, tmp_path):
    r = run_export(build_graph({"representations": RGB_HSV}), sample_video, tmp_path / "o", frames="0..3",
                   durable=True)
    assert r.ok and json.loads(r.metadata_file.read_text())["durable"] is True
    from vrecore.cli.verify import verify_export

    assert all(c.complete == {0, 1, 2} for c in verify_export(tmp_path / "o", deep=True).values())
