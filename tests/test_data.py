"""vrecore.data: MultiTaskDataset over real exports (types, missing frames, normalization, statistics cache,
DataLoader workers, virtual tasks, folders of videos and splits), packs, and `vre read`."""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrecore.data import MultiTaskDataset, TaskStatistics, collate, split_videos
from vrecore.errors import ConfigError
from vrecore.store.npz import write_npz

FRAMES = list(range(8))
REPS = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "depth": {"type": "test/grey", "output_dtype": "float16"},  # a one-channel float16 map, like vre-depth's
    "scene": {"type": "test/scene-semantic"},                    # one-hot classes (ground, building, sky), uint8
    "semantic": {"type": "semantic/map", "dependencies": ["scene"],  # class indices, uint8 (H, W)
                 "parameters": {"table": {"ground": "land", "building": "houses", "sky": "sky"},
                                "target_classes": ["land", "houses", "sky"]}},
    "buildings": {"type": "mask/classes", "dependencies": ["semantic"], "parameters": {"classes": ["houses"]}},
}
TASKS = ["buildings", "depth", "hsv", "rgb", "scene", "semantic"]


@pytest.fixture(autouse=True)
def types():
    """The global registry with vrecore's and vre-geometry's test types (the dataset resolves types through it)."""
    from vre_geometry.testing import register_scene_types
    from vrecore.graph.registry import reset_registry
    from vrecore.testing import register_test_types

    reset_registry()
    register_scene_types(register_test_types())
    yield
    reset_registry()


@pytest.fixture(scope="module")
def export(sample_video, tmp_path_factory) -> Path:
    from vre_geometry.testing import register_scene_types
    from vrecore import build_graph, run_export
    from vrecore.graph.registry import reset_registry
    from vrecore.testing import register_test_types

    reset_registry()
    register_scene_types(register_test_types())
    out = tmp_path_factory.mktemp("data") / "clip"
    result = run_export(build_graph({"representations": REPS}), sample_video, out, frames="0..8")
    assert result.ok
    reset_registry()
    return out


@pytest.fixture
def holes(export, tmp_path) -> Path:
    """The export with depth's frame 3 and scene's frame 5 deleted."""
    out = tmp_path / "holes"
    shutil.copytree(export, out)
    (out / "depth" / "npz" / "3.npz").unlink()
    (out / "semantic" / "npz" / "5.npz").unlink()
    return out


def stored(out: Path, task: str, frame: int) -> np.ndarray:
    return np.load(out / task / "npz" / f"{frame}.npz", allow_pickle=False)["arr_0"]


def test_items_through_their_types(export):
    ds = MultiTaskDataset(export)
    assert ds.task_names == TASKS and len(ds) == 8
    assert ds.names == [str(f) for f in FRAMES]
    assert ds.task_types() == {"buildings": "mask/classes", "depth": "test/grey", "hsv": "color/hsv",
                               "rgb": "color/rgb", "scene": "test/scene-semantic", "semantic": "semantic/map"}
    assert ds.data_shape == {"buildings": (180, 320, 1), "depth": (180, 320, 1), "hsv": (180, 320, 3),
                             "rgb": (180, 320, 3), "scene": (180, 320, 3), "semantic": (180, 320)}
    assert ds.dtypes == {"buildings": "bool", "depth": "float32", "hsv": "float32", "rgb": "uint8",
                         "scene": "uint8", "semantic": "int64"}
    assert ds.classification_tasks == ["buildings", "scene", "semantic"]
    data, name = ds[5]
    assert name == "5"
    assert np.array_equal(data["rgb"].numpy(), stored(export, "rgb", 5))
    assert np.array_equal(data["depth"].numpy()[..., 0], stored(export, "depth", 5).astype(np.float32))
    assert stored(export, "depth", 5).dtype == np.float16
    assert np.array_equal(data["scene"].numpy(), stored(export, "scene", 5))  # stored one-hot, as it is
    assert np.array_equal(data["semantic"].numpy(), stored(export, "semantic", 5).astype(np.int64))
    assert np.array_equal(data["semantic"].numpy(), data["scene"].numpy().argmax(-1))
    assert np.array_equal(data["buildings"].numpy()[..., 0], stored(export, "buildings", 5))
    assert np.array_equal(data["buildings"].numpy()[..., 0], data["semantic"].numpy() == 1)  # houses: class 1


