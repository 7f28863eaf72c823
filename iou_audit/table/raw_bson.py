"""Decode the read's raw BSON straight into numpy columns, without one Python object per value.

The read (:mod:`iou_audit.table.read`) asks MongoDB for one document per sample holding, per label
subfield ``k``, an array ``c<k>`` of that subfield over the sample's labels. Decoding those
documents with pymongo builds a Python float, str or list for every value and a list per label
(75,000 labels x 6 subfields: 0.055 s to decode plus 0.07 s to turn the lists into arrays). Here
the documents stay raw bytes (``RawBSONDocument``); a numba pass walks them once and records, for
every value, its BSON type and byte span; typed numba kernels then fill the numeric, box and id
columns directly from the bytes. Strings (class names) are decoded once per distinct value.
Values of other shapes (masks, polygons, attributes, non-empty tag lists) are decoded one by one
with ``bson.decode``, which is what pymongo would have done anyway.

BSON layout used (https://bsonspec.org/spec.html): a document is an int32 byte length, then
elements ``type byte, key cstring, value``, then a 0 byte; an array is a document keyed "0", "1"...
All integers are little-endian.
"""
from __future__ import annotations

import struct

import numba
import numpy as np

# BSON element types the Python side names (the kernels spell them out, with the spec's names)
ARRAY, OBJECT_ID, UNDEFINED, NULL = 4, 7, 6, 10
MISSING = 0  # our marker: the element is absent
ABSENT = (MISSING, UNDEFINED, NULL)  # no value


@numba.njit(cache=True)
def _value_size(buf, pos, etype):
    """Byte size of the value of type ``etype`` starting at ``pos`` (-1: unknown type)."""
    if etype == 1 or etype == 9 or etype == 17 or etype == 18:  # double, datetime, timestamp, int64
        return 8
    if etype == 2 or etype == 13 or etype == 14:  # string, code, symbol: int32 length + bytes
        return 4 + _int32(buf, pos)
    if etype == 3 or etype == 4 or etype == 15:  # document, array, code with scope
        return _int32(buf, pos)
    if etype == 5:  # binary: int32 length, subtype byte, bytes
        return 5 + _int32(buf, pos)
    if etype == 7:
        return 12
    if etype == 8:
        return 1
    if etype == 6 or etype == 10 or etype == 127 or etype == 255:  # undefined, null, min/max key
        return 0
    if etype == 16:
        return 4
    if etype == 19:  # decimal128
        return 16
    if etype == 12:  # DBPointer: string + 12-byte id
        return 4 + _int32(buf, pos) + 12
    if etype == 11:  # regex: two cstrings
        end = pos
        while buf[end] != 0:
            end += 1
        end += 1
        while buf[end] != 0:
            end += 1
        return end + 1 - pos
    return -1


@numba.njit(cache=True)
def _int32(buf, pos):
    v = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True)
def _uint64(buf, pos):
    v = np.uint64(0)
    for b in range(8):
        v |= np.uint64(buf[pos + b]) << np.uint64(8 * b)
    return v


@numba.njit(cache=True)
def _cstring_end(buf, pos):
    """Index of the 0 byte that ends the C string starting at ``pos``."""
    while buf[pos] != 0:
        pos += 1
    return pos


@numba.njit(cache=True)
def _key_is(buf, start, end, keys, key_len, k):
    n = end - start
    if n != key_len[k]:
        return False
    for j in range(n):
        if buf[start + j] != keys[k, j]:
            return False
    return True


@numba.njit(cache=True)
def _find(buf, doc, keys, key_len, k):
    """``(type, value start)`` of key ``keys[k]`` in the document starting at ``doc``; (0, 0) if absent."""
    pos = doc + 4
    while buf[pos] != 0:
        t = buf[pos]
        key = pos + 1
        end = _cstring_end(buf, key)
        pos = end + 1
        if _key_is(buf, key, end, keys, key_len, k):
            return t, pos
        pos += _value_size(buf, pos, t)
    return 0, 0


@numba.njit(cache=True)
def _at_path(buf, doc, path, path_len):
    """``(type, value start)`` of the value at the dotted path ``path`` (one key per row) in the
    document starting at ``doc``; (0, 0) if absent or if a parent is not a document."""
    t = 3
    v = doc
    for k in range(len(path_len)):
        if t != 3:
            return 0, 0
        t, v = _find(buf, v, path, path_len, k)
        if t == 0:
            return 0, 0
    return t, v


@numba.njit(cache=True)
def _label_list(buf, doc, path, path_len):
    """Start of the label array at ``path`` in the document, or -1."""
    t, v = _at_path(buf, doc, path, path_len)
    return v if t == 4 else -1


