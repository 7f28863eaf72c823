"""Near-duplicate search over 64-bit hashes without comparing every pair: multi-index hashing.

Pigeonhole principle: cut the 64 bits into ``m`` contiguous bands. If two hashes differ in at most
``r`` bits, at least one band differs in at most ``floor(r / m)`` bits. So for each band we bucket
the hashes by band value (a dense counting-sort table), probe every band value within
``floor(r / m)`` bit flips of each hash's own band value, and verify the (few) candidates with a
full 64-bit popcount. With ``m = r + 1`` this is plain exact-band bucketing; larger bands with a
small probe radius keep buckets sparse when ``r`` is large. ``m`` is chosen from a cost model.

Everything is vectorized numpy: no Python loop over hashes, only over bands, probe masks and
chunks of queries (bounded memory).

``brute_force_pairs`` is the all-pairs reference (XOR + popcount in chunks), used by tests and
bench/bench_hash_index.py.
"""
from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

MAX_BAND_BITS = 22  # dense table of 2**22 int64 = 32 MiB per band at most


def _band_layout(n_bands: int, n_bits: int = 64) -> list[tuple[int, int]]:
    """(shift, width) of each band, widths differing by at most one bit.

    >>> _band_layout(3)
    [(42, 22), (21, 21), (0, 21)]
    """
    base, extra = divmod(n_bits, n_bands)
    widths = [base + (1 if b < extra else 0) for b in range(n_bands)]
    layout, top = [], n_bits
    for w in widths:
        top -= w
        layout.append((top, w))
    return layout


def choose_n_bands(n_hashes: int, radius: int) -> int:
    """Number of bands minimising the estimated work for ``n_hashes`` uniform hashes.

    Work = probes x (4.5 + expected bucket size / 2): every probe is a pass over a band table
    for all hashes (about 4.5x the cost of verifying one candidate, measured at 100,000 hashes
    with bench/bench_hash_index.py), and every probe yields on average one bucket's worth of
    candidates, half of which are kept (i < j).

    >>> choose_n_bands(100_000, 0), choose_n_bands(100_000, 2), choose_n_bands(100_000, 8)
    (1, 3, 5)
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return 1  # exact equality: one sort of the full hash, no band tables needed
    best, best_cost = 3, float("inf")
    for m in range(3, 65):  # 3 bands is the fewest whose widths fit a dense table
        narrowest = 64 // m
        widest = -(-64 // m)
        probes = sum(sum(comb(widest, k) for k in range(r + 1)) for r in band_probe_radii(radius, m))
        cost = probes * (4.5 + max(n_hashes, 1) / 2.0**narrowest / 2.0)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def band_probe_radii(radius: int, n_bands: int) -> list[int]:
    """Bit flips to probe in each band so that no pair within ``radius`` is missed.

    With ``radius = n_bands * s + a`` (``0 <= a < n_bands``): if the first ``a + 1`` bands all
    differed in more than ``s`` bits and the others in more than ``s - 1``, the total would be
    at least ``(a + 1)(s + 1) + (n_bands - a - 1) s = radius + 1``. So probing ``s`` flips in the
    first ``a + 1`` bands and ``s - 1`` in the rest is enough (Norouzi et al., multi-index hashing).
    A band with radius -1 is skipped.

    >>> band_probe_radii(8, 4), band_probe_radii(8, 5), band_probe_radii(2, 3)
    ([2, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0])
    """
    s, a = divmod(radius, n_bands)
    return [s if b <= a else s - 1 for b in range(n_bands)]


def _flip_masks(width: int, max_flips: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``max_flips`` bits set (0 first).

    >>> _flip_masks(3, 1).tolist()
    [0, 1, 2, 4]
    """
    masks = [0]
    for k in range(1, max_flips + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return np.asarray(masks, dtype=np.int64)


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), vectorized.

    >>> _ragged_arange(np.array([5, 0]), np.array([2, 3])).tolist()
    [5, 6, 0, 1, 2]
    """
    total = int(counts.sum())
    group_first = np.cumsum(counts) - counts
    return np.repeat(starts - group_first, counts) + np.arange(total)


def equal_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i < j)`` with ``values[i] == values[j]``, sorted by ``(i, j)``, by one sort.

    Works for any 1-D array numpy can sort (integers, hashes, strings as object arrays).

    >>> [a.tolist() for a in equal_pairs(np.array(["b", "a", "b", "b"], dtype=object))]
    [[0, 0, 2], [2, 3, 3]]
    """
    values = np.asarray(values).ravel()
    if len(values) < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    rows_i, rows_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    # Pairs inside each group of equal values: for offset k, element p pairs with p + k.
    for k in range(1, int(sizes.max())):
        has = sizes > k
        pos = _ragged_arange(starts[has], sizes[has] - k)
        rows_i.append(order[pos])
        rows_j.append(order[pos + k])
    return _normalise(np.concatenate(rows_i), np.concatenate(rows_j), len(values))


