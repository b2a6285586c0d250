"""The `vre` command: Hydra export with overrides, multirun, user pipelines, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def vre(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=180)


@pytest.fixture
def in_process(monkeypatch, capsys):
    """`vre ARGS` run by `main([...])` in this process (for mistakes caught before any work: no process start
    per case): returns (exit code, stderr); `env` is set for the call, with the plugins looked up again."""
    from vrecore.cli.app import main
    from vrecore.graph.registry import reset_registry

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        reset_registry()
        capsys.readouterr()
        code = main(list(args))
        return code, capsys.readouterr().err

    yield run
    monkeypatch.undo()
    reset_registry()


def test_export_with_overrides(sample_video, tmp_path):
    out = tmp_path / "out"
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "pipeline=rgb_hsv", "frames=0..6",
            "batch_size=3", "representations.hsv.batch_size=2", "binary_format=npz-compressed", "image_format=jpg",
            "progress=false")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "hsv" / "jpg").iterdir()) == [f"{i}.jpg" for i in range(6)]
    run = json.loads(next((out / ".logs").glob("run_metadata_*.json")).read_text())
    assert run["graph"]["representations"]["hsv"]["batch_size"] == 2
    assert run["graph"]["representations"]["rgb"]["batch_size"] == 3
    assert run["config"]["binary_format"] == "npz-compressed" and run["config"]["frames"] == "0..6"
    assert "hsv" in r.stderr and "ok in" in r.stderr
    again = vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..6", "binary_format=npz-compressed",
                "image_format=jpg")
    assert again.returncode == 0, again.stderr
    rows = {line.split()[0]: line.split()[1:4] for line in again.stderr.splitlines() if line.startswith(("rgb ", "hsv "))}
    assert rows == {"rgb": ["0", "6", "0"], "hsv": ["0", "6", "0"]}, again.stderr  # computed, skipped, failed


def test_multirun_over_two_videos(sample_video, tmp_path):
    second = tmp_path / "second.mp4"
    second.write_bytes(sample_video.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    r = vre("export", "-m", f"video={sample_video},{second}", f"output_root={tmp_path}/exports", "frames=0..2",
            cwd=work)
    assert r.returncode == 0, r.stderr
    for stem in ("sample", "second"):
        assert sorted(p.name for p in (tmp_path / "exports" / stem / "hsv" / "npz").iterdir()) == ["0.npz", "1.npz"]
    assert os.listdir(work) == [], "a multirun writes nothing in the working folder (Hydra's multirun.yaml included)"
    assert (tmp_path / "exports" / ".multirun" / "multirun.yaml").is_file()


def test_a_multirun_without_output_root_leaves_no_file_behind(sample_video, tmp_path, in_process, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "multirun.yaml").write_text("mine\n")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, err = in_process("export", "-m", f"video={sample_video}", f"output_dir={tmp_path}/a,{tmp_path}/b",
                           "frames=0..1", "pipeline=rgb_hsv")
    assert code == 0, err
    assert os.listdir(work) == ["multirun.yaml"] and (work / "multirun.yaml").read_text() == "mine\n"
    assert os.listdir(tmp_path / "tmp") == []


def test_user_pipeline_from_config_dir(sample_video, tmp_path):
    conf = tmp_path / "my_conf" / "pipeline"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("# @package _global_\nrepresentations:\n  frames: {type: color/rgb}\n"
                                    "  colours: {type: color/hsv, dependencies: {rgb: frames}}\n")
    out = tmp_path / "out"
    r = vre("export", "--config-dir", str(tmp_path / "my_conf"), "pipeline=mine", f"video={sample_video}",
            f"output_dir={out}", "frames=0..2")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == [".logs", "colours", "frames"]


def test_default_video_is_the_embedded_sample(tmp_path):
    r = vre("export", f"output_dir={tmp_path}/demo", "frames=0..2", env={"VRE_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert "using the embedded sample clip" in r.stderr and (tmp_path / "cache" / "sample_v1.mp4").exists()
    assert (tmp_path / "demo" / "hsv" / "npz" / "1.npz").exists()


def write_pipeline(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "p.yaml").write_text("# @package _global_\nrepresentations:\n" + body)
    return tmp_path / "conf"


@pytest.mark.parametrize("body,overrides,message", [
    ("  a: {type: color/hsv, dependencies: [b]}\n  b: {type: color/hsv, dependencies: [a]}\n", [],
     "the representations form a cycle: a -> b -> a; remove one of these dependencies"),
    ("  hsv: {type: color/hsv, dependencies: [rgb]}\n", [],
     "representation 'hsv' depends on 'rgb', which is not in the config"),
    ("  d: {type: depth/dpt}\n", [],
     "representation 'd' has unknown type 'depth/dpt'; 'depth/' types: vre-depth provides them but is "
     "disabled (VRE_DISABLED_PLUGINS); enable it"),
    ("  rgb: {type: color/rgb, parameters: {gamma: 2}}\n", [],
     "representation 'rgb' (color/rgb) has unknown parameter(s) gamma; accepted: none"),
    ("  '../evil': {type: color/rgb}\n", [], "representation name '../evil' is not safe as a folder name"),
    ("  rgb: {type: color/rgb}\n", ["frames=0..999"], "frames=0..999 is out of range: the video has 48 frames"),
    ("  rgb: {type: color/rgb}\n", ["binary_format=zip"], "binary_format 'zip' is not one of none, npz, npz-compressed"),
    ("  rgb: {type: color/rgb}\n", ["video=missing.mp4"], "video 'missing.mp4' does not exist; check the path"),
    ("  rgb: {type: color/rgb}\n", ["exception_mode=ignore"], "exception_mode 'ignore' is not one of stop, skip"),
])
def test_user_mistakes_are_one_line(sample_video, tmp_path, body, overrides, message, in_process):
    conf = write_pipeline(tmp_path, body)
    out = tmp_path / "out"
    code, err = in_process("export", "--config-dir", str(conf), "pipeline=p", f"video={sample_video}",
                           f"output_dir={out}", *overrides, env={"VRE_DISABLED_PLUGINS": "vre-depth"})
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vre export: error: ") and message in lines[0], err
    assert "Traceback" not in err


def test_failed_run_exits_nonzero_and_keeps_outputs(sample_video, tmp_path):
    from vrecore.testing import write_test_types_distribution

    site = write_test_types_distribution(tmp_path / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    conf = write_pipeline(tmp_path, "  rgb: {type: color/rgb}\n")
    out = tmp_path / "out"
    assert vre("export", "--config-dir", str(conf), "pipeline=p", f"video={sample_video}", f"output_dir={out}",
               "frames=0..4", env=env).returncode == 0
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "rgb" / "npz").iterdir()}
    conf = write_pipeline(tmp_path, "  rgb: {type: color/rgb}\n  f: {type: test/fail, parameters: {frames: [6]}}\n")
    r = vre("export", "--config-dir", str(conf), "pipeline=p", f"video={sample_video}", f"output_dir={out}",
            "frames=0..8", "batch_size=2", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("vre export: error: representation 'f' (test/fail) failed on frames 6..8: RuntimeError: test failure "
            "on frames [6]") in r.stderr
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "rgb" / "npz").iterdir()
            if int(p.stem) < 4} == before
    assert sorted(int(p.stem) for p in (out / "f" / "npz").iterdir()) == [0, 1, 2, 3, 4, 5]


def test_unknown_command_and_help():
    r = vre("frobnicate")
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr
    assert vre("--help").returncode == 0


def test_metadata_command(sample_video, tmp_path):
    out = tmp_path / "out"
    assert vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..3").returncode == 0
    (out / "hsv" / ".repr_metadata.json").unlink()
    r = vre("metadata", str(out))
    assert r.returncode == 0 and "hsv: 3 frames" in r.stdout
    assert (out / "hsv" / ".repr_metadata.json").exists()
    bad = vre("metadata", str(tmp_path / "nope"))
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


@pytest.mark.parametrize("override,message", [
    ("pipeline=nope", "Could not find 'pipeline/nope'; Available options in 'pipeline': "),
    ("batchsize=3", "unknown key 'batchsize'; did you mean 'batch_size'?"),
    ("representations.hsv.typo=1", "unknown key 'representations.hsv.typo'; did you mean 'representations.hsv.type'?"),
    ("frames=[1,", "no viable alternative at input '[1,'; See https://hydra.cc"),
])
def test_hydra_mistakes_are_one_line_too(sample_video, tmp_path, override, message, in_process):
    code, err = in_process("export", f"video={sample_video}", f"output_dir={tmp_path}/out", override)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vre export: error: ") and message in lines[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command,override,line", [
    ("export", "outptu_dir=x", "vre export: error: unknown key 'outptu_dir'; did you mean 'output_dir'?"),
    ("export", "+outptu_dir=x", "vre export: error: unknown key 'outptu_dir'; did you mean 'output_dir'?"),
    ("stream", "sourc=x", "vre stream: error: unknown key 'sourc'; did you mean 'source'?"),
    ("export", "representations.hsv.batchsize=3",
     "vre export: error: unknown key 'representations.hsv.batchsize'; did you mean 'representations.hsv.batch_size'?"),
])
def test_a_key_typo_names_the_nearest_key_not_hydras_plus_advice(tmp_path, command, override, line):
    r = vre(command, override, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == line, r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["export", "stream"])
def test_a_key_like_no_other_lists_the_valid_keys(tmp_path, command):
    r = vre(command, "zzz=1", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "+zzz" not in lines[0], r.stderr
    assert lines[0].startswith(f"vre {command}: error: unknown key 'zzz' for `vre {command}`; valid keys: ")
    assert ", batch_size," in lines[0] and ("source" in lines[0]) == (command == "stream")


def test_hydra_help_still_prints():
    r = vre("export", "--help")
    assert r.returncode == 0 and "pipeline" in r.stdout


def test_an_in_process_export_leaves_every_logger_as_it_found_it(sample_video, tmp_path, caplog):
    """Hydra's logging set-up disables loggers made before it and raises the root level: a script or test that
    calls `vre export` in-process still hears its own loggers (and plugins') afterwards."""
    import logging

    from vrecore.cli import main

    mine = logging.getLogger("a_plugin_of_mine.module")
    assert main(["export", f"video={sample_video}", f"output_dir={tmp_path / 'o'}", "frames=0..1"]) == 0
    with caplog.at_level(logging.WARNING):
        mine.warning("still heard")
    assert "still heard" in caplog.text and not mine.disabled


def test_an_in_process_run_leaves_the_callers_loggers_as_they_were(sample_video, tmp_path, capsys):
    """Hydra's logging set-up disables every logger made before it: after `main([...])` in a program (or in a test
    beside a plugin's), that program's and the plugins' loggers still log, and a logger it had disabled stays off."""
    import logging

    from vrecore.cli.app import main

    mine, plugin, off = (logging.getLogger(n) for n in ("a_callers_module", "vre_semantic.a_module", "a_silenced_one"))
    off.disabled = True
    assert main(["export", f"video={sample_video}", f"output_dir={tmp_path / 'out'}", "frames=0..1"]) == 0
    assert (mine.disabled, plugin.disabled, off.disabled) == (False, False, True)
    off.disabled = False


def test_a_pipeline_file_without_its_package_line_is_named_with_the_fix(sample_video, tmp_path, in_process):
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True)
    (conf / "bare.yaml").write_text("representations:\n  rgb: {type: color/rgb}\n")
    code, err = in_process("export", "--config-dir", str(tmp_path / "conf"), "pipeline=bare", f"video={sample_video}",
                           f"output_dir={tmp_path / 'out'}")
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.strip().splitlines() == [
        "vre export: error: the pipeline file pipeline/bare.yaml needs '# @package _global_' as its first line "
        "(without it Hydra reads the file into a key 'pipeline'); add that line"]


def test_config_dir_may_come_after_the_overrides(sample_video, tmp_path, in_process):
    conf = write_pipeline(tmp_path, "  rgb: {type: color/rgb}\n")
    code, err = in_process("export", "pipeline=p", f"video={sample_video}", f"output_dir={tmp_path / 'out'}",
                           "frames=0..1", "--config-dir", str(conf))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == [".logs", "rgb"]


def test_a_removed_working_folder_is_one_line(tmp_path, in_process, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    code, err = in_process("export", f"output_dir={tmp_path / 'out'}")
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.strip().splitlines() == [
        "vre export: error: the current folder no longer exists; cd into an existing folder and run again"]