@numba.njit(cache=True)
def _values_at(buf, doc_start, path, path_len, etype, vstart):
    """Per document: type and value start of the value at ``path`` (0 when absent)."""
    for d in range(len(doc_start) - 1):
        t, v = _at_path(buf, doc_start[d], path, path_len)
        etype[d] = t
        vstart[d] = v


@numba.njit(cache=True)
def _count_labels(buf, doc_start, path, path_len):
    """Per document: the number of elements of its label array (0 when absent)."""
    n_docs = len(doc_start) - 1
    counts = np.zeros(n_docs, np.int64)
    for d in range(n_docs):
        arr = _label_list(buf, doc_start[d], path, path_len)
        if arr < 0:
            continue
        q = arr + 4
        n = 0
        while buf[q] != 0:
            t = buf[q]
            q = _cstring_end(buf, q + 1) + 1  # skip the element's key ("0", "1", ...)
            q += _value_size(buf, q, t)
            n += 1
        counts[d] = n
    return counts


@numba.njit(cache=True)
def _spans(buf, doc_start, path, path_len, keys, key_len, offsets, etype, vstart):
    """Fill, per label key k and label i, the BSON type and value start of the label's value
    (``etype[k, i]`` 0 when absent or when the list element is not a document)."""
    n_keys = len(key_len)
    for d in range(len(doc_start) - 1):
        arr = _label_list(buf, doc_start[d], path, path_len)
        if arr < 0:
            continue
        q = arr + 4
        i = offsets[d]
        while buf[q] != 0:
            t = buf[q]
            q = _cstring_end(buf, q + 1) + 1  # skip the element's key ("0", "1", ...)
            if t == 3:  # a label document: record the keys we want
                pos = q + 4
                while buf[pos] != 0:
                    t2 = buf[pos]
                    key = pos + 1
                    end = _cstring_end(buf, key)
                    pos = end + 1
                    for k in range(n_keys):
                        if _key_is(buf, key, end, keys, key_len, k):
                            etype[k, i] = t2
                            vstart[k, i] = pos
                            break
                    pos += _value_size(buf, pos, t2)
            q += _value_size(buf, q, t)
            i += 1


@numba.njit(cache=True)
def _numbers(buf, etype, vstart, out):
    """Numeric values (double, int32, int64, bool) -> float64; null/absent -> NaN.
    Returns the index of the first value of another type, or -1."""
    u = np.zeros(1, np.uint64)
    f = u.view(np.float64)
    for i in range(len(etype)):
        t = etype[i]
        p = vstart[i]
        if t == 1:
            u[0] = _uint64(buf, p)
            out[i] = f[0]
        elif t == 16:
            out[i] = _int32(buf, p)
        elif t == 18:
            out[i] = np.int64(_uint64(buf, p))
        elif t == 8:
            out[i] = 1.0 if buf[p] != 0 else 0.0
        elif t == 10 or t == 0 or t == 6:
            out[i] = np.nan
        else:
            return i
    return -1


@numba.njit(cache=True)
def _boxes(buf, etype, vstart, out):
    """Arrays of exactly 4 numbers -> rows of ``out``; anything else -> a NaN row (as the
    Python reader does for missing or malformed boxes). Null entries inside are NaN."""
    u = np.zeros(1, np.uint64)
    f = u.view(np.float64)
    for i in range(len(etype)):
        ok = etype[i] == 4
        j = 0
        if ok:
            q = vstart[i] + 4
            while buf[q] != 0:
                t = buf[q]
                q = _cstring_end(buf, q + 1) + 1  # skip the element's key ("0", "1", ...)
                if j < 4:
                    if t == 1:
                        u[0] = _uint64(buf, q)
                        out[i, j] = f[0]
                    elif t == 16:
                        out[i, j] = _int32(buf, q)
                    elif t == 18:
                        out[i, j] = np.int64(_uint64(buf, q))
                    elif t == 8:
                        out[i, j] = 1.0 if buf[q] != 0 else 0.0
                    elif t == 10:
                        out[i, j] = np.nan
                    else:
                        ok = False
                q += _value_size(buf, q, t)
                j += 1
        if not ok or j != 4:
            out[i, :] = np.nan


@numba.njit(cache=True)
def _string_spans(buf, etype, vstart, start, length):
    """Strings -> (start, length) of their UTF-8 bytes; null/absent -> length -1.
    Returns the index of the first value of another type, or -1."""
    for i in range(len(etype)):
        t = etype[i]
        if t == 2:
            start[i] = vstart[i] + 4
            length[i] = _int32(buf, vstart[i]) - 1
        elif t == 10 or t == 0 or t == 6:
            length[i] = -1
        else:
            return i
    return -1


@numba.njit(cache=True)
def _fixed_width(buf, start, length, out):
    for i in range(len(start)):
        for j in range(max(length[i], 0)):
            out[i, j] = buf[start[i] + j]


