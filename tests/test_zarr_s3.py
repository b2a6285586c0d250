"""The zarr store against a real S3 API (issue 23 §2): moto's server on 127.0.0.1 (tests/s3_server.py), reached
through AWS_ENDPOINT_URL and the usual credential variables, as a user's bucket would be."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.s3_server import s3

from vrecore.cli.app import main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store import open_store

# found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("zarr", "s3fs")), reason="needs zarr and s3fs")

SIZE = [24, 32]


def spec(slow: float | None = None) -> dict:
    reps = {"rgb": {"type": "color/rgb", "output_size": SIZE},
            "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "output_size": SIZE}}
    if slow is not None:  # sleeping changes no output (an unfingerprinted parameter)
        reps["slow"] = {"type": "test/slow", "batch_size": 2, "output_size": SIZE, "parameters": {"seconds": slow}}
    return {"representations": reps}


def npz(folder: Path, name: str, frame: int) -> np.ndarray:
    with np.load(folder / name / "npz" / f"{frame}.npz", allow_pickle=False) as z:
        return z["arr_0"]


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory, sample_video) -> Path:
    """The directory store's export of frames 0..12 (test/slow included): what every S3 export must equal."""
    from vrecore.testing import register_test_types

    register_test_types()
    out = tmp_path_factory.mktemp("folder") / "out"
    run_export(build_graph(spec(0.0)), sample_video, out, frames="0..12")
    return out


def assert_equal_to_folder(url: str, folder: Path, names: list[str], frames: range) -> None:
    store = open_store(url)
    for name in names:
        assert sorted(store.stat_frames(name, "npz")) == list(frames), name
        for i in frames:
            assert np.array_equal(store.read_frame(name, i), npz(folder, name, i)), (name, i)


def script(url: str, video: Path, frames: str, seconds: float) -> str:
    return f"""
from vrecore.testing import register_test_types
from vrecore.graph.build import build_graph
from vrecore.export.run import run_export
register_test_types()
run_export(build_graph({spec(seconds)!r}), {str(video)!r}, {url!r}, frames={frames!r},
           store_options={{"frames_per_shard": 4}})
"""


def test_export_to_s3_then_verify_it_there(registry, sample_video, folder_export, bucket, tmp_path, monkeypatch,
                                           capsys):
    monkeypatch.chdir(tmp_path)
    url = f"{bucket}/clip"
    code = main(["export", f"video={sample_video}", f"output_dir={url}", "frames=0..6", "pipeline=rgb_hsv",
                 f"representations.rgb.output_size=[{SIZE[0]},{SIZE[1]}]",
                 f"representations.hsv.output_size=[{SIZE[0]},{SIZE[1]}]"])
    assert code == 0, capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing local: no folder named s3:"
    keys = {k.split("/", 1)[1] for k in s3().find(url)}
    # 6 frames of a 16-frame shard (the default): each a pending chunk until its shard is complete
    assert {"clip/zarr.json", "clip/rgb/zarr.json", "clip/rgb/.pending/0", "clip/hsv/.pending/5"} <= keys
    assert_equal_to_folder(url, folder_export, ["rgb", "hsv"], range(6))
    assert main(["verify", url]) == 0 and main(["verify", url, "--deep"]) == 0
    meta = s3().cat_file(f"{url}/rgb/zarr.json").decode()
    assert "testing-secret" not in meta and "testing-key-id" not in meta, "credentials never stored"
    assert main(["read", url, "--json"]) == 0 and '"items": 6' in capsys.readouterr().out
    # the pictures of an export in the bucket go to a local --output; `vre pack` copies it into a local zarr store
    assert main(["collage", url, "frames=0..2", "--output", "collages"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "collages").iterdir()) == ["0.jpg", "1.jpg"]
    assert main(["pack", url, "--to", "zarr", "-o", "copy.zarr"]) == 0, capsys.readouterr().err
    assert main(["verify", "copy.zarr", "--deep"]) == 0
    assert_equal_to_folder("copy.zarr", folder_export, ["rgb", "hsv"], range(6))