def test_one_hot_channels_first_subset_and_names(export):
    ds = MultiTaskDataset(export, ["semantic", "hsv"], one_hot=["semantic"], channels_first=True)
    data, _ = ds["6"]
    assert tuple(data["semantic"].shape) == (3, 180, 320) and str(data["semantic"].dtype) == "torch.float32"
    labels = stored(export, "semantic", 6)
    assert np.array_equal(data["semantic"].numpy().argmax(axis=0), labels)
    assert np.array_equal(data["semantic"].numpy().sum(axis=0), np.ones((180, 320)))
    assert np.array_equal(data["hsv"].numpy(), np.moveaxis(stored(export, "hsv", 6), -1, 0))
    only, name = ds.get_item(2, subset_tasks=["hsv"])
    assert list(only) == ["hsv"] and name == "2"
    with pytest.raises(KeyError, match="task 'rgb' is not in this dataset"):
        ds.get_item(0, subset_tasks=["rgb"])
    with pytest.raises(ConfigError, match=r"task\(s\) 'nope' not stored in .*stored tasks: buildings, depth, hsv"):
        MultiTaskDataset(export, ["hsv", "nope"])
    with pytest.raises(ConfigError, match=r"one_hot names 'hsv', not a class task of the dataset \(class tasks: "
                                          r"semantic\)"):
        MultiTaskDataset(export, ["semantic", "hsv"], one_hot=["hsv"])


def test_handle_missing_raise_names_task_and_frame(holes):
    with pytest.raises(ConfigError) as e:
        MultiTaskDataset(holes)
    assert str(e.value).startswith("task 'depth' is missing frame(s) 3; task 'semantic' is missing frame(s) 5; ")
    assert "handle_missing='drop'" in str(e.value)


def test_handle_missing_drop(holes):
    ds = MultiTaskDataset(holes, handle_missing="drop")
    assert ds.names == ["0", "1", "2", "4", "6", "7"]
    assert ds.missing() == {"depth": {"holes": [3]}, "semantic": {"holes": [5]}}
    assert ds.dtypes["rgb"] == "uint8"


def test_handle_missing_fill_none_and_collate(holes):
    ds = MultiTaskDataset(holes, handle_missing="fill_none")
    assert len(ds) == 8
    data, _ = ds[3]
    assert data["depth"] is None and data["semantic"] is not None
    assert ds.dtypes["rgb"] == "float32" and ds.dtypes["buildings"] == "float32"  # so NaN can stand for missing
    batch, names = ds.collate_fn([ds[i] for i in (2, 3, 5)])
    assert names == ["2", "3", "5"]
    depth = batch["depth"].numpy()
    assert depth.shape == (3, 180, 320, 1) and np.isnan(depth[1]).all() and not np.isnan(depth[0]).any()
    semantic = batch["semantic"].numpy()
    assert semantic.dtype == np.int64 and (semantic[2] == -1).all() and (semantic[0] >= 0).all()
    only_missing, _ = ds.collate_fn([ds[3]])
    assert np.isnan(only_missing["depth"].numpy()).all()  # shape known from the dataset, not the batch


@pytest.mark.parametrize("mode", ["fill_zero", "fill_nan"])
def test_handle_missing_fill_values(holes, mode):
    ds = MultiTaskDataset(holes, handle_missing=mode, to_tensor=False)
    depth, semantic = ds[3][0]["depth"], ds[5][0]["semantic"]
    assert depth.shape == (180, 320, 1) and semantic.shape == (180, 320) and semantic.dtype == np.int64
    if mode == "fill_zero":
        assert (depth == 0).all() and (semantic == 0).all() and ds.dtypes["rgb"] == "uint8"
    else:
        assert np.isnan(depth).all() and (semantic == -1).all() and ds.dtypes["rgb"] == "float32"
    assert np.array_equal(ds[4][0]["depth"][..., 0], stored(holes, "depth", 4))


