"""Faults of `vre pack` and the reader (issue 19): --overwrite replaces only a pack, a failed pack leaves
nothing, a damaged pack is one line, a crafted npz cannot make the reader inflate more than a frame, and
the Python API and `vre read` refuse bad arguments in one line."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from vrecore.cli.app import main
from vrecore.errors import ConfigError, StorageError, VreError

CLIP = Path(__file__).parents[1] / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"
FRAME = (360, 640, 3)  # the shipped clip's frames: rgb uint8, hsv float32


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Three frames of the shipped clip, exported as `vre export` does by default (rgb, hsv)."""
    out = tmp_path_factory.mktemp("faults") / "exp"
    subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", f"video={CLIP}", f"output_dir={out}",
                    "frames=0..3"], check=True, capture_output=True)
    return out


def tree(path: Path) -> dict[str, str]:
    """Every entry below ``path`` (and ``path`` itself): kind and content digest, symlinks not followed."""
    out: dict[str, str] = {}
    if not path.exists() and not path.is_symlink():
        return out
    entries = [path] if not path.is_dir() or path.is_symlink() else [path, *path.rglob("*")]
    for p in entries:
        key = str(p.relative_to(path.parent))
        if p.is_symlink():
            out[key] = "link " + os.readlink(p)
        elif p.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_error(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"vre {command}: error: "), err
    return err[0]


def pack(capsys, *args: str) -> int:
    capsys.readouterr()
    return main(["pack", *map(str, args)])


# -- item 1: --overwrite replaces only what vre pack made; a pack appears whole or not at all ------------------
def test_overwrite_refuses_the_folder_that_holds_the_export(export, tmp_path, capsys):
    anc = tmp_path / "anc"
    anc.mkdir()
    shutil.copytree(export, anc / "exp")
    (anc / "other.txt").write_text("mine")
    before = tree(anc)
    assert pack(capsys, anc / "exp", "--to", "webdataset", "-o", anc, "--overwrite") == 2
    line = one_error(capsys, "pack")
    assert f"'{anc}' was not made by `vre pack`" in line and "refusing to replace it" in line
    assert tree(anc) == before


def test_overwrite_refuses_a_folder_of_unrelated_files(export, tmp_path, capsys):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "notes.txt").write_text("keep")
    (home / "photos" / "a.jpg").write_bytes(b"\xff\xd8jpeg")
    before = tree(home)
    for fmt in ("webdataset", "zarr"):
        assert pack(capsys, export, "--to", fmt, "-o", home, "--overwrite") == 2
        assert f"'{home}' was not made by `vre pack`" in one_error(capsys, "pack")
        assert tree(home) == before


def test_overwrite_refuses_a_video_file(export, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(CLIP, clip)
    before = tree(tmp_path)
    assert pack(capsys, export, "--to", "zarr", "-o", clip, "--overwrite") == 2
    assert f"'{clip}' was not made by `vre pack`" in one_error(capsys, "pack")
    assert tree(tmp_path) == before


def test_overwrite_refuses_a_pack_holding_other_files(export, tmp_path, capsys):
    dest = tmp_path / "packed"
    assert pack(capsys, export, "--to", "webdataset", "-o", dest) == 0
    (dest / "my-notes.txt").write_text("added by the user")
    before = tree(tmp_path)
    assert pack(capsys, export, "--to", "webdataset", "-o", dest, "--overwrite") == 2
    line = one_error(capsys, "pack")
    assert "holds 'my-notes.txt', which `vre pack` did not write" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fmt", ["webdataset", "zarr"])
def test_overwrite_replaces_a_previous_pack(export, tmp_path, capsys, fmt):
    from vrecore.data import MultiTaskDataset

    dest = tmp_path / ("packed.zarr" if fmt == "zarr" else "packed")
    assert pack(capsys, export, "--to", fmt, "-o", dest, "--tasks", "rgb") == 0
    manifest = json.loads((dest / "vre_pack_manifest.json").read_text())
    assert manifest["tool"] == "vre pack" and manifest["format"] == fmt and manifest["source"] == str(export.resolve())
    assert manifest["created"]
    MultiTaskDataset(dest, to_tensor=False).compute_statistics()  # the reader's cache file may sit in a pack
    assert pack(capsys, export, "--to", fmt, "-o", dest, "--overwrite") == 0
    packed = MultiTaskDataset(dest, to_tensor=False)
    assert packed.task_names == ["hsv", "rgb"] and len(packed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]  # no temporary or old pack left beside it


@pytest.mark.parametrize("fmt", ["webdataset", "zarr"])
def test_a_pack_that_fails_midway_leaves_nothing(export, tmp_path, capsys, fmt):
    damaged = tmp_path / "exp"
    shutil.copytree(export, damaged)
    frame = damaged / "hsv" / "npz" / "1.npz"
    frame.write_bytes(frame.read_bytes()[:500])  # unreadable: the pack stops in the middle
    before = tree(tmp_path)
    suffix = ".zarr" if fmt == "zarr" else ""
    assert pack(capsys, damaged, "--to", fmt, "-o", tmp_path / f"new{suffix}") == 1
    assert f"{frame} cannot be read" in one_error(capsys, "pack")
    assert tree(tmp_path) == before  # no partial shard, no zarr.json, no temporary folder

    previous = tmp_path / f"previous{suffix}"
    assert pack(capsys, export, "--to", fmt, "-o", previous) == 0
    before = tree(tmp_path)
    assert pack(capsys, damaged, "--to", fmt, "-o", previous, "--overwrite") == 1
    assert f"{frame} cannot be read" in one_error(capsys, "pack")
    assert tree(tmp_path) == before  # the previous pack intact


def test_a_read_only_destination_is_one_line(export, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "kept.txt").write_text("kept")
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes through file modes: make the folder refuse as a read-only mount would
        real_mkdir, real_open = os.mkdir, os.open

        def refuse(path, *args, **kwargs):
            if Path(path).parent == ro:
                raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: refuse(p) or real_mkdir(p, *a, **k))
        monkeypatch.setattr(os, "open", lambda p, *a, **k: refuse(p) or real_open(p, *a, **k))
    try:
        before = tree(ro)
        for fmt in ("webdataset", "zarr"):
            code = pack(capsys, export, "--to", fmt, "-o", ro / ("packed.zarr" if fmt == "zarr" else "packed"))
            assert code != 0
            line = one_error(capsys, "pack")
            assert "cannot be written" in line and "Permission denied" in line
            assert tree(ro) == before
    finally:
        ro.chmod(0o755)


