"""Issue 19 (items 6, 10, 11 of the CLI): user mistakes are one line, exit 2, and write nothing; worker processes
are capped by the work and end with their parent."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vrecore.cli.app import main

VIDEO = Path(__file__).parents[1] / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"


def tree_digest(root: Path) -> str:
    """Names, kinds and bytes of everything below ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"d" if p.is_dir() else p.read_bytes())
    return h.hexdigest()


def one_error(err: str, command: str = "export") -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"vre {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder with a sentinel tree and a plain file; returns it after chdir."""
    (tmp_path / "sentinel" / "sub").mkdir(parents=True)
    (tmp_path / "sentinel" / "sub" / "keep.txt").write_text("keep")
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    return tmp_path


EXPORT_MISTAKES = {
    "placement-word": (["placement=nonsense"], "placement must map representations"),
    "placement-list": (["placement=[cpu]"], "placement must map representations"),
    "placement-device": (["placement={hsv:nodevice}"], "device 'nodevice'"),
    "url": (["output_dir=nosuch://bucket/x"], "output_dir 'nosuch://bucket/x' is a URL"),  # s3://: the zarr store
    "file": (["output_dir=a_file"], "output_dir 'a_file' is a file"),
    "huge-size": (["output_size=[100000,100000]"], "output_size"),
    "device": (["device=cuda:99"], "device 'cuda:99'"),
    "ray-missing": (["runner=ray"], "runner=ray needs Ray"),
    "secret": (["device=${oc.env:VRE_TEST_SECRET}"], "${oc.env:VRE_TEST_SECRET}"),
    "secret-type": (["workers=${oc.env:VRE_TEST_SECRET}"], "${oc.env:VRE_TEST_SECRET}"),
    "canny-aperture": (["+representations={e: {type: edges/canny, dependencies: [rgb], "
                        "parameters: {aperture_size: 4}}}"], "'aperture_size' must be in"),
    "canny-type": (["+representations={e: {type: edges/canny, dependencies: [rgb], "
                    "parameters: {l2_gradient: 3}}}"], "'l2_gradient' must be"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_MISTAKES))
def test_export_mistakes_are_one_line_exit_2_and_write_nothing(case, sandbox, capsys, monkeypatch):
    args, expected = EXPORT_MISTAKES[case]
    monkeypatch.setenv("VRE_TEST_SECRET", "hunter2secret")
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    before = tree_digest(sandbox)
    code = main(["export", f"video={VIDEO}", "output_dir=out", "frames=0..3", *args])
    err = capsys.readouterr().err
    line = one_error(err)
    assert code == 2, err
    assert expected in line, line
    assert "hunter2secret" not in err
    assert "(<" not in line and "Attribute(" not in line, "no raw attrs tuple"
    assert tree_digest(sandbox) == before, "nothing written, no folder made"


def test_output_size_within_bounds_still_builds(sandbox, capsys):
    code = main(["export", f"video={VIDEO}", "output_dir=out", "frames=0..1", "output_size=[64,96]"])
    assert code == 0, capsys.readouterr().err
    assert (sandbox / "out" / "hsv" / "npz" / "0.npz").is_file()


@pytest.mark.parametrize("command", ["verify", "read", "collage", "video", "report", "metadata", "pack"])
def test_stored_export_commands_refuse_a_url(command, sandbox, capsys):
    extra = ["--to", "zarr", "-o", "packed"] if command == "pack" else []
    before = tree_digest(sandbox)
    code = main([command, "nosuch://bucket/x", *extra])  # (s3:// is the zarr store's: verify and read open it)
    line = one_error(capsys.readouterr().err, command)
    assert code == 2
    assert "'nosuch://bucket/x' is a URL" in line, line
    assert tree_digest(sandbox) == before


def test_pack_refuses_a_url_destination(sandbox, capsys):
    before = tree_digest(sandbox)
    code = main(["pack", "sentinel", "--to", "zarr", "-o", "gs://bucket/packed"])
    line = one_error(capsys.readouterr().err, "pack")
    assert code == 2 and "'gs://bucket/packed' is a URL" in line, line
    assert tree_digest(sandbox) == before


def test_dataset_refuses_a_url(tmp_path):
    from vrecore.data import MultiTaskDataset
    from vrecore.errors import VreError

    with pytest.raises(VreError, match="is a URL"):
        MultiTaskDataset("nosuch://bucket/x", tasks=["rgb"])
    assert not Path("nosuch:").exists()


SEED_MISTAKES = {
    "self": "default_learned_parameters: {device: '${default_learned_parameters.device}'}\n",
    "cycle": "default_compute_parameters: {batch_size: '${batch_size}'}\n",
    "hydra": "default_learned_parameters: {device: '${hydra:runtime.cwd}'}\n",
}


@pytest.mark.parametrize("case", sorted(SEED_MISTAKES))
def test_seed_config_interpolation_mistakes_are_one_line(case, sandbox, capsys):
    cfg = sandbox / "seed.yaml"
    cfg.write_text(SEED_MISTAKES[case] + "representations:\n  rgb: {type: color/rgb, dependencies: [], parameters: {}}\n")
    before = tree_digest(sandbox)
    code = main(["export", "--seed-config", str(cfg), f"video={VIDEO}", "output_dir=out", "frames=0..2"])
    line = one_error(capsys.readouterr().err)
    assert code == 2
    assert "interpolation" in line and "${" in line, line
    assert tree_digest(sandbox) == before


# -- workers ---------------------------------------------------------------------------------------------------------
def _slow_export(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    from vrecore.testing import write_test_types_distribution

    site = write_test_types_distribution(tmp_path / "site")
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True)
    (conf / "slow.yaml").write_text("# @package _global_\nrepresentations:\n"
                                    "  slow: {type: test/slow, parameters: {seconds: 3}, batch_size: 1}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "vrecore.cli.app", "export", "--config-dir", str(conf.parent),
                             "pipeline=slow", f"video={VIDEO}", f"output_dir={tmp_path / 'out'}", "batch_size=1",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat, cmdline = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_their_parent_is_killed(tmp_path):
    proc = _slow_export(tmp_path, "workers=2", "frames=0..44")
    try:
        deadline = time.monotonic() + 90  # hang guard
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2, proc.communicate()[1]
        while not list((tmp_path / "out" / "slow").glob("*/*.npz")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the workers are computing (each frame sleeps 3 s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # not communicate(): the workers hold its stderr open while they live
        deadline = time.monotonic() + 30  # hang guard: the frames left take 60 s, one in flight 3 s
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [w for w in workers if _alive(w)]
    finally:
        for w in _children(proc.pid) + locals().get("workers", []):
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    proc.stdout.close()
    proc.stderr.close()
    assert survivors == [], "worker processes outlived their parent"


def test_workers_are_capped_by_the_work(sample_video, tmp_path):
    from vrecore.testing import write_test_types_distribution  # noqa: F401 (the subprocess needs test types)

    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", f"video={sample_video}",
                        f"output_dir={tmp_path / 'out'}", "frames=0..8", "batch_size=4", "workers=1000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "workers=1000" in line]
    assert len(warnings) == 1 and warnings[0].startswith("vre export: warning: "), r.stderr
    assert "2 worker" in warnings[0], warnings[0]
    assert len(list((tmp_path / "out" / "hsv" / "npz").glob("*.npz"))) == 8