@pytest.mark.parametrize("options", [
    {},
    {"channels_first": True, "normalization": "standardization"},
    {"handle_missing": "fill_none"},
    {"handle_missing": "fill_nan", "one_hot": True, "channels_first": True},
    {"handle_missing": "fill_zero", "normalization": {"depth": "min_max"}},
])
def test_batches_read_together_equal_the_stacked_items(holes, options):
    for f in (1, 4):  # some frames deflated: those are read through numpy.load, the others straight into the batch
        for task in ("hsv", "semantic"):
            write_npz(holes / task / "npz" / f"{f}.npz", stored(holes, task, f), compress=True)
    ds = MultiTaskDataset(holes, **{"handle_missing": "drop", **options}, cache_statistics=False, progress=False)
    indices = [0, 1, 3, 4, 5] if len(ds) == 8 else [0, 1, 2, 3]
    batch, names = ds.collate_fn(ds.__getitems__(indices))
    reference, ref_names = ds.collate_fn([ds.get_item(i) for i in indices])  # a plain list: stacked
    assert names == ref_names and list(batch) == list(reference)
    for task in batch:
        assert batch[task].dtype == reference[task].dtype and batch[task].shape == reference[task].shape, task
        np.testing.assert_array_equal(batch[task].numpy(), reference[task].numpy(), err_msg=task)
    items = ds.__getitems__(indices)
    if ds.handle_missing == "fill_none":
        assert items[2][0]["depth"] is None  # what any other collate function sees
    assert np.array_equal(np.asarray(items[1][0]["hsv"]), reference["hsv"][1].numpy())


def numpy_stats(out: Path, task: str, frames: list[int]) -> dict[str, np.ndarray]:
    x = np.stack([stored(out, task, f).astype(np.float64) for f in frames])
    x = x.reshape(-1, x.shape[-1]) if x.ndim == 4 else x.reshape(-1, 1)
    return {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}


def test_normalization_against_numpy(export, tmp_path):
    out = tmp_path / "norm"
    shutil.copytree(export, out)
    ds = MultiTaskDataset(out, normalization={"*": "standardization", "depth": "min_max"}, progress=False)
    assert ds.normalization == {"depth": "min_max", "hsv": "standardization", "rgb": "standardization"}
    for task in ("hsv", "rgb", "depth"):
        ref, got = numpy_stats(out, task, FRAMES), ds.statistics[task]
        for key in ("min", "max", "mean", "std"):
            np.testing.assert_allclose(getattr(got, key), ref[key], rtol=1e-5, atol=1e-6, err_msg=f"{task} {key}")
        assert got.count.tolist() == [8 * 180 * 320] * len(ref["mean"])
    data, _ = ds[4]
    hsv = stored(out, "hsv", 4).astype(np.float64)
    ref = numpy_stats(out, "hsv", FRAMES)
    np.testing.assert_allclose(data["hsv"].numpy(), (hsv - ref["mean"]) / ref["std"], rtol=1e-4, atol=1e-4)
    depth = stored(out, "depth", 4).astype(np.float64)[..., None]
    dref = numpy_stats(out, "depth", FRAMES)
    np.testing.assert_allclose(data["depth"].numpy(), (depth - dref["min"]) / (dref["max"] - dref["min"]), atol=1e-5)
    assert np.array_equal(data["scene"].numpy(), stored(out, "scene", 4))  # classes: never normalized
    assert np.array_equal(data["semantic"].numpy(), stored(out, "semantic", 4))
    with pytest.raises(ConfigError, match="task 'semantic' holds classes or a mask; it is never normalized"):
        MultiTaskDataset(out, normalization={"semantic": "min_max"})
    with pytest.raises(ConfigError, match="normalization 'zscore' .* is not one of None, min_max, standardization"):
        MultiTaskDataset(out, normalization="zscore")


