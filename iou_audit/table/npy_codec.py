"""FiftyOne's stored numpy arrays (``Segmentation.mask``, ``Heatmap.map``, instance masks), read and written fast.

FiftyOne stores an array as ``zlib.compress(np.save(array))`` (``fiftyone.core.utils.serialize_numpy_array``)
and reads it with ``np.load(BytesIO(zlib.decompress(data)))``. :func:`deserialize_array` returns the
same array, faster:

- the zlib stream is inflated by the system's libdeflate (``libdeflate_zlib_decompress`` through
  ctypes, which releases the GIL; about 5x zlib's speed on label maps) when the library is
  installed, else by ``zlib.decompress``; the output buffer starts at the last array's size (the
  masks of a field usually share one), so it is not grown and copied;
- an ``.npy`` header seen before is not parsed again (``np.load`` parses it each time): the array is
  a view of the inflated buffer at the header's offset.

:func:`serialize_array` writes the format (``np.save`` bytes, deflated at ``WRITE_LEVEL`` 1 by
libdeflate or zlib: 3-5x faster than ``serialize_numpy_array``'s zlib level 6, about 1.4x its bytes on
noisy maps). Set ``USE_LIBDEFLATE = False`` to force zlib.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import zlib

import numpy as np

USE_LIBDEFLATE = True

_NPY_MAGIC = b"\x93NUMPY"
_HEADERS: dict[bytes, tuple] = {}  # .npy header bytes -> (dtype, shape, order, data offset)
_MAX_HEADERS = 256
_SIZE_HINT = [1 << 16]  # the last inflated size (a race between threads only costs a retry)


def _load_libdeflate():
    name = ctypes.util.find_library("deflate")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_decompressor.argtypes = []
        lib.libdeflate_free_decompressor.restype = None
        lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
        lib.libdeflate_zlib_decompress.restype = ctypes.c_int
        lib.libdeflate_zlib_decompress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                                   ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
        lib.libdeflate_free_compressor.restype = None
        lib.libdeflate_free_compressor.argtypes = [ctypes.c_void_p]
        lib.libdeflate_zlib_compress_bound.restype = ctypes.c_size_t
        lib.libdeflate_zlib_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.libdeflate_zlib_compress.restype = ctypes.c_size_t
        lib.libdeflate_zlib_compress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                                 ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load_libdeflate()
_LIBDEFLATE_SUCCESS, _LIBDEFLATE_BAD_DATA, _LIBDEFLATE_INSUFFICIENT_SPACE = 0, 1, 3


class _Decompressor:
    """One libdeflate decompressor per thread (they are not thread-safe), freed with the thread."""

    def __init__(self):
        self._free = _LIB.libdeflate_free_decompressor  # kept: module globals are gone at exit
        self.handle = _LIB.libdeflate_alloc_decompressor()
        if not self.handle:
            raise MemoryError("libdeflate_alloc_decompressor failed")

    def __del__(self):
        if getattr(self, "handle", None):
            self._free(self.handle)
            self.handle = None


class _Compressor:
    """One libdeflate compressor per thread and level, freed with the thread."""

    def __init__(self, level: int):
        self._free = _LIB.libdeflate_free_compressor
        self.handle = _LIB.libdeflate_alloc_compressor(level)
        if not self.handle:
            raise MemoryError("libdeflate_alloc_compressor failed")

    def __del__(self):
        if getattr(self, "handle", None):
            self._free(self.handle)
            self.handle = None


_local = threading.local()
WRITE_LEVEL = 1  # deflate level of the arrays written: 3-5x faster than zlib's default 6, ~1.4x the bytes


def have_libdeflate() -> bool:
    """Whether :func:`inflate` uses libdeflate (installed and not switched off)."""
    return _LIB is not None and USE_LIBDEFLATE


def inflate(data: bytes, scratch: int | None = None) -> np.ndarray | bytes:
    """The inflated bytes of a zlib stream: a uint8 array (libdeflate) or bytes (zlib).

    ``scratch`` (an int naming a slot): inflate into this thread's reusable buffer of that slot, so
    decoding mask after mask touches no new memory (no page faults, the buffer stays in cache); the
    result is then a view that the next call with the same slot overwrites (use it before that).

    Example:
        >>> bytes(inflate(zlib.compress(b"abc")))
        b'abc'
    """
    if not have_libdeflate():
        raw = zlib.decompress(data, bufsize=_SIZE_HINT[0])
        _SIZE_HINT[0] = max(len(raw), 1024)
        return raw
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = _Decompressor()
    size = max(_SIZE_HINT[0], 4 * len(data), 1024)
    got = ctypes.c_size_t()
    buffers = None
    if scratch is not None:
        buffers = getattr(_local, "scratch", None)
        if buffers is None:
            buffers = _local.scratch = {}
        held = buffers.get(scratch)
        size = max(size, 0 if held is None else held.size)
    while True:
        out = None if buffers is None else buffers.get(scratch)
        if out is None or out.size < size:
            out = np.empty(size, np.uint8)
            if buffers is not None:
                buffers[scratch] = out
        status = _LIB.libdeflate_zlib_decompress(dec.handle, data, len(data), out.ctypes.data, size,
                                                 ctypes.byref(got))
        if status == _LIBDEFLATE_SUCCESS:
            break
        if status != _LIBDEFLATE_INSUFFICIENT_SPACE:
            raise ValueError("a stored array is not valid zlib data")
        size *= 2
    n = got.value
    _SIZE_HINT[0] = max(n, 1024)
    if buffers is not None:
        return out[:n]
    return out[:n] if n > size // 2 else out[:n].copy()  # do not hold a mostly empty buffer


def deflate(raw: bytes, level: int = WRITE_LEVEL) -> bytes:
    """A zlib stream of ``raw`` (libdeflate when available, else ``zlib.compress``); any zlib reader,
    FiftyOne's included, inflates it to ``raw``.

    Example:
        >>> zlib.decompress(deflate(b"abc" * 100)) == b"abc" * 100
        True
    """
    if not have_libdeflate():
        return zlib.compress(raw, level)
    comps = getattr(_local, "compressors", None)
    if comps is None:
        comps = _local.compressors = {}
    comp = comps.get(level)
    if comp is None:
        comp = comps[level] = _Compressor(level)
    out = np.empty(_LIB.libdeflate_zlib_compress_bound(comp.handle, len(raw)), np.uint8)
    n = _LIB.libdeflate_zlib_compress(comp.handle, raw, len(raw), out.ctypes.data, out.size)
    if not n:  # pragma: no cover - the bound always fits
        return zlib.compress(raw, level)
    return out[:n].tobytes()


def serialize_array(array: np.ndarray, level: int = WRITE_LEVEL) -> bytes:
    """An array as FiftyOne stores it: ``np.save`` bytes, deflated (``serialize_numpy_array`` uses
    zlib's level 6; the bytes differ, the array they inflate to does not).

    Example:
        >>> from fiftyone.core.utils import deserialize_numpy_array
        >>> deserialize_numpy_array(serialize_array(np.eye(2, dtype=np.uint8))).tolist()
        [[1, 0], [0, 1]]
    """
    import io

    with io.BytesIO() as f:
        np.save(f, np.asarray(array), allow_pickle=False)
        return deflate(f.getvalue(), level)


def deserialize_array(data: bytes, scratch: int | None = None) -> np.ndarray:
    """``fiftyone.core.utils.deserialize_numpy_array(data)`` (zlib'd ``np.save`` bytes), faster (see
    the module docstring); the same dtype, shape, memory order and values.

    Example:
        >>> from fiftyone.core.utils import serialize_numpy_array
        >>> deserialize_array(serialize_numpy_array(np.array([[1, 2]], np.uint8))).tolist()
        [[1, 2]]

    ``scratch``: inflate into a reusable per-thread buffer (see :func:`inflate`); the array is then a
    view valid until the next call with the same slot in this thread.
    """
    raw = inflate(data, scratch)
    head = bytes(raw[:12])
    # .npy: magic (6 bytes), version (2), header length (2 bytes little-endian in v1, 4 in v2/v3)
    if head[:6] != _NPY_MAGIC or len(head) < 10:
        raise ValueError("a stored array is not numpy .npy data")
    start = 10 if head[6] == 1 else 12
    end = start + int.from_bytes(head[8:start], "little")
    key = bytes(raw[:end])
    meta = _HEADERS.get(key)
    if meta is None:
        import io

        with io.BytesIO(raw if isinstance(raw, bytes) else raw.tobytes()) as f:
            arr = np.load(f, allow_pickle=False)
        if len(_HEADERS) < _MAX_HEADERS:
            _HEADERS[key] = (arr.dtype, arr.shape, "F" if arr.ndim > 1 and np.isfortran(arr) else "C", end)
        return arr
    dtype, shape, order, offset = meta
    count = int(np.prod(shape, dtype=np.int64))
    if isinstance(raw, bytes):
        flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    else:
        flat = raw[offset:offset + count * dtype.itemsize].view(dtype)
    return flat.reshape(shape, order=order)


def stored_array_header(data: bytes) -> tuple[np.dtype, tuple, bool]:
    """``(dtype, shape, fortran_order)`` of a stored array, from its first inflated bytes only.

    Example:
        >>> from fiftyone.core.utils import serialize_numpy_array
        >>> stored_array_header(serialize_numpy_array(np.zeros((3, 4), np.uint16)))
        (dtype('uint16'), (3, 4), False)
    """
    import ast

    head = zlib.decompressobj().decompress(data, 4096)
    if head[:6] != _NPY_MAGIC or len(head) < 10:
        raise ValueError("a stored array is not numpy .npy data")
    start = 10 if head[6] == 1 else 12
    end = start + int.from_bytes(head[8:start], "little")
    meta = ast.literal_eval(head[start:end].decode("latin1"))
    return np.dtype(meta["descr"]), tuple(meta["shape"]), bool(meta["fortran_order"])
