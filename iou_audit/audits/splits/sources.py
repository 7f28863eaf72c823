"""Reading what the split audit needs from a FiftyOne collection, in bulk: split membership (from a
field or from sample tags), image hashes with a per-sample cache, group values and embeddings."""
from __future__ import annotations

import hashlib
import io
import os
from typing import Callable, Sequence

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.audits.splits.hashing import (
    DIHEDRAL,
    PHASH_SIZE,
    WINDOW_GRID,
    WINDOW_POOL,
    WINDOW_THUMB,
    decode_gray,
    dihedral_hashes,
    hex_to_hash,
    normalised_windows,
    phash_from_gray,
    window_hashes_from_gray,
)

N_WINDOWS = WINDOW_GRID * WINDOW_GRID

HASH_CHUNK = 256  # files per progress step
# Order of split names read from a field: training first, evaluation last (findings name the sample
# in the later split); other names follow, largest first.
SPLIT_ORDER = {"train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1, "dev": 1, "test": 2, "testing": 2}


def read_splits(samples, split_field: str | None = None, split_tags: Sequence[str] | None = None):
    """Split of every sample of ``samples`` (in collection order).

    Returns ``(ids, split_codes, split_names, multi)``: ``split_codes`` (S,) int (``-1``: no split),
    ``split_names`` (names by code; for a field: train, val, test, then other names largest first;
    for tags, as given)
    and ``multi``: ``{sample_id: [names]}`` of samples carrying more than one split tag (their code
    is the first of them).
    """
    if (split_field is None) == (not split_tags):
        raise ValueError("give exactly one of split_field (a sample field) or split_tags (a list of sample tags)")
    ids = np.asarray(samples.values("id"), dtype=object)
    multi: dict[str, list[str]] = {}
    if split_field is not None:
        if samples.get_field(split_field) is None:
            raise ValueError(f"split field {split_field!r} does not exist on {fop.source_dataset(samples).name!r}")
        raw = np.array(["" if v is None else str(v) for v in samples.values(split_field)], dtype=object)
        present, inverse, sizes = np.unique(raw.astype(str), return_inverse=True, return_counts=True)
        named = [(str(n), int(c)) for n, c in zip(present, sizes) if n != ""]
        split_names = [n for n, c in sorted(named, key=lambda nc: (SPLIT_ORDER.get(nc[0].lower(), 3), -nc[1], nc[0]))]
        code_of_unique = np.array([split_names.index(str(n)) if n != "" else -1 for n in present], dtype=np.int64)
        codes = code_of_unique[inverse.ravel()] if len(ids) else np.zeros(0, np.int64)
    else:
        split_names = [str(t) for t in split_tags]
        if len(set(split_names)) != len(split_names):
            raise ValueError(f"split_tags has repeated tags: {split_names}")
        # one bulk query per split tag; a sample's code is its first split tag
        tagged = np.stack([np.isin(ids, np.asarray(samples.match_tags(t).values("id"), dtype=object))
                           for t in split_names], axis=1) if len(ids) else np.zeros((0, len(split_names)), bool)
        codes = np.where(tagged.any(axis=1), tagged.argmax(axis=1), -1).astype(np.int64)
        for row in np.flatnonzero(tagged.sum(axis=1) > 1):
            multi[str(ids[row])] = [split_names[k] for k in np.flatnonzero(tagged[row])]
    return ids, codes, split_names, multi


def file_stat_key(path: str) -> str:
    """``"<size>:<mtime_ns>"`` of a file: the cache key of its hashes; ``""`` when the file cannot
    be stat'ed (missing, no permission): nothing is cached for it."""
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def _try_hash_one(path: str):
    """``_hash_one(path)``, or ``(None, None, None, "ErrorType: message")`` when the file cannot be
    read or decoded (missing, unreadable, truncated, not an image, too large for Pillow)."""
    try:
        return (*_hash_one(path), None)
    except Exception as e:  # any decoder failure of one file must not stop the audit of the others
        cause = e.__cause__ if e.__cause__ is not None else e
        return None, None, None, f"{type(cause).__name__}: {cause}"


def _hash_one(path: str):
    """SHA-256 and both thumbnails (pHash 32 x 32, windows 144 x 144) from one read of the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        small, large = decode_gray(io.BytesIO(data), (PHASH_SIZE, WINDOW_THUMB))
        return hashlib.sha256(data).hexdigest(), small, large
    except FileNotFoundError as e:
        raise FileNotFoundError(f"image file not found: {path!r}") from e
    except OSError as e:
        raise ValueError(f"cannot read image {path!r}: {e}") from e


def _pool(workers):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers or max(1, min(8, os.cpu_count() or 1)))


def image_hashes(
    samples,
    filepaths: Sequence[str],
    cache_prefix: str,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """SHA-256, pHash, window pHashes and mirrored/rotated pHashes of every sample's file, reusing
    cached values.

    The cache is the sample fields ``<prefix>_sha256``, ``<prefix>_phash`` (16 hex digits),
    ``<prefix>_whash`` (81 window hashes, 16 hex digits each), ``<prefix>_thash`` (7 symmetry
    hashes) and ``<prefix>_filestat`` (size and modification time); a value is reused when the
    file's current size:mtime matches. Files are read in a thread pool (hashlib and Pillow
    release the GIL).

    Returns ``(sha256 (S,) object, phash (S,) uint64, window_hashes (S, 81) uint64,
    symmetry_hashes (S, 7) uint64, filestat (S,) object, n_cached, unreadable)`` where
    ``unreadable`` is ``{row: "ErrorType: message"}`` for the files that could not be read or
    decoded; their ``sha256`` is None and their hashes are 0 (callers must exclude them from the
    hash searches), and the other files are hashed as usual.
    """
    n = len(filepaths)
    stats = np.array([file_stat_key(p) for p in filepaths], dtype=object)
    names = [f"{cache_prefix}_{k}" for k in ("sha256", "phash", "whash", "thash", "filestat")]
    sha = np.full(n, None, dtype=object)
    phash = np.zeros(n, dtype=np.uint64)
    whash = np.zeros((n, N_WINDOWS), dtype=np.uint64)
    thash = np.zeros((n, len(DIHEDRAL)), dtype=np.uint64)
    valid = np.zeros(n, dtype=bool)
    if all(samples.get_field(f) is not None for f in names):
        c_sha, c_ph, c_wh, c_th, c_st = (np.array(samples.values(f), dtype=object) for f in names)
        lengths = ((c_sha, 64), (c_ph, 16), (c_wh, 16 * N_WINDOWS), (c_th, 16 * len(DIHEDRAL)))
        valid = c_st == stats
        for column, length in lengths:
            valid &= np.array([isinstance(v, str) and len(v) == length for v in column], dtype=bool)
        if valid.any():
            sha[valid] = c_sha[valid]
            phash[valid] = hex_to_hash(list(c_ph[valid]))
            whash[valid] = _split_hex(c_wh[valid], N_WINDOWS)
            thash[valid] = _split_hex(c_th[valid], len(DIHEDRAL))
    todo = np.flatnonzero(~valid)
    unreadable: dict[int, str] = {}
    with _pool(workers) as pool:
        for lo in range(0, len(todo), HASH_CHUNK):
            rows = todo[lo:lo + HASH_CHUNK]
            results = list(pool.map(_try_hash_one, [filepaths[r] for r in rows]))
            for r, res in zip(rows.tolist(), results):
                if res[3] is not None:
                    unreadable[r] = res[3]
            ok = [k for k, res in enumerate(results) if res[3] is None]
            if ok:
                good, kept = rows[ok], [results[k] for k in ok]
                sha[good] = [r[0] for r in kept]
                phash[good] = phash_from_gray(np.stack([r[1] for r in kept]))
                whash[good] = window_hashes_from_gray(np.stack([r[2] for r in kept]))
                thash[good] = dihedral_hashes(np.stack([r[1] for r in kept]))
            if progress:
                progress(lo + len(rows), len(todo))
    for r in unreadable:
        stats[r] = ""  # never reuse anything for a file that could not be read
    return sha, phash, whash, thash, stats, int(valid.sum()), unreadable


def _split_hex(values, per_row: int) -> np.ndarray:
    return hex_to_hash([h[k:k + 16] for h in values for k in range(0, 16 * per_row, 16)]).reshape(-1, per_row)


def window_hex(whash: np.ndarray) -> list[str]:
    """(S, K) hashes -> one string of K 16-digit hex numbers per sample (the cached form).

    >>> window_hex(np.array([[1, 255]], np.uint64))
    ['000000000000000100000000000000ff']
    """
    return ["".join(f"{int(h):016x}" for h in row) for row in np.asarray(whash, np.uint64)]


def thumbs_loader(filepaths: Sequence[str], workers: int | None = None):
    """``load(rows) -> (len(rows), 48, 48)`` grayscale thumbnails (3 x 3 pooled) of those files."""
    side = WINDOW_THUMB // WINDOW_POOL

    def load(rows):
        with _pool(workers) as pool:
            thumbs = list(pool.map(lambda r: _hash_one(filepaths[r])[2], rows))
        if not thumbs:
            return np.zeros((0, side, side))
        return np.stack(thumbs).reshape(len(thumbs), side, WINDOW_POOL, side, WINDOW_POOL).mean(axis=(2, 4))

    return load


def windows_loader(filepaths: Sequence[str], workers: int | None = None):
    """``load(rows) -> (len(rows), 81, 1024)`` normalised window pixels of those samples' files."""
    def load(rows):
        with _pool(workers) as pool:
            thumbs = list(pool.map(lambda r: _hash_one(filepaths[r])[2], rows))
        return normalised_windows(np.stack(thumbs)) if thumbs else np.zeros((0, N_WINDOWS, PHASH_SIZE ** 2))

    return load


