"""runner=ray: the plan on Ray actors (a local Ray instance here) gives the local runner's files and resumes."""
from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from tests.test_scaleout import REPS, _complete_again, _export_cli, _wait, frames_of, graph

from vrecore.errors import ConfigError
from vrecore.export.run import run_export

# ray found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")


@pytest.mark.slow(seconds=7)
def test_ray_writes_the_files_of_the_local_runner(registry, sample_video, tmp_path, local_ray):
    local = run_export(graph(), sample_video, tmp_path / "local", frames="0..24", workers=2)
    on_ray = run_export(graph(), sample_video, tmp_path / "ray", frames="0..24", workers=2, runner="ray")
    assert local.ok and on_ray.ok
    assert frames_of(tmp_path / "local") == frames_of(tmp_path / "ray") and len(frames_of(tmp_path / "ray")) == 96
    run = json.loads(on_ray.metadata_file.read_text())
    assert run["runner"] == "ray" and [w["status"] for w in run["workers"]] == ["finished", "finished"]
    placed = run_export(graph(), sample_video, tmp_path / "placed", frames="0..24", runner="ray",
                        placement={"s": "cpu:1", "*": "cpu"})
    assert placed.ok and frames_of(tmp_path / "placed") == frames_of(tmp_path / "local")
    assert set(REPS) == {p.name for p in (tmp_path / "placed").iterdir() if not p.name.startswith(".")}
    # connected to one Ray instance, a run asked to go to another is refused before anything is written
    with pytest.raises(ConfigError, match=r"ray_address=127\.0\.0\.1:9 .*already connected to Ray at "):
        run_export(graph(), sample_video, tmp_path / "other", frames="0..2", runner="ray", ray_address="127.0.0.1:9")
    assert not (tmp_path / "other").exists()


@pytest.mark.slow(seconds=25)
def test_a_second_ray_run_computes_only_what_an_interrupted_one_left(sample_video, tmp_path, monkeypatch,
                                                                     local_ray):
    # Another cluster on this machine, begun by `ray start --head` (or ray.cluster_utils), is the one Ray's own
    # ray.init() would join: without ray_address, vre's run starts its own instance all the same.
    ray_tmp = Path(tempfile.mkdtemp(prefix="vre-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    proc = _export_cli(out, sample_video, "workers=2", "runner=ray")
    _wait(out, 6, timeout=120)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    written = len(list((out / "slow" / "npz").iterdir()))
    assert 6 <= written < 48
    # The second run joins this test process's Ray instance (ray_address) instead of starting its own
    again = _export_cli(out, sample_video, "workers=2", "runner=ray",
                        f"ray_address={local_ray.get_runtime_context().gcs_address}", seconds=0.0)  # (unfingerprinted)
    _, stderr = again.communicate(timeout=240)
    assert again.returncode == 0, stderr
    runs = sorted((json.loads(p.read_text()) for p in (out / ".logs").glob("run_metadata_*.json")),
                  key=lambda r: r["started"])
    assert runs[-1]["representations"]["slow"]["computed"] == 48 - written
    assert runs[-1]["representations"]["slow"]["skipped"] == written
    _complete_again(out, sample_video)
    shutil.rmtree(ray_tmp, ignore_errors=True)
