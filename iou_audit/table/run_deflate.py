"""A fast zlib encoder for label maps: deflate with only run-length and row-above matches.

Label maps (a consensus, a disagreement heatmap, a region's instance mask) are mostly runs of one
value and rows that repeat the row above. A general deflate compressor searches a hash table of
earlier strings at each position and, for a small input, first clears that table (libdeflate's
level 1 takes ~50 us on a 1 KB region mask, ~1.4 ms on a 512 x 512 heatmap). :func:`deflate_runs`
tries only two earlier copies at each position, the previous byte (distance 1: a run) and the byte
one row above (distance ``row``), takes the longer match (>= 3 bytes, <= 258) or else a literal,
and writes one final block with deflate's fixed Huffman codes (RFC 1951, 3.2.6) in a zlib wrapper
(RFC 1950; Adler-32 by ``zlib.adler32``). One compiled pass without the GIL; any zlib reader
(``zlib.decompress``, FiftyOne's ``deserialize_numpy_array``) inflates it to the same bytes. The
output is larger than a searching compressor's on noisy maps (no dynamic Huffman codes, no other
distances) and about as small on blocky ones.

:func:`npy_bytes` is ``np.save``'s bytes of an array (version 1.0 header, 64-byte aligned) built
without ``np.save``'s file machinery (~50 us per call, most of a small mask's cost).
"""
from __future__ import annotations

import zlib

import numpy as np
from numba import njit

_LEN_BASE = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                      131, 163, 195, 227, 258], np.int64)
_LEN_EXTRA = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0],
                      np.int64)
_DIST_BASE = np.array([1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                       2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577], np.int64)
_DIST_EXTRA = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                        13, 13], np.int64)
MAX_DISTANCE = 32768


def _reverse(code: int, bits: int) -> int:
    return int(format(code, f"0{bits}b")[::-1], 2)


def _fixed_symbol_codes() -> tuple[np.ndarray, np.ndarray]:
    """Bit-reversed fixed Huffman codes and their lengths of the 288 literal/length symbols."""
    codes, lengths = np.zeros(288, np.uint64), np.zeros(288, np.int64)
    for s in range(288):
        if s < 144:
            c, n = 0x30 + s, 8
        elif s < 256:
            c, n = 0x190 + s - 144, 9
        elif s < 280:
            c, n = s - 256, 7
        else:
            c, n = 0xC0 + s - 280, 8
        codes[s], lengths[s] = _reverse(c, n), n
    return codes, lengths


def _length_table() -> np.ndarray:
    """Per match length 0..258: (code bits reversed, code length, extra value, extra bits) packed
    as the bits to write (code then extra) and their count: ``(value, count)`` rows."""
    codes, lengths = _fixed_symbol_codes()
    table = np.zeros((259, 2), np.uint64)
    for length in range(3, 259):
        i = int(np.searchsorted(_LEN_BASE, length, side="right") - 1)
        if length == 258:
            i = 28
        extra_value, extra_bits = length - int(_LEN_BASE[i]), int(_LEN_EXTRA[i])
        sym = 257 + i
        n = int(lengths[sym])
        table[length] = (int(codes[sym]) | (extra_value << n), n + extra_bits)
    return table


def _distance_bits(distance: int) -> tuple[int, int]:
    """The fixed code (5 bits, reversed) and extra bits of a distance, as ``(value, count)``."""
    i = int(np.searchsorted(_DIST_BASE, distance, side="right") - 1)
    return _reverse(i, 5) | ((distance - int(_DIST_BASE[i])) << 5), 5 + int(_DIST_EXTRA[i])


_LIT_CODES, _LIT_LENGTHS = _fixed_symbol_codes()
_LENGTHS = _length_table()