def test_reading_a_partial_or_foreign_zarr_is_one_line(export, tmp_path, capsys):
    import zarr
    from tests.old_zarr_pack import write_old_zarr_pack

    dest = tmp_path / "packed.zarr"
    write_old_zarr_pack(export, dest)  # the layout vre packed to before the zarr store
    shutil.rmtree(dest / "exp" / "hsv")  # what an interrupted pack of an earlier vre left
    capsys.readouterr()
    assert main(["read", str(dest)]) == 2
    assert "has no array 'exp/hsv'" in one_error(capsys, "read")
    with pytest.raises(ConfigError, match="has no array 'exp/hsv'"):
        from vrecore.data import MultiTaskDataset

        MultiTaskDataset(dest)

    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w", attributes={"vre": {"format": "vre-pack", "version": 1}})
    assert main(["read", str(foreign)]) == 2
    assert "describes no videos" in one_error(capsys, "read")


# -- item 5: a crafted npz cannot make the reader inflate more than the frame it should hold ------------------
def crafted_npz(path: Path, shape: tuple[int, ...], dtype: str, data: Iterable[bytes], *,
                declared: int | None = None) -> None:
    """An npz whose member's npy header says ``shape``/``dtype`` and whose deflated data is ``data``;
    ``declared``: the member size its zip directory states (default: the true one)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                  "shape": shape})
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc, size = [c.compress(header.getvalue())], zlib.crc32(header.getvalue()), len(header.getvalue())
    for chunk in data:
        parts.append(c.compress(chunk))
        crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    parts.append(c.flush())
    payload, size = b"".join(parts), size if declared is None else declared
    name = b"arr_0.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 33, crc, len(payload), size, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 33, crc, len(payload), size,
                          len(name), 0, 0, 0, 0, 0o644 << 16, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(payload), 0)
    path.write_bytes(local + payload + central + end)


ZEROS_MB = 64


def zeros(mb: int = ZEROS_MB) -> Iterable[bytes]:
    block = bytes(1 << 20)
    return (block for _ in range(mb))


def refused_within(read) -> tuple[StorageError, float]:
    """The StorageError ``read()`` raises, and the peak of memory it allocated meanwhile (MB)."""
    tracemalloc.start()
    try:
        with pytest.raises(StorageError) as e:
            read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return e.value, peak / 2**20


@pytest.fixture
def bombed(export, tmp_path) -> Path:
    out = tmp_path / "exp"
    shutil.copytree(export, out)
    return out


@pytest.mark.parametrize("frame", [0, 1])  # 0: the first frame (the reader's template), 1: a later one
def test_a_member_declaring_a_huge_shape_is_refused_before_inflating(bombed, frame):
    from vrecore.data import MultiTaskDataset

    path = bombed / "hsv" / "npz" / f"{frame}.npz"
    rows = ZEROS_MB * 2**20 // (640 * 3 * 4)
    crafted_npz(path, (rows, 640, 3), "<f4", zeros())
    assert path.stat().st_size < 2**20  # small on disk
    reads = [lambda: MultiTaskDataset(bombed, ["hsv"], to_tensor=False)[frame]]
    if frame == 1:
        ds = MultiTaskDataset(bombed, ["hsv"], to_tensor=False)
        reads += [lambda: ds[[0, 1, 2]], lambda: ds.get_item(1)]  # a DataLoader's batch, and one item
    for read in reads:
        error, peak = refused_within(read)
        assert peak < 24  # a frame of hsv is 2.6 MB; the member claims 64
        message = str(error)
        assert message.startswith(f"{path} cannot be read (its array is float32 ({rows}, 640, 3), the representation "
                                  f"stores float32 (360, 640, 3))") and "\n" not in message


def test_a_member_inflating_past_its_array_is_refused(bombed):
    from vrecore.data import MultiTaskDataset

    path = bombed / "hsv" / "npz" / "1.npz"
    nbytes = int(np.prod(FRAME)) * 4
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": FRAME})
    crafted_npz(path, FRAME, "<f4", zeros(), declared=len(header.getvalue()) + nbytes)  # 64 MB of data behind a 2.6 MB array
    ds = MultiTaskDataset(bombed, ["hsv"], to_tensor=False)
    for read in (lambda: ds[[0, 1]], lambda: ds.get_item(1)):
        error, peak = refused_within(read)
        assert peak < 24
        assert "holds more data than its array" in str(error)


def test_a_member_with_trailing_bytes_is_refused(bombed):
    from vrecore.data import MultiTaskDataset

    path = bombed / "hsv" / "npz" / "2.npz"
    crafted_npz(path, FRAME, "<f4", [bytes(int(np.prod(FRAME)) * 4), b"trailing"])
    ds = MultiTaskDataset(bombed, ["hsv"], to_tensor=False)
    for read in (lambda: ds[[1, 2]], lambda: ds.get_item(2)):
        with pytest.raises(StorageError, match="holds .* bytes after its array"):
            read()


def test_load_npz_refuses_a_member_declaring_more_than_expected(tmp_path):
    from vrecore.store.npz import load_npz, write_npz

    array = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    for compress in (False, True):
        write_npz(tmp_path / "a.npz", array, compress=compress)
        np.testing.assert_array_equal(load_npz(tmp_path / "a.npz", expected=((2, 4, 3), np.dtype("float32"))), array)
        with pytest.raises(ValueError, match=r"its array is float32 \(2, 4, 3\), the representation stores float32 "
                                             r"\(2, 4, 2\)"):
            load_npz(tmp_path / "a.npz", expected=((2, 4, 2), np.dtype("float32")))
    crafted_npz(tmp_path / "b.npz", (40000, 40000), "<f8", zeros(1))
    with pytest.raises(ValueError, match=r"its array is float64 \(40000, 40000\)"):
        load_npz(tmp_path / "b.npz", expected=((2, 4, 3), np.dtype("float32")))


# -- item 10: the Python API refuses bad arguments at construction; item 11: vre read --workers -------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"normalization": 5}, r"normalization must be None, 'min_max', 'standardization' or \{task: mode\}, got 5"),
    ({"normalization": ["min_max"]}, r"normalization must be None, .* got \['min_max'\]"),
    ({"normalization": {"hsv": 3}}, r"normalization 3 \(task 'hsv'\) is not one of None, min_max, standardization"),
    ({"normalization": "min_max", "statistics": {"hsv": "x"}},
     r"statistics\['hsv'\] must be a TaskStatistics \(e.g. another dataset's .statistics\), got 'x'"),
    ({"statistics": ["hsv"]}, r"statistics must be \{task: TaskStatistics\}, got \['hsv'\]"),
    ({"stats_workers": -3}, r"stats_workers must be 0 or more, got -3"),
])
def test_bad_dataset_arguments_are_one_vre_error_at_construction(export, kwargs, match):
    from vrecore.data import MultiTaskDataset

    with pytest.raises(VreError, match=match) as e:
        MultiTaskDataset(export, **kwargs)
    assert isinstance(e.value, ConfigError) and "\n" not in str(e.value)


def test_a_string_of_tasks_is_one_task(export):
    from vrecore.data import MultiTaskDataset

    assert MultiTaskDataset(export, "rgb", to_tensor=False).task_names == ["rgb"]
    assert MultiTaskDataset(export, "hsv", to_tensor=False)[0][0]["hsv"].shape == FRAME


def test_vre_read_refuses_negative_workers(export, capsys):
    before = tree(export)
    assert main(["read", str(export), "--stats", "--workers", "-3"]) == 2
    assert one_error(capsys, "read") == "vre read: error: --workers must be 0 or more, got -3"
    assert tree(export) == before


def test_a_webdataset_member_declaring_more_than_it_holds_is_refused(export, tmp_path, capsys):
    from vrecore.data import MultiTaskDataset

    dest = tmp_path / "packed"
    assert pack(capsys, export, "--to", "webdataset", "-o", dest, "--tasks", "hsv", "--no-shuffle") == 0
    shard, offset, size = json.loads((dest / "vre_pack.json").read_text())["videos"]["exp"]["tasks"]["hsv"][
        "members"][1]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (360 * 2**14, 640, 3)})  # 45 GB claimed
    data = bytearray((dest / shard).read_bytes())
    assert data[offset:offset + 6] == b"\x93NUMPY" and len(header.getvalue()) == 128
    data[offset:offset + 128] = header.getvalue()  # same header size: the tar stays valid
    (dest / shard).write_bytes(bytes(data))
    ds = MultiTaskDataset(dest, to_tensor=False)
    error, peak = refused_within(lambda: ds[1])
    assert peak < 24 and f"{dest / shard}: the member of frame 1 of task 'hsv' cannot be read (truncated" in str(error)