def decode_strings(buf: np.ndarray, etype: np.ndarray, vstart: np.ndarray, none: object = None) -> np.ndarray | None:
    """Object array of str (``none`` for null/absent), or None if a value is not a string.

    Each distinct string is decoded once: the byte strings are grouped by ``np.unique``.

    Example:
        >>> raw = encode_doc({"l": [{"k": "cat"}, {"k": None}, {"k": "dog"}, {"k": "cat"}]})
        >>> cols = read_columns(*join_documents([raw]), "l", ["k"])
        >>> decode_strings(*cols.column(0), none="").tolist()
        ['cat', '', 'dog', 'cat']
    """
    n = len(etype)
    start = np.zeros(n, np.int64)
    length = np.zeros(n, np.int64)
    if _string_spans(buf, etype, vstart, start, length) >= 0:
        return None
    out = np.empty(n, dtype=object)
    out[:] = [none] * n if n else []
    present = length >= 0
    if not present.any():
        return out
    width = max(int(length.max()), 1)
    fixed = np.zeros((int(present.sum()), width), np.uint8)
    _fixed_width(buf, start[present], length[present], fixed)
    lens = length[present]
    if width == 24 and (lens == 24).all():  # label ids: all distinct, decode in one C-level pass
        out[present] = fixed.view("S24").ravel().astype("U24").astype(object)
        return out
    # 'S' arrays drop trailing NULs: sort by (bytes, length) so "a\0" and "a" stay distinct
    keys = fixed.view(f"S{width}").ravel()
    order = np.lexsort((lens, keys))
    sk, sl = keys[order], lens[order]
    first = np.ones(len(sk), bool)
    first[1:] = (sk[1:] != sk[:-1]) | (sl[1:] != sl[:-1])
    group = np.cumsum(first) - 1
    decoded = np.empty(int(first.sum()), dtype=object)
    decoded[:] = [fixed[order[i], : sl[i]].tobytes().decode("utf-8", "replace") for i in np.flatnonzero(first)]
    values = np.empty(len(sk), dtype=object)
    values[order] = decoded[group]
    out[present] = values
    return out


def decode_value(buf: np.ndarray, etype: int, vstart: int):
    """One value, decoded by pymongo's ``bson.decode`` (the fallback for non-columnar shapes).

    Example:
        >>> raw = encode_doc({"l": [{"k": [1, 2]}, {"k": None}]})
        >>> cols = read_columns(*join_documents([raw]), "l", ["k"])
        >>> [decode_value(cols.buf, t, s) for t, s in zip(*cols.column(0)[1:])]
        [[1, 2], None]
    """
    import bson

    if etype in ABSENT:
        return None
    size = int(_value_size(buf, vstart, etype))
    if size < 0:
        raise ValueError(f"unknown BSON type {etype} at byte {vstart}")
    value = buf[vstart : vstart + size].tobytes()
    body = bytes([etype]) + b"v\x00" + value
    return bson.decode(struct.pack("<i", len(body) + 5) + body + b"\x00")["v"]