def read_groups(samples, group_field: str) -> np.ndarray:
    """Values of ``group_field`` (any scalar field; lists are not groups) as an object array."""
    field = samples.get_field(group_field)
    if field is None:
        raise ValueError(f"group field {group_field!r} does not exist on {fop.source_dataset(samples).name!r}")
    values = samples.values(group_field)
    bad = [v for v in values if isinstance(v, (list, dict))]
    if bad:
        raise ValueError(f"group field {group_field!r} must hold one scalar per sample, found {bad[0]!r}")
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def read_embeddings(samples, embeddings_field: str) -> np.ndarray:
    """(S, D) float64 embeddings from a sample field (missing vectors become NaN rows)."""
    if samples.get_field(embeddings_field) is None:
        raise ValueError(f"embeddings field {embeddings_field!r} does not exist on {fop.source_dataset(samples).name!r}")
    values = samples.values(embeddings_field)
    dims = {len(np.ravel(v)) for v in values if v is not None}
    if len(dims) > 1:
        raise ValueError(f"embeddings field {embeddings_field!r} has vectors of different lengths {sorted(dims)}")
    d = dims.pop() if dims else 0
    out = np.full((len(values), d), np.nan)
    for k, v in enumerate(values):
        if v is not None:
            out[k] = np.ravel(np.asarray(v, dtype=np.float64))
    return out


__all__ = ["read_splits", "image_hashes", "read_groups", "read_embeddings", "file_stat_key", "window_hex",
           "windows_loader", "thumbs_loader"]
