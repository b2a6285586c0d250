"""A Ray run across nodes that share no folder (issue 23 §3): two raylets on this machine (`ray.cluster_utils`),
`runner=ray` writing to the S3 server; one node killed mid-run, its work redone on the other. One cluster for
the whole test: Ray's start-up is the expensive part."""
from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vrecore.cli.app import main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store import open_store

# found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("ray", "s3fs")), reason="needs ray and s3fs")

SIZE = [24, 32]
SPEC = {"representations": {
    "rgb": {"type": "color/rgb", "output_size": SIZE, "batch_size": 2},
    "slow": {"type": "test/slow", "batch_size": 2, "output_size": SIZE, "parameters": {"seconds": 1.0}}}}


@pytest.mark.slow(seconds=13)
def test_a_ray_run_on_two_nodes_without_a_shared_folder_survives_losing_one(registry, sample_video, bucket,
                                                                            tmp_path, monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.chdir(tmp_path)
    local = tmp_path / "local"
    quick = {"representations": {**SPEC["representations"], "slow": {**SPEC["representations"]["slow"],
                                                                      "parameters": {"seconds": 0.0}}}}
    run_export(build_graph(quick), sample_video, local, frames="0..8")  # (seconds: not in the fingerprint)
    url = f"{bucket}/ray"
    ray.shutdown()  # a Ray instance an earlier test of this process left up (one connection a process)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    other = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    result: dict = {}
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {"representations": {**SPEC["representations"], "slow": {**SPEC["representations"]["slow"], "parameters": {
        "seconds": 1.0, "mark_dir": str(marks)}}}}

    def export() -> None:
        result["r"] = run_export(build_graph(spec), sample_video, url, frames="0..8", runner="ray", workers=2,
                                 ray_address=cluster.address, store_options={"frames_per_shard": 4},
                                 raise_on_error=False)

    try:
        runner = threading.Thread(target=export)
        runner.start()
        deadline = time.time() + 120
        while time.time() < deadline and len(list(marks.iterdir())) < 2:
            time.sleep(0.02)
        # Both actors have begun a batch (each left its pid), so the lost node's actor holds a task with ~1 s of
        # sleep left in it: the node and its actor are gone, mid-task.
        cluster.remove_node(other, allow_graceful=False)
        runner.join(timeout=180)
    finally:
        ray.shutdown()
        cluster.shutdown()
    r = result["r"]
    # every frame is computed; as with local worker processes, the lost worker is named (exit code 1)
    assert r.status == "failed" and "died" in r.error and "handed to another actor" in r.error, r.error
    run = json.loads(Path(r.metadata_file).read_text())
    assert sorted(w["status"] for w in run["workers"]) == ["died", "finished"], run["workers"]
    assert run["representations"]["slow"]["computed"] == 8 and run["representations"]["slow"]["failed"] == 0
    store = open_store(url)
    for name in ("rgb", "slow"):
        assert sorted(store.stat_frames(name, "npz")) == list(range(8))
        for i in range(8):
            with np.load(local / name / "npz" / f"{i}.npz", allow_pickle=False) as z:
                assert np.array_equal(store.read_frame(name, i), z["arr_0"]), (name, i)
    assert main(["verify", url, "--deep"]) == 0
    assert not any(p.name == "s3:" for p in tmp_path.rglob("*")), "no node wrote a local folder for the URL"