def _key_table(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Keys as rows of a zero-padded uint8 table plus their byte lengths (for the kernels).

    Example:
        >>> table, lengths = _key_table(["_id", "label"])
        >>> table.shape, lengths.tolist()
        ((2, 5), [3, 5])
    """
    raw = [k.encode("utf-8") for k in keys]
    table = np.zeros((len(raw), max([len(r) for r in raw] + [1])), np.uint8)
    for i, r in enumerate(raw):
        table[i, : len(r)] = np.frombuffer(r, np.uint8)
    return table, np.array([len(r) for r in raw], np.int64)


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


class RawColumns:
    """Spans of the label values of a batch of raw documents (see :func:`read_columns`)."""

    def __init__(self, buf, doc_start, counts, etype, vstart):
        self.buf = buf
        self.doc_start = doc_start
        self.counts = counts
        self.offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self.etype = etype  # (K, n) uint8: BSON type of label key k of label i (0: absent)
        self.vstart = vstart  # (K, n) int64: where that value starts in buf

    def column(self, k: int):
        """``(buf, etype, vstart)`` of label key ``k``, for the decoders."""
        return self.buf, self.etype[k], self.vstart[k]

    def numbers(self, k: int) -> np.ndarray | None:
        """Label key ``k`` as float64 (NaN = null/absent), or None if it holds non-numbers."""
        return _as_numbers(self.buf, self.etype[k], self.vstart[k])

    def boxes(self, k: int) -> np.ndarray:
        """Label key ``k`` as (n, 4) float64 rows (NaN rows where not an array of 4 numbers)."""
        out = np.empty((self.etype.shape[1], 4), np.float64)
        _boxes(self.buf, self.etype[k], self.vstart[k], out)
        return out

    def ids(self, k: int) -> np.ndarray:
        """Label key ``k`` (ObjectIds) as 24-digit hex str ("" when absent)."""
        return object_ids(self.buf, self.etype[k], self.vstart[k])

    def values(self, k: int) -> list:
        """Label key ``k`` as Python values (pymongo's decoding, one value at a time)."""
        return [decode_value(self.buf, int(t), int(s)) for t, s in zip(self.etype[k], self.vstart[k])]

    def at(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """Per document, ``(type, value start)`` of the value at dotted ``path`` (e.g. ``"metadata.width"``)."""
        keys, lens = _key_table(path.split("."))
        etype = np.zeros(len(self.counts), np.uint8)
        vstart = np.zeros(len(self.counts), np.int64)
        _values_at(self.buf, self.doc_start, keys, lens, etype, vstart)
        return etype, vstart

    def sample_numbers(self, path: str) -> np.ndarray:
        etype, vstart = self.at(path)
        out = _as_numbers(self.buf, etype, vstart)
        if out is None:
            out = np.array([np.nan if v is None else v for v in
                            (decode_value(self.buf, int(t), int(s)) for t, s in zip(etype, vstart))], dtype=np.float64)
        return out

    def sample_strings(self, path: str) -> np.ndarray:
        """Per document, the string at ``path`` ("" when absent)."""
        return decode_strings(self.buf, *self.at(path), none="")


def _as_numbers(buf, etype, vstart) -> np.ndarray | None:
    out = np.empty(len(etype), np.float64)
    return None if _numbers(buf, etype, vstart, out) >= 0 else out


def object_ids(buf: np.ndarray, etype: np.ndarray, vstart: np.ndarray) -> np.ndarray:
    """ObjectIds (or strings) -> hex str, vectorized ("" when absent).

    Example:
        >>> from bson import ObjectId
        >>> raw = encode_doc({"l": [{"_id": ObjectId("6b075fa6d1aad2d3ae7a7a13")}, {}]})
        >>> cols = read_columns(*join_documents([raw]), "l", ["_id"])
        >>> cols.ids(0).tolist()
        ['6b075fa6d1aad2d3ae7a7a13', '']
    """
    out = np.empty(len(etype), dtype=object)
    out[:] = ""
    is_oid = etype == OBJECT_ID
    if is_oid.any():
        raw = buf[vstart[is_oid][:, None] + np.arange(12)]
        hexed = np.empty((len(raw), 24), np.uint8)
        hexed[:, 0::2] = _HEX_DIGITS[raw >> 4]
        hexed[:, 1::2] = _HEX_DIGITS[raw & 15]
        out[is_oid] = hexed.view("S24").ravel().astype("U24").astype(object)
    other = ~is_oid & ~np.isin(etype, ABSENT)
    for i in np.flatnonzero(other):
        out[i] = str(decode_value(buf, int(etype[i]), int(vstart[i])))
    return out


def read_columns(buf: np.ndarray, doc_start: np.ndarray, list_path: str, label_keys: list[str]) -> RawColumns:
    """Walk documents ``buf[doc_start[d]:doc_start[d + 1]]`` once; for every element of the array
    at ``list_path`` record the BSON type and value start of each of ``label_keys``.

    Example:
        >>> raw = encode_doc({"gt": {"detections": [{"c": 1.5, "b": [0, 0, 1, 1]}, {"c": None, "b": "x"}]}})
        >>> cols = read_columns(*join_documents([raw]), "gt.detections", ["c", "b"])
        >>> cols.numbers(0).tolist(), cols.boxes(1).tolist()
        ([1.5, nan], [[0.0, 0.0, 1.0, 1.0], [nan, nan, nan, nan]])
    """
    path, path_len = _key_table(list_path.split("."))
    keys, key_len = _key_table(list(label_keys))
    counts = _count_labels(buf, doc_start, path, path_len)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    etype = np.zeros((len(label_keys), n), np.uint8)
    vstart = np.zeros((len(label_keys), n), np.int64)
    _spans(buf, doc_start, path, path_len, keys, key_len, offsets, etype, vstart)
    return RawColumns(buf, doc_start, counts, etype, vstart)


def join_documents(raw_docs: list) -> tuple[np.ndarray, np.ndarray]:
    """``(buf, doc_start)``: the raw bytes of ``RawBSONDocument``s laid end to end.

    Example:
        >>> buf, start = join_documents([encode_doc({"a": 1}), encode_doc({"b": 2})])
        >>> start.tolist()
        [0, 12, 24]
    """
    parts = [d.raw if hasattr(d, "raw") else bytes(d) for d in raw_docs]
    doc_start = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=doc_start[1:])
    return np.frombuffer(b"".join(parts), np.uint8), doc_start


def encode_doc(doc: dict) -> bytes:
    """``bson.encode`` (for the examples and tests)."""
    import bson

    return bson.encode(doc)