@njit(cache=True, nogil=True)
def _encode(data, row, row_value, row_bits, lit_codes, lit_lengths, lengths, out):  # pragma: no cover - compiled
    """Fixed-Huffman deflate block of ``data`` into ``out``; returns the bytes written."""
    n = data.size
    acc = np.uint64(3)  # BFINAL = 1, BTYPE = 01 (fixed codes)
    nbits = 3
    pos = 0
    i = 0
    while i < n:
        best = 0
        use_row = False
        limit = min(n, i + 258)
        if row > 1 and i >= row:  # the row above first: on label maps it is the longer copy
            j = i
            while j < limit and data[j] == data[j - row]:
                j += 1
            best = j - i
            use_row = best >= 3
        if i >= 1 and best < limit - i:
            v = data[i - 1]
            j = i
            while j < limit and data[j] == v:
                j += 1
            if j - i > best:
                best = j - i
                use_row = False
        if best >= 3:
            acc |= lengths[best, 0] << np.uint64(nbits)
            nbits += np.int64(lengths[best, 1])
            if use_row:
                acc |= np.uint64(row_value) << np.uint64(nbits)
                nbits += row_bits
            else:
                nbits += 5  # distance 1: code 0, no extra bits
            i += best
        else:
            s = data[i]
            acc |= lit_codes[s] << np.uint64(nbits)
            nbits += lit_lengths[s]
            i += 1
        while nbits >= 8:
            out[pos] = np.uint8(acc & np.uint64(0xFF))
            pos += 1
            acc >>= np.uint64(8)
            nbits -= 8
    nbits += 7  # end of block: symbol 256 is seven zero bits
    while nbits > 0:
        out[pos] = np.uint8(acc & np.uint64(0xFF))
        pos += 1
        acc >>= np.uint64(8)
        nbits -= 8
    return pos


def deflate_runs(raw: bytes | np.ndarray, row: int = 0) -> bytes:
    """A zlib stream of ``raw`` using only runs and copies of the byte ``row`` bytes back (0: runs only).

    Example:
        >>> data = bytes([0] * 20 + [1] * 5) * 4
        >>> zlib.decompress(deflate_runs(data, row=25)) == data, len(deflate_runs(data, row=25)) < 20
        (True, True)
    """
    data = np.frombuffer(raw, np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1).view(np.uint8)
    row = int(row) if 1 < int(row) <= MAX_DISTANCE else 0
    row_value, row_bits = _distance_bits(row) if row else (0, 0)
    out = np.empty(data.size * 9 // 8 + 16, np.uint8)  # literals cost at most 9 bits
    n = _encode(data, row, row_value, row_bits, _LIT_CODES, _LIT_LENGTHS, _LENGTHS, out)
    checksum = zlib.adler32(data) & 0xFFFFFFFF
    return b"\x78\x01" + out[:n].tobytes() + checksum.to_bytes(4, "big")


def npy_header(dtype: np.dtype, shape: tuple, fortran_order: bool = False) -> bytes:
    """The ``.npy`` (version 1.0) header ``np.save`` writes for an array of this dtype and shape.

    Example:
        >>> import io
        >>> f = io.BytesIO(); np.save(f, np.zeros((3, 4), np.uint8))
        >>> f.getvalue().startswith(npy_header(np.dtype(np.uint8), (3, 4)))
        True
    """
    text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                                  bool(fortran_order), tuple(int(s) for s in shape))
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * (pad % 64) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def npy_bytes(array: np.ndarray) -> bytes:
    """``np.save(f, array)``'s bytes (C order; simple dtypes).

    Example:
        >>> import io
        >>> a = np.arange(6, dtype=np.uint16).reshape(2, 3); f = io.BytesIO(); np.save(f, a)
        >>> np.load(io.BytesIO(npy_bytes(a))).tolist() == a.tolist()
        True
    """
    a = np.ascontiguousarray(array)
    return npy_header(a.dtype, a.shape) + a.tobytes()


def serialize_label_map(array: np.ndarray) -> bytes:
    """An array as FiftyOne stores it (zlib'd ``np.save`` bytes, what ``serialize_numpy_array``
    reads back), deflated by :func:`deflate_runs` with the array's row as the copy distance.

    Example:
        >>> from fiftyone.core.utils import deserialize_numpy_array
        >>> m = np.zeros((64, 64), np.uint8); m[10:20, 5:50] = 3
        >>> (deserialize_numpy_array(serialize_label_map(m)) == m).all()
        True
    """
    a = np.ascontiguousarray(array)
    row = a.shape[-1] * a.itemsize if a.ndim >= 2 else 0
    if a.ndim == 3:
        row = a.shape[1] * a.shape[2] * a.itemsize
    return deflate_runs(npy_bytes(a), row)
