"""The npz writer: files load with plain numpy (no pickle) for every dtype, compressed or not."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from vrecore.store.npz import load_npz, write_npz


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32", "bool", "int32", "uint16"])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    a = (rng.random((37, 53, 3)) * 100).astype(dtype)
    path = tmp_path / "x.npz"
    write_npz(path, a, compress=compress)
    with np.load(path, allow_pickle=False) as z:
        assert z.files == ["arr_0"]
        np.testing.assert_array_equal(z["arr_0"], a)
        assert z["arr_0"].dtype == a.dtype
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.infolist()[0].compress_type == (zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)


def test_non_contiguous_and_empty(tmp_path):
    a = np.arange(60, dtype=np.float32).reshape(5, 12)[:, ::2]
    write_npz(tmp_path / "a.npz", a, compress=True)
    np.testing.assert_array_equal(load_npz(tmp_path / "a.npz"), a)
    write_npz(tmp_path / "e.npz", np.zeros((0, 3), np.uint8))
    assert load_npz(tmp_path / "e.npz").shape == (0, 3)


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        write_npz(tmp_path / "o.npz", np.array([{"a": 1}], dtype=object))


def test_compression_shrinks_masks(tmp_path):
    a = np.zeros((540, 960), bool)
    a[100:300, 200:700] = True
    write_npz(tmp_path / "c.npz", a, compress=True)
    write_npz(tmp_path / "u.npz", a)
    assert (tmp_path / "c.npz").stat().st_size < (tmp_path / "u.npz").stat().st_size / 20


def test_malloc_tuning_applies_on_glibc():
    import platform

    from vrecore._malloc import tune_malloc_for_frames

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_malloc_for_frames() is expected