def test_statistics_cached_then_invalidated_by_a_changed_frame(export, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    shutil.copytree(export, out)
    first = MultiTaskDataset(out, ["depth", "hsv"], normalization="standardization", progress=False).statistics
    cache = json.loads((out / ".vre_statistics.json").read_text())
    assert len(cache["entries"]) == 2

    def no_pass(self, tasks):
        raise AssertionError(f"statistics of {tasks} recomputed instead of read from the cache")

    monkeypatch.setattr(MultiTaskDataset, "_statistics_pass", no_pass)
    again = MultiTaskDataset(out, ["depth", "hsv"], normalization="standardization").statistics
    assert np.array_equal(again["depth"].mean, first["depth"].mean) and np.array_equal(again["hsv"].m2, first["hsv"].m2)
    monkeypatch.undo()

    write_npz(out / "depth" / "npz" / "2.npz", np.full((180, 320), 0.5, np.float16))  # a frame changes
    calls = []
    real = MultiTaskDataset._statistics_pass

    def counting(self, tasks):
        calls.append(list(tasks))
        return real(self, tasks)

    monkeypatch.setattr(MultiTaskDataset, "_statistics_pass", counting)
    changed = MultiTaskDataset(out, ["depth", "hsv"], normalization="standardization", progress=False).statistics
    assert calls == [["depth"]]  # hsv's frames did not change: still from the cache
    ref = numpy_stats(out, "depth", FRAMES)
    np.testing.assert_allclose(changed["depth"].mean, ref["mean"], rtol=1e-6)
    assert not np.allclose(changed["depth"].mean, first["depth"].mean)


def test_statistics_given_from_another_dataset(export, tmp_path):
    train = MultiTaskDataset(export, ["hsv"], normalization="min_max", cache_statistics=False, progress=False)
    other = tmp_path / "other"
    shutil.copytree(export, other)
    for f in FRAMES:
        write_npz(other / "hsv" / "npz" / f"{f}.npz", stored(export, "hsv", f) * np.float32(0.5))
    test = MultiTaskDataset(other, ["hsv"], normalization="min_max", statistics=train.statistics)
    assert test.statistics["hsv"] is train.statistics["hsv"]
    s = train.statistics["hsv"]
    x = stored(other, "hsv", 1).astype(np.float64)
    np.testing.assert_allclose(test[1][0]["hsv"].numpy(), (x - s.min) / (s.max - s.min), atol=1e-5)
    assert not (other / ".vre_statistics.json").exists()


def test_statistics_merge_is_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (500, 2)), rng.normal(-1, 5, (300, 2))
    a[7, 1] = np.nan
    merged = TaskStatistics.of(a).merge(TaskStatistics.of(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(merged.mean, np.nanmean(both, 0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, np.nanstd(both, 0), rtol=1e-12)
    assert merged.count.tolist() == [800, 799]
    assert TaskStatistics.from_json(json.loads(json.dumps(merged.to_json()))).m2.tolist() == merged.m2.tolist()


def test_dataloader_two_workers_same_batches(export):
    from torch.utils.data import DataLoader

    ds = MultiTaskDataset(export, normalization="standardization", cache_statistics=False, progress=False)

    def batches(workers):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=ds.collate_fn,
                            multiprocessing_context="spawn" if workers else None)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert [names for _, names in serial] == [["0", "1", "2"], ["3", "4", "5"], ["6", "7"]]
    assert [names for _, names in parallel] == [names for _, names in serial]
    for (a, _), (b, _) in zip(serial, parallel, strict=True):
        assert list(a) == list(b)
        for task in a:
            assert a[task].dtype == b[task].dtype and np.array_equal(a[task].numpy(), b[task].numpy()), task


def test_statistics_with_dataloader_workers(export):
    serial = MultiTaskDataset(export, ["hsv"], cache_statistics=False, progress=False).compute_statistics()
    workers = MultiTaskDataset(export, ["hsv"], cache_statistics=False, stats_workers=2,
                               progress=False).compute_statistics()
    np.testing.assert_allclose(workers["hsv"].mean, serial["hsv"].mean, rtol=1e-12)
    np.testing.assert_allclose(workers["hsv"].std, serial["hsv"].std, rtol=1e-9)


def test_virtual_tasks_equal_the_exported_ones(export, tmp_path):
    exported = MultiTaskDataset(export, ["buildings", "hsv"], to_tensor=False)
    reduced = tmp_path / "reduced"  # only what the derived tasks are computed from
    shutil.copytree(export, reduced, ignore=shutil.ignore_patterns("semantic", "buildings", "hsv"))
    virtual = MultiTaskDataset(reduced, ["scene", "rgb", "buildings", "hsv2"], to_tensor=False,
                               virtual_tasks={"buildings": None,  # it and `semantic`: their specs from the export's run
                                              "hsv2": {"type": "color/hsv", "dependencies": ["rgb"]}})
    assert virtual.task_types()["buildings"] == "mask/classes" and len(virtual) == 8
    for i in range(len(exported)):
        a, b = exported[i][0], virtual[i][0]
        assert b["buildings"].dtype == np.bool_ and np.array_equal(a["buildings"], b["buildings"])
        assert np.array_equal(a["hsv"], b["hsv2"])
    assert 0 < exported[0][0]["buildings"].mean() < 1
    with pytest.raises(ConfigError, match="virtual task 'grey2' cannot be computed at read time: it reads the "
                                          "video's frames; export it instead"):
        MultiTaskDataset(export, ["rgb", "grey2"], virtual_tasks={"grey2": {"type": "test/grey"}})


@pytest.fixture
def videos(export, tmp_path) -> Path:
    """A folder of three exports (a, b, c), as a multirun with output_root writes them; b lacks frame 7."""
    root = tmp_path / "videos"
    for name in ("a", "b", "c"):
        shutil.copytree(export, root / name)
    for task in TASKS:
        (root / "b" / task / "npz" / "7.npz").unlink()
    return root


def test_folder_of_videos(videos):
    ds = MultiTaskDataset(videos, ["hsv", "depth"])
    assert ds.videos == ["a", "b", "c"] and len(ds) == 23
    assert ds.names[:2] == ["a/0", "a/1"] and ds.names[8] == "b/0" and "b/7" not in ds.names
    data, name = ds["c/3"]
    assert name == "c/3" and np.array_equal(data["hsv"].numpy(), stored(videos / "c", "hsv", 3))
    only = MultiTaskDataset(videos, ["hsv"], videos=["c"])
    assert only.names == [f"c/{f}" for f in FRAMES]
    with pytest.raises(ConfigError, match="video\\(s\\) 'd' not in the dataset; its videos: a, b, c"):
        MultiTaskDataset(videos, videos=["d"])


def test_split_by_video(videos, export):
    ds = MultiTaskDataset(videos, ["hsv", "depth"], normalization="standardization", cache_statistics=False,
                          progress=False)
    parts = ds.split({"train": 2, "test": 1}, seed=3)
    assert sorted(parts["train"].videos + parts["test"].videos) == ["a", "b", "c"]
    assert len(parts["train"].videos) == 2 and not set(parts["train"].videos) & set(parts["test"].videos)
    train_names = {n.split("/")[0] for n in parts["train"].names}
    assert train_names == set(parts["train"].videos)
    assert parts["test"].statistics["hsv"] is parts["train"].statistics["hsv"]  # train statistics applied to test
    assert split_videos(["a", "b", "c"], {"train": 2, "test": 1}, seed=3) == {
        "train": parts["train"].videos, "test": parts["test"].videos}
    assert split_videos([f"v{i}" for i in range(10)], {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0).keys() == {
        "train", "val", "test"}
    with pytest.raises(ConfigError, match="is one export \\(one video\\); a split by video needs a folder of exports"):
        MultiTaskDataset(export).split({"train": 0.5, "test": 0.5})
    with pytest.raises(ConfigError, match="3 video\\(s\\) cannot make 4 splits by video"):
        split_videos(["a", "b", "c"], {"a": 1, "b": 1, "c": 1, "d": 1})


def test_type_not_installed_reads_raw_with_one_warning(export, tmp_path, caplog):
    out = tmp_path / "foreign"
    shutil.copytree(export, out)
    meta_path = out / "depth" / ".repr_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["type"] = "nosuch/depth"
    meta["fingerprint"]["plugin"]["name"] = "vre-nosuch"
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="vrecore.data"):
        ds = MultiTaskDataset(out, ["depth", "hsv"], to_tensor=False)
        items = [ds[i][0]["depth"] for i in range(3)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("task 'depth': type 'nosuch/depth' is not installed here (representation 'depth' "
                                  "has unknown type 'nosuch/depth'; ")
    assert warnings[0].endswith("reading its stored arrays as they are; install vre-nosuch, which provides it, "
                                "to read it through its type")
    assert ds.task_types()["depth"] is None
    assert items[2].shape == (180, 320, 1) and items[2].dtype == np.float32  # float16 read as float32
    assert np.array_equal(items[2][..., 0], stored(out, "depth", 2))


def test_collate_of_numpy_items_without_a_dataset():
    items = [({"x": np.ones((2, 2, 1), np.float32), "y": np.zeros((2, 2), np.int64)}, "0"),
             ({"x": None, "y": None}, "1")]
    batch, names = collate(items)
    assert names == ["0", "1"] and np.isnan(batch["x"][1]).all() and (batch["y"][1] == -1).all()


def test_importing_vrecore_data_imports_no_torch():
    code = ("import sys, vrecore, vrecore.data; from vrecore.data import MultiTaskDataset, collate; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("fmt", ["webdataset", "zarr"])
def test_pack_and_read_the_pack(videos, tmp_path, fmt):
    pytest.importorskip(fmt)
    from vrecore.data import pack

    dest = tmp_path / f"packed-{fmt}"
    if fmt == "zarr":  # a pack of a folder of exports in the layout vre wrote before the zarr store: still read
        from tests.old_zarr_pack import write_old_zarr_pack

        write_old_zarr_pack(videos, dest, tasks=["hsv", "depth", "semantic"])
        with pytest.raises(ConfigError, match="a zarr store holds one export"):
            pack(videos, tmp_path / "new.zarr", fmt)
    else:
        summary = pack(videos, dest, fmt, tasks=["hsv", "depth", "semantic"], shard_size=5, progress=False)
        assert summary["videos"]["b"] == {"hsv": 7, "depth": 7, "semantic": 7}
    original = MultiTaskDataset(videos, ["hsv", "depth", "semantic"], to_tensor=False)
    packed = MultiTaskDataset(dest, to_tensor=False)
    assert packed.names == original.names and packed.task_types() == original.task_types()
    for i in (0, 9, 22):
        a, b = original[i][0], packed[i][0]
        for task in a:
            assert a[task].dtype == b[task].dtype and np.array_equal(a[task], b[task]), (i, task)
    if fmt == "webdataset":
        with pytest.raises(ConfigError, match="exists; choose another destination or pass --overwrite"):
            pack(videos, dest, fmt)
        import webdataset as wds

        shards = sorted(str(p) for p in dest.glob("shard-*.tar"))
        assert len(shards) == 5  # 23 samples, 5 per shard
        samples = list(wds.WebDataset(shards, shardshuffle=False).decode())
        assert len(samples) == 23 and {s["__key__"] for s in samples} == set(original.names)
        sample = next(s for s in samples if s["__key__"] == "a/4")
        assert np.array_equal(sample["hsv.npy"], stored(videos / "a", "hsv", 4))
        assert [s["__key__"] for s in samples] != sorted(s["__key__"] for s in samples)  # shuffled across shards


def test_vre_read_cli(holes, capsys):
    from vrecore.cli.app import main

    assert main(["read", str(holes), "--stats"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{holes}: 8 items, 1 video(s)"
    rows = {line.split()[0]: line.split() for line in out[2:8]}
    assert rows["depth"][1:5] == ["test/grey", "180x320x1", "float32", "7"] and rows["depth"][5] == "3"
    assert rows["semantic"][1:6] == ["semantic/map", "(classes)", "180x320", "int64", "7"]
    assert rows["semantic"][6] == "5"
    assert rows["hsv"][-1] == "-"
    assert "statistics (per channel):" in out
    mean = next(line for line in out if line.split()[:2] == ["hsv", "mean"])
    ref = numpy_stats(holes, "hsv", FRAMES)["mean"]
    np.testing.assert_allclose([float(v) for v in mean.split()[2:]], ref, rtol=1e-5)
    assert main(["read", str(holes / "nothing")]) == 2
    assert "vre read: error: dataset path" in capsys.readouterr().err


def test_vre_pack_cli(export, tmp_path, capsys):
    pytest.importorskip("zarr")
    from vrecore.cli.app import main

    dest = tmp_path / "out.zarr"
    assert main(["pack", str(export), "--to", "zarr", "-o", str(dest)]) == 0
    assert f"vre pack: wrote 6 array(s) to {dest}" in capsys.readouterr().err
    assert MultiTaskDataset(dest).names == [str(f) for f in FRAMES]
    assert main(["pack", str(export), "--to", "zarr", "-o", str(dest)]) == 2
    assert "vre pack: error: " in capsys.readouterr().err


def test_an_export_of_previews_only_is_refused(tmp_path):
    (tmp_path / "x" / "jpg").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"task\(s\) \(none\) not stored in .*; stored tasks: none"):
        MultiTaskDataset(tmp_path)


def test_read_npz_into(tmp_path):
    from vrecore.data.sources import read_npz_into

    array = np.random.default_rng(1).random((6, 5, 3)).astype(np.float32)
    plain, deflated, numpy_made, numpy_deflated = (tmp_path / f"{n}.npz" for n in "abcd")
    write_npz(plain, array)
    write_npz(deflated, array, compress=True)
    np.savez(numpy_made, array)
    np.savez_compressed(numpy_deflated, array)
    for path in (plain, deflated, numpy_made, numpy_deflated):
        out = np.zeros_like(array)
        assert read_npz_into(path, out) and np.array_equal(out, array), path.name
    for path in (plain, deflated):
        assert not read_npz_into(path, np.zeros((6, 5, 3), np.float16))  # another dtype: the caller converts
        assert not read_npz_into(path, np.zeros((6, 5, 2), np.float32))
        assert not read_npz_into(path, np.zeros((6, 10, 3), np.float32)[:, ::2])  # not contiguous
    data = plain.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2] + data[-200:])  # array data cut short
    with pytest.raises(ValueError, match="truncated npz"):
        read_npz_into(tmp_path / "cut.npz", np.zeros_like(array))
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 1  # one bit of the array data, same size: only the CRC tells
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="CRC-32 mismatch"):
        read_npz_into(tmp_path / "flip.npz", np.zeros_like(array))


def test_a_damaged_frame_is_one_error_naming_the_file(export, tmp_path):
    from vrecore.errors import StorageError

    out = tmp_path / "damaged"
    shutil.copytree(export, out)
    path = out / "hsv" / "npz" / "2.npz"
    path.write_bytes(path.read_bytes()[:1000])
    ds = MultiTaskDataset(out, ["hsv"])
    for read in (lambda: ds[2], lambda: ds[[1, 2]]):
        with pytest.raises(StorageError, match=re.escape(f"{path} cannot be read (") + ".*" +
                           re.escape(f"`vre verify {out} --repair` moves damaged frames aside")):
            read()


def test_every_name_vrecore_data_exports_is_that_name_even_after_its_modules_are_imported():
    """A sub-module named like an exported name (``collate``) would replace that name in the package."""
    import importlib
    import pkgutil
    import types

    import vrecore.data

    for module in pkgutil.iter_modules(vrecore.data.__path__):
        importlib.import_module(f"vrecore.data.{module.name}")
    assert [n for n in vrecore.data.__all__ if isinstance(getattr(vrecore.data, n), types.ModuleType)] == []
