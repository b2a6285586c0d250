"""The zarr store on a local folder (issue 23 §1): sharded zarr v3 arrays equal to the folder export, shards
written whole only once complete, verification and repair, fingerprint refusal, the reader, the missing extra.
The same store on a real S3 API: tests/test_zarr_s3.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vrecore.cli.app import main
from vrecore.errors import ConfigError
from vrecore.export.plan import FingerprintMismatch
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store import ZarrStore, open_store

zarr = pytest.importorskip("zarr")


def graph(size=(24, 32)):
    return build_graph({"representations": {
        "rgb": {"type": "color/rgb", "output_size": list(size)},
        "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "output_size": list(size)}}})


def npz(folder: Path, name: str, frame: int) -> np.ndarray:
    with np.load(folder / name / "npz" / f"{frame}.npz", allow_pickle=False) as z:
        return z["arr_0"]


def objects(root: Path, name: str) -> list[str]:
    return sorted(str(p.relative_to(root / name)) for p in (root / name).rglob("*") if p.is_file()
                  and ".records" not in p.parts and p.name != "zarr.json")


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory, sample_video) -> Path:
    """The directory store's export of frames 0..8: what every zarr export must equal."""
    out = tmp_path_factory.mktemp("folder") / "out"
    run_export(graph(), sample_video, out, frames="0..8")
    return out


def test_an_output_dir_ending_in_zarr_is_a_sharded_zarr_v3_array_per_representation(
        registry, sample_video, folder_export, tmp_path):
    out = tmp_path / "clip.zarr"
    run_export(graph(), sample_video, out, frames="0..6", store_options={"frames_per_shard": 4})
    assert type(open_store(out)) is ZarrStore
    # shard 0 (frames 0-3) is complete: written whole; frames 4, 5 wait as pending chunks for shard 1
    assert objects(out, "rgb") == [".pending/4", ".pending/5", "c/0/0/0/0"]
    array = zarr.open_group(str(out), mode="r")["rgb"]
    assert array.shape == (48, 24, 32, 3) and array.dtype == np.uint8
    assert array.chunks == (1, 24, 32, 3) and array.shards == (4, 24, 32, 3), "chunked by frame, sharded"
    for i in range(4):
        assert np.array_equal(array[i], npz(folder_export, "rgb", i))
    store = open_store(out)
    for i in range(6):
        for name in ("rgb", "hsv"):
            assert np.array_equal(store.read_frame(name, i), npz(folder_export, name, i))
    result = run_export(graph(), sample_video, out, frames="0..8", store_options={"frames_per_shard": 4})
    assert result.stats["hsv"].computed == 2 and result.stats["hsv"].skipped == 6
    assert objects(out, "hsv") == ["c/0/0/0/0", "c/1/0/0/0"], "shard 1 complete: the pending chunks moved into it"
    array = zarr.open_group(str(out), mode="r")["hsv"]
    assert np.array_equal(array[:8], np.stack([npz(folder_export, "hsv", i) for i in range(8)]))
    meta = json.loads((out / "hsv" / "zarr.json").read_text())
    assert sorted(map(int, meta["attributes"]["vre"]["frames"])) == list(range(8))
    assert main(["verify", str(out)]) == 0


def test_the_codec_is_a_parameter(registry, sample_video, folder_export, tmp_path):
    out = tmp_path / "raw.zarr"
    run_export(graph(), sample_video, out, frames="0..2", store_options={"codec": "none", "frames_per_shard": 2})
    meta = json.loads((out / "rgb" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]] == ["bytes"]
    shard = (out / "rgb" / "c" / "0" / "0" / "0" / "0").read_bytes()
    assert len(shard) == 2 * 24 * 32 * 3 + 2 * 16, "two raw chunks and the shard index"
    assert np.array_equal(zarr.open_group(str(out), mode="r")["rgb"][1], npz(folder_export, "rgb", 1))
    with pytest.raises(ConfigError, match="codec 'lz4' is not one of zstd, none"):
        run_export(graph(), sample_video, tmp_path / "bad.zarr", frames="0..2", store_options={"codec": "lz4"})


def test_verify_finds_a_damaged_chunk_and_repair_computes_it_again(registry, sample_video, folder_export, tmp_path,
                                                                   capsys):
    out = tmp_path / "v.zarr"
    run_export(graph(), sample_video, out, frames="0..4", store_options={"frames_per_shard": 4})
    shard = out / "rgb" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[5:25] = bytes(20)  # the first chunk's zstd frame, same size
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    report = capsys.readouterr()
    assert f"corrupt: {out}/rgb/npz/0.npz: content changed since it was written" in report.out
    assert f"run `vre verify {out} --repair`" in report.err
    assert main(["verify", str(out), "--repair"]) == 0, capsys.readouterr().err
    assert list((out / ".quarantine").rglob("0")), "the bad chunk was moved aside, not deleted"
    assert main(["verify", str(out), "--deep"]) == 0
    store = open_store(out)
    for i in range(4):
        assert np.array_equal(store.read_frame("rgb", i), npz(folder_export, "rgb", i))


def test_a_run_made_differently_is_refused_before_anything_is_written(registry, sample_video, tmp_path):
    out = tmp_path / "f.zarr"
    run_export(graph(), sample_video, out, frames="0..2")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".logs" not in p.parts}
    with pytest.raises(FingerprintMismatch, match="representation 'rgb': the frames in"):
        run_export(graph((16, 16)), sample_video, out, frames="0..2")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".logs" not in p.parts} == before


def test_the_dataset_and_vre_read_open_a_zarr_export(registry, sample_video, folder_export, tmp_path, capsys):
    from vrecore.data import MultiTaskDataset

    out = tmp_path / "d.zarr"
    run_export(graph(), sample_video, out, frames="0..6", store_options={"frames_per_shard": 4})
    zarr_items = MultiTaskDataset(out, ["rgb", "hsv"], to_tensor=False)
    folder_items = MultiTaskDataset(folder_export, ["rgb", "hsv"], to_tensor=False, videos=None)
    assert len(zarr_items) == 6
    for i in range(6):
        a, b = zarr_items.get_item(i), folder_items.get_item(i)
        assert a[1] == b[1] == str(i) and all(np.array_equal(a[0][t], b[0][t]) for t in ("rgb", "hsv"))
    assert main(["read", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["items"] == 6 and info["tasks"]["hsv"]["shape"] == [24, 32, 3]


def test_without_the_cloud_extra_one_line_says_what_to_install(registry, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    code = main(["export", "video=x.mp4", "output_dir=s3://bucket/x"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vre export: error: ")]
    assert code == 2 and len(err) == 1
    assert "pip install 'vrecore[cloud]'" in err[0] and "no module 'fsspec'" in err[0]


def test_an_s3_url_without_credentials_is_one_line(registry, sample_video, tmp_path, monkeypatch, capsys):
    pytest.importorskip("s3fs")
    monkeypatch.chdir(tmp_path)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no wait for an instance role
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code = main(["export", f"video={sample_video}", "output_dir=s3://no-such-bucket/x", "frames=0..1"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("vre export: error: ")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err  # (a StorageError, as a read-only folder)
    assert "output_dir 's3://no-such-bucket/x' is not writable (NoCredentialsError" in lines[0]
    assert list(tmp_path.iterdir()) == []
