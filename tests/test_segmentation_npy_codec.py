"""iou_audit.table.npy_codec against FiftyOne's own reader (``fiftyone.core.utils.deserialize_numpy_array``)
on the arrays FiftyOne serializes (label maps of every dtype, Fortran order, RGB, empty, 0-d, floats),
with libdeflate and with zlib, header cache cold and warm."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from fiftyone.core.utils import deserialize_numpy_array, serialize_numpy_array

import iou_audit.table.npy_codec as codec


def _arrays():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 9, (5, 7)).astype(np.uint8),
            np.asfortranarray(rng.integers(0, 900, (5, 7)).astype(np.uint16)),
            rng.integers(0, 255, (3, 4, 3)).astype(np.uint8),
            np.zeros((0, 3), np.uint8),
            rng.random((4, 4)) > 0.5,
            rng.integers(0, 1 << 20, (6, 2)).astype(">i4"),
            np.array(5, np.int64),
            rng.random((300, 301)).astype(np.float32),
            np.kron(rng.integers(0, 8, (16, 16)), np.ones((32, 32), int)).astype(np.uint8)]


@pytest.mark.parametrize("libdeflate", [True, False])
def test_deserialize_array_equals_fiftyone(monkeypatch, libdeflate):
    if libdeflate and codec._LIB is None:
        pytest.skip("libdeflate is not installed")
    monkeypatch.setattr(codec, "USE_LIBDEFLATE", libdeflate)
    monkeypatch.setattr(codec, "_HEADERS", {})
    assert codec.have_libdeflate() == libdeflate
    for _ in range(2):  # the second round reads every header from the cache
        for arr in _arrays():
            data = serialize_numpy_array(arr)
            got, want = codec.deserialize_array(data), deserialize_numpy_array(data)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.isfortran(got) == np.isfortran(want)
            assert np.array_equal(got, want)


def test_inflate_grows_its_buffer_and_refuses_bad_data(monkeypatch):
    monkeypatch.setattr(codec, "_SIZE_HINT", [1024])
    payload = np.random.default_rng(1).integers(0, 4, 200_000).astype(np.uint8).tobytes()
    assert bytes(codec.inflate(zlib.compress(payload))) == payload  # far beyond the first buffer
    with pytest.raises((ValueError, zlib.error)):
        codec.inflate(b"not zlib data at all")
    with pytest.raises(ValueError, match="not numpy"):
        codec.deserialize_array(zlib.compress(b"plain bytes, no npy header"))


@pytest.mark.parametrize("libdeflate", [True, False])
def test_serialize_array_is_read_back_by_fiftyone(monkeypatch, libdeflate):
    if libdeflate and codec._LIB is None:
        pytest.skip("libdeflate is not installed")
    monkeypatch.setattr(codec, "USE_LIBDEFLATE", libdeflate)
    for arr in _arrays():
        got = deserialize_numpy_array(codec.serialize_array(arr))
        assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)
        assert np.isfortran(got) == np.isfortran(arr)


def test_run_deflate_streams_are_read_back_by_zlib_and_fiftyone():
    """deflate_runs writes valid zlib streams (every length code, both distances, distances with
    extra bits, beyond deflate's window) and serialize_label_map what FiftyOne's reader loads."""
    from iou_audit.table.run_deflate import deflate_runs, npy_bytes, serialize_label_map

    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(0, 4000))
        data = rng.integers(0, int(rng.integers(1, 4)), n).astype(np.uint8)
        if trial % 3 == 0:
            data = np.repeat(data[:max(1, n // 37)], 37)[:n]
        if trial % 5 == 0:
            data = rng.integers(0, 256, n).astype(np.uint8)
        row = int(rng.integers(0, 300))
        assert zlib.decompress(deflate_runs(data.tobytes(), row)) == data.tobytes()
    wide = np.zeros(70000, np.uint8)
    wide[::7] = 1
    for row in (30000, 32768, 40000):  # the last is beyond the window: runs only
        assert zlib.decompress(deflate_runs(wide, row)) == wide.tobytes()
    import io

    for arr in _arrays() + [np.zeros((33, 34), bool), rng.integers(0, 3, (4, 4, 3)).astype(np.uint8)]:
        if arr.ndim not in (2, 3) or not (arr.dtype == bool or arr.dtype.kind == "u"):
            continue
        f = io.BytesIO()
        np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
        assert npy_bytes(arr) == f.getvalue()  # np.save's bytes
        got = deserialize_numpy_array(serialize_label_map(arr))
        assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)


def test_stored_array_header_is_numpy_s():
    for arr in _arrays():
        dtype, shape, fortran = codec.stored_array_header(serialize_numpy_array(arr))
        assert dtype == arr.dtype and shape == arr.shape and fortran == (arr.ndim > 1 and np.isfortran(arr))
