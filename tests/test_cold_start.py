"""What `vre export` does before its first frame: Hydra composes the config once (not once more to find the
mode), and the light path imports nothing a run does not use (times: bench/bench_many.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vrecore.cli.app import main
from vrecore.graph.registry import reset_registry


@pytest.fixture
def compositions(monkeypatch):
    from hydra._internal.hydra import Hydra

    calls: list[str] = []
    real = Hydra.compose_config

    def counting(self, *args, **kwargs):
        calls.append(str(kwargs.get("run_mode")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counting)
    reset_registry()
    yield calls
    reset_registry()


def test_one_export_composes_its_config_once(sample_video, tmp_path, compositions):
    assert main(["export", f"video={sample_video}", f"output_dir={tmp_path / 'o'}", "frames=0..1"]) == 0
    assert len(compositions) == 1, compositions


def test_a_config_that_sets_hydra_mode_is_still_asked(sample_video, tmp_path, compositions):
    """An override of hydra.mode (or a primary config of the user's) may change the mode: Hydra's own check runs."""
    code = main(["export", f"video={sample_video}", f"output_dir={tmp_path / 'o'}", "frames=0..1", "hydra.mode=RUN"])
    assert code == 0
    assert len(compositions) == 2, compositions


def test_a_multirun_composes_once_before_its_jobs(sample_video, tmp_path, compositions):
    code = main(["export", "-m", f"video={sample_video}", f"output_root={tmp_path / 'm'}", "frames=0..1",
                 "binary_format=npz,npz-compressed", "output_dir=${output_root}/${binary_format}"])
    assert code == 0
    assert (tmp_path / "m" / "npz" / "rgb").is_dir() and (tmp_path / "m" / "npz-compressed" / "rgb").is_dir()
    assert compositions == ["RunMode.MULTIRUN"]  # the sweep's (each job's config comes from the sweep)


def test_importing_the_export_command_loads_no_model_code():
    code = ("import sys; from vrecore.cli import export; from vrecore.cli.dispatch import main; "
            "print(','.join(m for m in ('torch', 'ray', 'vrecore.export.run') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""


# -- Hydra's composition kept for the next run of the same shape (vrecore.cli._compose_cache) ----------------------

@pytest.fixture
def jobs(monkeypatch, tmp_path):
    """Each `vre export` job's resolved config, and whether Hydra composed it (False: served from the record); the
    export itself is not run. The working folder is ``tmp_path``."""
    import vrecore.cli.export as export_command
    from vrecore.cli._hydra import resolve_config

    seen: list[tuple[bool, dict]] = []

    def job(cfg, outcome=None):
        seen.append((not isinstance(cfg, dict), resolve_config("export", cfg)))
        return 0

    monkeypatch.setattr(export_command, "run_export_config", job)
    monkeypatch.chdir(tmp_path)
    return seen


def _records() -> list:
    import os
    from pathlib import Path

    return sorted((Path(os.environ["VRE_CACHE"]) / "configs").glob("*.json"))


def test_the_next_command_of_the_same_shape_gets_what_hydra_composes(jobs, monkeypatch):
    first = ["video=a.mp4", "output_dir=out/a", "frames=0..9", "pipeline=rgb_hsv"]
    second = ["video=clips/b-2.mp4", "output_dir=/data/out/b", "frames=3..5", "pipeline=rgb_hsv"]
    assert main(["export", *first]) == 0
    assert main(["export", *second]) == 0
    monkeypatch.setenv("VRE_CONFIG_CACHE", "0")
    assert main(["export", *second]) == 0
    (hydra_1, _), (hydra_2, served), (hydra_3, composed) = jobs
    assert (hydra_1, hydra_2, hydra_3) == (True, False, True)
    assert list(served.items()) == list(composed.items())  # the same keys, values and order
    assert (served["video"], served["output_dir"], served["frames"]) == ("clips/b-2.mp4", "/data/out/b", "3..5")
    assert len(_records()) == 1


@pytest.mark.parametrize(("value", "hydra_reads"), [("1.50", "1.5"), ("true", "True"), ("1_000", "1000")])
def test_a_value_hydra_reads_as_something_else_is_composed_by_hydra(jobs, value, hydra_reads):
    assert main(["export", "video=a.mp4", "output_dir=o1"]) == 0
    assert main(["export", f"video={value}", "output_dir=o2"]) == 0
    assert [hydra for hydra, _ in jobs] == [True, True]
    assert jobs[1][1]["video"] == hydra_reads


def test_an_edited_config_file_is_composed_again(jobs, tmp_path):
    pipeline = tmp_path / "conf" / "pipeline" / "mine.yaml"
    pipeline.parent.mkdir(parents=True)
    pipeline.write_text("# @package _global_\nbatch_size: 3\nrepresentations:\n  rgb: {type: color/rgb}\n")
    command = ["export", "--config-dir", str(tmp_path / "conf"), "pipeline=mine"]
    for out in ("o1", "o2"):
        assert main([*command, f"output_dir={out}"]) == 0
    pipeline.write_text("# @package _global_\nbatch_size: 5\nrepresentations:\n  rgb: {type: color/rgb}\n")
    assert main([*command, "output_dir=o3"]) == 0
    assert [(hydra, config["batch_size"]) for hydra, config in jobs] == [(True, 3), (False, 3), (True, 5)]


@pytest.mark.parametrize("args", [
    ["store_options.storage_options.secret=s3cr3t-value"],  # credentials are never written down
    ["output_root=out", "output_dir=${output_root}/x"],  # an interpolation: resolved at each run
    ["hydra.job.chdir=false"],  # Hydra's own settings: Hydra's run
    ["--cfg", "job"],  # a flag but --config-dir
])
def test_what_is_never_kept(jobs, monkeypatch, args, capsys):
    for _ in range(2):
        main(["export", "video=a.mp4", *args])
    assert _records() == []
    assert all(hydra for hydra, _ in jobs)


def test_the_switch_and_a_damaged_record(jobs, monkeypatch):
    monkeypatch.setenv("VRE_CONFIG_CACHE", "0")
    assert main(["export", "output_dir=o1"]) == 0 and _records() == []
    monkeypatch.delenv("VRE_CONFIG_CACHE")
    assert main(["export", "output_dir=o2"]) == 0
    [record] = _records()
    record.write_text('{"format": 1, "args": ["output_dir=\\u0000"], "sources": [], "digest": ')
    assert main(["export", "output_dir=o3"]) == 0  # composed by Hydra, and the record written again
    assert main(["export", "output_dir=o4"]) == 0
    assert [hydra for hydra, _ in jobs] == [True, True, True, False]


def test_a_run_served_from_the_record_keeps_what_the_first_run_wrote(sample_video, tmp_path, compositions, capsys):
    """Same command line, same output: the second run (no Hydra) finds every frame done, with the same fingerprint."""
    out = tmp_path / "o"
    command = ["export", f"video={sample_video}", f"output_dir={out}", "frames=0..3", "pipeline=rgb_hsv"]
    assert main(command) == 0
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix == ".npz"}
    capsys.readouterr()
    assert main(command) == 0
    table = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().err.splitlines()
             if line.startswith(("rgb ", "hsv "))}
    assert table == {"rgb": ["0", "3"], "hsv": ["0", "3"]}  # computed, skipped
    assert {p: p.stat().st_mtime_ns for p in files} == files and len(files) == 6
    assert len(compositions) == 1


def test_vre_stream_is_served_the_same_way(monkeypatch, tmp_path):
    import vrecore.cli.stream as stream_command
    from vrecore.cli._hydra import resolve_config

    seen: list[tuple[bool, dict]] = []
    monkeypatch.setattr(stream_command, "run_stream_config",
                        lambda cfg, outcome: seen.append((not isinstance(cfg, dict), resolve_config("stream", cfg))) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["stream", "source=a.mp4", "output=-", "max_frames=3"]) == 0
    assert main(["stream", "source=/dev/video0", "output=web", "max_frames=3"]) == 0
    monkeypatch.setenv("VRE_CONFIG_CACHE", "0")
    assert main(["stream", "source=/dev/video0", "output=web", "max_frames=3"]) == 0
    assert [hydra for hydra, _ in seen] == [True, False, True]
    assert list(seen[1][1].items()) == list(seen[2][1].items())


def test_a_cache_folder_that_cannot_be_written_costs_nothing_but_the_record(jobs, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VRE_CACHE", str(blocker / "cache"))  # below a file: nothing can be made there
    from vrecore.graph.registry import get_registry, reset_registry

    reset_registry()
    assert "color/hsv" in get_registry().types
    for out in ("o1", "o2"):
        assert main(["export", f"output_dir={out}"]) == 0
    assert [hydra for hydra, _ in jobs] == [True, True] and not (blocker / "cache").exists()