def _normalise(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Order each pair (min, max), drop self pairs, de-duplicate, sort by (i, j)."""
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    keep = lo != hi
    key = np.unique(lo[keep] * n + hi[keep])
    return key // n, key % n


def near_pairs(hashes: np.ndarray, radius: int, n_bands: int | None = None,
               chunk_size: int = 1 << 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``(i < j)`` of uint64 hashes within Hamming distance ``radius``.

    Returns ``(rows_i, rows_j, distances)`` sorted by ``(i, j)``; identical to
    ``brute_force_pairs`` (tested).

    >>> h = np.array([0b0000, 0b0011, 0xFFFF, 0b0001], np.uint64)
    >>> [a.tolist() for a in near_pairs(h, radius=1)]
    [[0, 1], [3, 3], [1, 1]]
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64).ravel()
    n = len(hashes)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty, empty
    radius = int(radius)
    m = n_bands or choose_n_bands(n, radius)
    if m == 1:
        if radius != 0:
            raise ValueError("one band only supports radius 0; use n_bands >= 3")
        i, j = equal_pairs(hashes)
        return i, j, np.zeros(len(i), np.int64)
    cand_i, cand_j = [], []
    positions = np.arange(n, dtype=np.int64)
    for (shift, width), probe_flips in zip(_band_layout(m), band_probe_radii(radius, m)):
        if width > MAX_BAND_BITS:
            raise ValueError(f"band of {width} bits > {MAX_BAND_BITS}: use more bands (n_bands={m})")
        if probe_flips < 0:
            continue
        band = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        # Work in band-sorted order: bucket members are contiguous, so gathering the partners'
        # hashes reads memory almost sequentially.
        order = np.argsort(band, kind="stable")
        band_sorted = band[order]
        hash_sorted = hashes[order]
        counts = np.bincount(band, minlength=1 << width)
        starts = np.cumsum(counts) - counts
        for mask in _flip_masks(width, probe_flips):
            if mask == 0:
                # own bucket: each element pairs with the members after it (i < j in sorted order)
                first = positions + 1
                hits = starts[band_sorted] + counts[band_sorted] - first
                queries = positions
            else:
                # (u, u ^ mask) is reached from both ends: probe only from the end whose top
                # flipped bit is 0, which halves the work and never misses a pair.
                top_bit = 1 << (int(mask).bit_length() - 1)
                queries = positions[(band_sorted & top_bit) == 0]
                probe = band_sorted[queries] ^ mask
                hits = counts[probe]
                nonempty = hits > 0
                queries, probe, hits = queries[nonempty], probe[nonempty], hits[nonempty]
                first = starts[probe]
            for lo in range(0, len(queries), chunk_size):
                q = queries[lo:lo + chunk_size]
                c = hits[lo:lo + chunk_size]
                partner = _ragged_arange(first[lo:lo + chunk_size] if mask else first[q], c)
                q = np.repeat(q, c)
                close = hamming(hash_sorted[q], hash_sorted[partner]) <= radius
                cand_i.append(order[q[close]])
                cand_j.append(order[partner[close]])
    i, j = _normalise(np.concatenate(cand_i), np.concatenate(cand_j), n)
    return i, j, hamming(hashes[i], hashes[j])


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays as int64.

    >>> hamming(np.array([7], np.uint64), np.array([0], np.uint64)).tolist()
    [3]
    """
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def brute_force_pairs(hashes: np.ndarray, radius: int, chunk_rows: int = 256
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference all-pairs search: XOR + popcount of every pair (upper triangle), in row chunks.

    >>> h = np.array([0b0000, 0b0011, 0xFFFF, 0b0001], np.uint64)
    >>> [a.tolist() for a in brute_force_pairs(h, radius=1)]
    [[0, 1], [3, 3], [1, 1]]
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64).ravel()
    n = len(hashes)
    rows_i, rows_j = [], []
    for lo in range(0, n, chunk_rows):
        hi = min(n, lo + chunk_rows)
        # rows lo..hi-1 against columns lo..n-1; strict upper triangle kept below
        dist = np.bitwise_count(hashes[lo:hi, None] ^ hashes[None, lo:])
        r, c = np.nonzero(dist <= radius)
        c = c + lo
        r = r + lo
        keep = c > r
        rows_i.append(r[keep])
        rows_j.append(c[keep])
    i = np.concatenate(rows_i or [np.zeros(0, np.int64)]).astype(np.int64)
    j = np.concatenate(rows_j or [np.zeros(0, np.int64)]).astype(np.int64)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    return i, j, hamming(hashes[i], hashes[j])


def query_pairs(queries: np.ndarray, database: np.ndarray, radius: int, n_bands: int | None = None,
                chunk_size: int = 1 << 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``(q, d)`` with ``hamming(queries[q], database[d]) <= radius``, by multi-index hashing
    of ``database`` (same pigeonhole bands as :func:`near_pairs`, probed from every query).

    Returns ``(query_rows, database_rows, distances)`` sorted by ``(q, d)``.

    >>> q = np.array([0b0000, 0xFF00], np.uint64); db = np.array([0b0001, 0xFF00, 0b0111], np.uint64)
    >>> [a.tolist() for a in query_pairs(q, db, radius=1)]
    [[0, 1], [0, 1], [1, 0]]
    """
    queries = np.ascontiguousarray(queries, dtype=np.uint64).ravel()
    database = np.ascontiguousarray(database, dtype=np.uint64).ravel()
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    n_db = len(database)
    m = n_bands or max(3, choose_n_bands(max(n_db, 1), radius))
    found_q, found_d = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    if len(queries) and n_db:
        for (shift, width), probe_flips in zip(_band_layout(m), band_probe_radii(radius, m)):
            if probe_flips < 0:
                continue
            mask_bits = np.uint64((1 << width) - 1)
            band_db = ((database >> np.uint64(shift)) & mask_bits).astype(np.int64)
            band_q = ((queries >> np.uint64(shift)) & mask_bits).astype(np.int64)
            order = np.argsort(band_db, kind="stable")
            counts = np.bincount(band_db, minlength=1 << width)
            starts = np.cumsum(counts) - counts
            for mask in _flip_masks(width, probe_flips):
                for lo in range(0, len(queries), chunk_size):
                    q = np.arange(lo, min(len(queries), lo + chunk_size))
                    probe = band_q[q] ^ mask
                    hits = counts[probe]
                    partner = order[_ragged_arange(starts[probe], hits)]
                    q = np.repeat(q, hits)
                    close = hamming(queries[q], database[partner]) <= radius
                    found_q.append(q[close])
                    found_d.append(partner[close])
    key = np.unique(np.concatenate(found_q) * max(n_db, 1) + np.concatenate(found_d))
    qi, di = key // max(n_db, 1), key % max(n_db, 1)
    return qi, di, hamming(queries[qi], database[di])
