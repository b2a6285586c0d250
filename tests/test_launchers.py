"""Many videos through Hydra launchers: joblib runs them in parallel here; Slurm and Ray configs compose."""
from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from vrecore.cli.app import HydraJob


def test_joblib_multirun_over_three_clips_one_corrupt(sample_video, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "broken.mp4"]
    clips[0].write_bytes(sample_video.read_bytes())
    clips[1].write_bytes(sample_video.read_bytes())
    clips[2].write_bytes(sample_video.read_bytes()[:4000])
    out = tmp_path / "exports"
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", "-m", f"video={','.join(map(str, clips))}",
                        f"output_root={out}", "frames=0..4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    table = r.stderr[r.stderr.index("vre export: multirun of 3 job(s):"):].splitlines()
    rows = {line.split()[0]: line for line in table[2:]}
    assert "ok" in rows[str(clips[0])] and "ok" in rows[str(clips[1])]
    assert "failed  -" in rows[str(clips[2])] and f"video '{clips[2]}' cannot be read" in rows[str(clips[2])]
    for stem in ("a", "b"):
        assert sorted(p.name for p in (out / stem / "hsv" / "npz").iterdir()) == [f"{i}.npz" for i in range(4)]
    assert not (out / "broken").exists() or not list((out / "broken").rglob("*.npz"))


@pytest.mark.parametrize("launcher,target", [
    ("vre_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ("vre_ray", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"),
])
def test_shipped_launcher_configs_compose(launcher, target):
    pytest.importorskip(target.rsplit(".", 2)[0])
    from hydra import compose, initialize_config_module

    from vrecore.cli.config import register_schemas

    register_schemas()
    with initialize_config_module(version_base="1.3", config_module="vrecore.cli.conf"):
        cfg = compose("export", overrides=[f"hydra/launcher={launcher}", "video=a.mp4"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    if launcher == "vre_slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 720
    else:
        assert cfg.hydra.launcher.ray.init.address == "auto"


def test_the_job_function_travels_to_other_processes():
    cloudpickle = pytest.importorskip("cloudpickle")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        job = loads(dumps(HydraJob("export")))
        assert isinstance(job, HydraJob) and job.command == "export"