@pytest.mark.slow(seconds=4)
def test_kill_9_mid_run_then_resume(registry, sample_video, folder_export, bucket):
    url = f"{bucket}/killed"
    proc = subprocess.Popen([sys.executable, "-c", script(url, sample_video, "0..12", 0.3)])
    fs, deadline = s3(), time.time() + 60
    while time.time() < deadline and len(fs.find(f"{url}/slow/.pending")) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = set(open_store(url).stat_frames("slow", "npz"))
    assert 2 <= len(done) < 12, "the run should have been killed in the middle"
    result = run_export(build_graph(spec(0.0)), sample_video, url, frames="0..12")
    assert result.stats["slow"].skipped == len(done) and result.stats["slow"].computed == 12 - len(done)
    assert_equal_to_folder(url, folder_export, ["rgb", "hsv", "slow"], range(12))
    assert main(["verify", url, "--deep"]) == 0


@pytest.mark.slow(seconds=4)
def test_two_processes_on_disjoint_frame_ranges_lose_nothing(registry, sample_video, folder_export, bucket):
    url = f"{bucket}/two"
    # frames_per_shard=4: shard 1 (frames 4-7) has frames of both runs; neither owns it alone
    procs = [subprocess.Popen([sys.executable, "-c", script(url, sample_video, frames, 0.05)]) for frames in
             ("0..6", "6..12")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert_equal_to_folder(url, folder_export, ["rgb", "hsv", "slow"], range(12))
    assert main(["verify", url, "--deep"]) == 0
    result = run_export(build_graph(spec(0.0)), sample_video, url, frames="0..12")
    assert result.stats["slow"].computed == 0 and result.stats["slow"].skipped == 12
    keys = s3().find(f"{url}/slow")
    assert not any("/.pending/" in k for k in keys), "every shard complete: written whole, pending chunks gone"


def test_an_object_damaged_by_hand_is_found_and_computed_again(registry, sample_video, folder_export, bucket, capsys):
    url = f"{bucket}/damaged"
    run_export(build_graph(spec()), sample_video, url, frames="0..4", store_options={"frames_per_shard": 2})
    fs = s3()
    shard = f"{url}/hsv/c/1/0/0/0"
    data = bytearray(fs.cat_file(shard))
    data[10:30] = bytes(20)  # frame 2's chunk, same size
    fs.pipe_file(shard, bytes(data))
    capsys.readouterr()
    assert main(["verify", url]) == 1
    assert f"corrupt: {url}/hsv/npz/2.npz: content changed since it was written" in capsys.readouterr().out
    assert main(["verify", url, "--repair"]) == 0, capsys.readouterr().err
    assert fs.find(f"{url}/.quarantine"), "the bad chunk was moved aside, not deleted"
    assert main(["verify", url, "--deep"]) == 0
    assert_equal_to_folder(url, folder_export, ["rgb", "hsv"], range(4))


def test_read_back_with_two_dataloader_workers_equals_the_folder_export(registry, sample_video, folder_export,
                                                                          bucket, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    from vrecore.data import MultiTaskDataset

    url = f"{bucket}/train"
    run_export(build_graph(spec()), sample_video, url, frames="0..6", store_options={"frames_per_shard": 4},
               workers=2)
    assert list(tmp_path.iterdir()) == [], "worker processes keep their logs in vre's cache, not in a folder s3:"
    dataset = MultiTaskDataset(url, ["rgb", "hsv"])
    folder = MultiTaskDataset(folder_export, ["rgb", "hsv"], to_tensor=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    seen = 0
    for batch in loader:
        data, names = batch[0], batch[1]
        for row, name in enumerate(names):
            want = folder.get_item(int(name))[0]
            for task in ("rgb", "hsv"):
                assert np.array_equal(data[task][row].numpy(), want[task]), (task, name)
            seen += 1
    assert seen == 6
