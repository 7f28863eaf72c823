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
