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
