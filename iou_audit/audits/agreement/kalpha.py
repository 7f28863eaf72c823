"""Krippendorff's alpha for object annotations: units are clusters of matched objects.

Nominal variant (as kalphacv, Tschirschwitz et al. DAGM'22): each annotator who covered a unit
contributes the unit's class it gave, or the category "empty" when it has no object in that
cluster; annotators who did not cover the sample contribute nothing (missing, not pairable).
With ``n_uc`` the count of value ``c`` in unit ``u`` and ``m_u`` the unit's pairable values:

    alpha = 1 - (n - 1) * sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1)  /  (n^2 - sum_c n_c^2)

Interval variant: the distance between two annotators' values is ``1 - IoU`` of their shapes
(1 between a shape and "empty", 0 between two empties); shapes of different units are taken as
distinct objects (IoU 0) when computing the expected disagreement, so no cross-image IoU is needed.
This removes the cliff of a single IoU threshold: a 0.49 and a 0.51 overlap differ by 0.02.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def dense_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for int keys; a bincount when their range is small.

    Example:
        >>> dense_codes(np.array([7, 2, 7, 5]))
        (array([2, 5, 7]), array([2, 0, 2, 1]))
    """
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) and keys.min() >= 0 and keys.max() <= 4 * len(keys) + 1024:
        present = np.bincount(keys) > 0
        rank = np.cumsum(present) - 1
        return np.flatnonzero(present), rank[keys]
    return np.unique(keys, return_inverse=True)


def _square_sums(key: np.ndarray, nv: int, n_rows: int) -> np.ndarray:
    """Per row ``r``: sum over values of (count of ``key == r * nv + value``)^2 (exact integers, so
    either way of counting gives the same floats)."""
    # a dense count only when it is no larger than the keys (at 100,000 samples the bootstrap's
    # units x values count was 3 x 140 MB against a sort of 40 MB of keys)
    if n_rows * nv <= len(key) + 1024:
        counts = np.bincount(key, minlength=n_rows * nv).astype(float)
        return (counts**2).reshape(n_rows, nv).sum(axis=1)
    keys, counts = np.unique(key, return_counts=True)
    return np.bincount(keys // nv, weights=counts.astype(float) ** 2, minlength=n_rows)


def nominal_alpha_counts(unit: np.ndarray, value: np.ndarray, group: np.ndarray | None = None):
    """Nominal alpha from (unit, value) observations; optionally one alpha per ``group``.

    ``unit`` and ``value`` are int arrays, one entry per pairable observation (a rater's value for
    a unit; missing values are simply left out). Units with fewer than 2 values are ignored.
    Returns a float (or, with ``group`` given per observation, ``(groups, alphas)``). Perfect
    agreement with no variation at all (expected disagreement 0) gives 1.0, as kalphacv does.

    Example (kalphacv's unit test: raters [[c1, c2], [c2, empty]] -> -0.2):
        >>> round(nominal_alpha_counts(np.array([0, 0, 1, 1]), np.array([1, 2, 2, 0])), 4)
        -0.2
    """
    unit = np.asarray(unit, dtype=np.int64)
    value = np.asarray(value, dtype=np.int64)
    g = np.zeros(len(unit), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    if len(unit) == 0:
        return float("nan") if group is None else (np.zeros(0, np.int64), np.zeros(0))
    _, u = dense_codes(unit)
    keep = np.bincount(u)[u] >= 2  # units with fewer than 2 pairable values carry no information
    u, value, g = u[keep], value[keep], g[keep]
    groups, gi = dense_codes(g)
    if len(u) == 0:
        return float("nan") if group is None else (groups, np.full(len(groups), np.nan))
    v = value - value.min()
    nv = int(v.max()) + 1
    n_units = int(u.max()) + 1
    if len(groups) * nv <= 4 * len(u) + 1024 and int(np.bincount(u).max()) <= 64:
        do_sum, n, de_sum = _sums_compiled(u, v, gi, n_units, len(groups), nv)
    else:
        do_sum, n, de_sum = _sums_numpy(u, v, gi, n_units, len(groups), nv)
    alpha = _ratio(n, do_sum, de_sum)
    return float(alpha[0]) if group is None else (groups, alpha)


@njit(cache=True)
def _nominal_sums_kernel(u, v, gi, n_units, n_groups, nv):  # pragma: no cover - compiled; tested against _sums_numpy
    m = np.zeros(n_units, np.int64)
    for i in range(len(u)):
        m[u[i]] += 1
    start = np.zeros(n_units + 1, np.int64)
    for k in range(n_units):
        start[k + 1] = start[k] + m[k]
    fill = start[:-1].copy()
    vals = np.empty(len(u), np.int64)
    unit_group = np.zeros(n_units, np.int64)
    counts = np.zeros((n_groups, nv), np.int64)
    for i in range(len(u)):
        vals[fill[u[i]]] = v[i]
        fill[u[i]] += 1
        unit_group[u[i]] = gi[i]  # the last observation's group, as numpy's fancy assignment
        counts[gi[i], v[i]] += 1
    do_sum = np.zeros(n_groups)
    for k in range(n_units):  # units in order: the order np.bincount adds them in
        if m[k] < 2:
            continue
        same = m[k]  # sum over values of (count in the unit)^2 = pairs of equal values, ordered
        for a in range(start[k], start[k + 1]):
            for b in range(a + 1, start[k + 1]):
                if vals[a] == vals[b]:
                    same += 2
        mf = float(m[k])
        do_sum[unit_group[k]] += (mf ** 2 - float(same)) / (mf - 1.0)
    n = np.zeros(n_groups, np.int64)
    sq = np.zeros(n_groups, np.int64)
    for g in range(n_groups):
        for c in range(nv):
            n[g] += counts[g, c]
            sq[g] += counts[g, c] * counts[g, c]
    return do_sum, n, sq


def _sums_compiled(u, v, gi, n_units: int, n_groups: int, nv: int):
    """:func:`_sums_numpy` in one compiled pass (units of at most 64 values: the pairwise count of
    equal values stays cheap): the same per-unit terms summed in the same order, the counts exact
    integers (5.5 -> 1.5 ms per call on the benchmark's 230,000 observations)."""
    do_sum, n, sq = _nominal_sums_kernel(u, v, gi, n_units, n_groups, nv)
    nf = n.astype(float)
    return do_sum, nf, nf**2 - sq.astype(float)


def _sums_numpy(u, v, gi, n_units: int, n_groups: int, nv: int):
    """Per group: the summed unit disagreement, the pairable values n and ``n^2 - sum_c n_c^2``."""
    # Sums of squared counts per unit and per group, from 1-D integer keys (bincount or np.unique).
    sq_unit = _square_sums(u * nv + v, nv, n_units)
    m_unit = np.bincount(u, minlength=n_units).astype(float)
    ok = m_unit >= 2
    d_unit = np.zeros(n_units)
    d_unit[ok] = (m_unit[ok] ** 2 - sq_unit[ok]) / (m_unit[ok] - 1)
    unit_group = np.zeros(n_units, dtype=np.int64)
    unit_group[u] = gi
    do_sum = np.bincount(unit_group[ok], weights=d_unit[ok], minlength=n_groups)
    sq_group = _square_sums(gi * nv + v, nv, n_groups)
    n = np.bincount(gi, minlength=n_groups).astype(float)
    return do_sum, n, n**2 - sq_group


def _ratio(n: np.ndarray, do_sum: np.ndarray, de_sum: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = 1.0 - (n - 1.0) * do_sum / de_sum
    # No expected disagreement: perfect (1) if nothing disagrees, else undefined.
    alpha = np.where(de_sum > 0, alpha, np.where(do_sum > 0, np.nan, 1.0))
    return np.where(n >= 2, alpha, np.nan)


def interval_alpha(
    n_covering: np.ndarray,
    n_present: np.ndarray,
    pair_iou_sum: np.ndarray,
    group: np.ndarray | None = None,
):
    """Alpha with distance ``1 - IoU`` between shapes (1 to "empty", 0 between empties).

    Per unit (cluster): ``n_covering`` annotators who labelled the sample (pairable values),
    ``n_present`` of them with a shape in the unit, ``pair_iou_sum`` the sum of IoU over the
    unordered pairs of present shapes.

    Example: two units, both found by both raters, IoUs 1 and 0.5:
        >>> round(interval_alpha(np.array([2, 2]), np.array([2, 2]), np.array([1.0, 0.5])), 4)
        0.6667
    """
    m = np.asarray(n_covering, dtype=float)
    p = np.asarray(n_present, dtype=float)
    s = np.asarray(pair_iou_sum, dtype=float)
    g = np.zeros(len(m), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    ok = m >= 2
    m, p, s, g = m[ok], p[ok], s[ok], g[ok]
    e = m - p
    pairs_present = p * (p - 1) / 2
    # Ordered-pair disagreement inside a unit: present pairs (1 - IoU), present-vs-empty 1.
    d_unit = 2 * ((pairs_present - s) + p * e) / (m - 1)
    groups = np.unique(g)
    gi = np.searchsorted(groups, g)
    n = np.bincount(gi, weights=m, minlength=len(groups))
    n_empty = np.bincount(gi, weights=e, minlength=len(groups))
    similar = n_empty * (n_empty - 1) + 2 * np.bincount(gi, weights=s, minlength=len(groups))
    do_sum = np.bincount(gi, weights=d_unit, minlength=len(groups))
    alpha = _ratio(n, do_sum, n * (n - 1) - similar)
    if group is None:
        return float(alpha[0]) if len(alpha) else float("nan")
    return groups, alpha


def nominal_alpha_resampled(unit, value, sample, weights: np.ndarray) -> np.ndarray:
    """Nominal alpha for each row of sample ``weights`` (B, S): sample ``s`` counted ``w[b, s]`` times.

    Alpha's sums are additive over units, hence over samples, so a weighted resample needs no
    re-counting: weights of all ones give :func:`nominal_alpha_counts`, a weight of 2 equals
    duplicating that sample's units. This is what the bootstrap below draws from.

    Example:
        >>> a = nominal_alpha_resampled([0, 0, 1, 1], [1, 2, 2, 0], [0, 0, 1, 1], np.ones((1, 2)))
        >>> round(float(a[0]), 4)
        -0.2
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    prep = _resample_sums(unit, value, sample, weights.shape[1])
    return _resampled_alphas(prep, weights)


def _resample_sums(unit, value, sample, S: int):
    """Per-sample sums of :func:`nominal_alpha_resampled` (disagreement ``do_s`` and the sparse
    (S, values) counts), or None when no unit has 2 values: computed once, applied to any weights."""
    from scipy import sparse

    unit = np.asarray(unit, np.int64)
    value = np.asarray(value, np.int64)
    sample = np.asarray(sample, np.int64)
    if len(unit) == 0:
        return None
    _, u = dense_codes(unit)
    keep = np.bincount(u)[u] >= 2
    u, value, sample = u[keep], value[keep], sample[keep]
    del keep  # per observation (millions at 100,000 samples): each freed once used
    if len(u) == 0:
        return None
    v = value - value.min()
    del value
    nv = int(v.max()) + 1
    n_units = int(u.max()) + 1
    sq_unit = _square_sums(u * nv + v, nv, n_units)
    m_unit = np.bincount(u, minlength=n_units).astype(float)
    unit_sample = np.zeros(n_units, np.int64)
    unit_sample[u] = sample
    del u
    ok = m_unit >= 2
    d_unit = np.where(ok, (m_unit**2 - sq_unit) / np.maximum(m_unit - 1, 1), 0.0)
    do_s = np.bincount(unit_sample, weights=d_unit, minlength=S)
    if S * nv <= len(v) + 1024:  # counted densely (no per-observation triplets: memory); the same matrix
        counts = sparse.csr_matrix(np.bincount(sample * nv + v, minlength=S * nv).reshape(S, nv).astype(float))
    else:
        counts = sparse.csr_matrix((np.ones(len(v)), (sample, v)), shape=(S, nv))
    return do_s, counts


def _resampled_alphas(prep, weights: np.ndarray) -> np.ndarray:
    """Alpha for each row of ``weights`` from :func:`_resample_sums` (rows are independent)."""
    if prep is None:
        return np.full(len(weights), np.nan)
    do_s, counts = prep
    do = weights @ do_s
    nc = np.asarray((counts.T @ weights.T).T)
    # pairable values per draw: the sum of its value counts (exact integers, so this equals
    # ``weights @ n_s`` and saves a pass over the (B, S) weights)
    n = nc.sum(axis=1)
    return _ratio(n, do, n**2 - (nc**2).sum(axis=1))


#: bootstrap draws weighted at a time: the (draws, samples) weights are O(BOOT_CHUNK x samples)
#: (all 500 at once: 800 MB at 100,000 samples); the draws are the same rows either way
BOOT_CHUNK = 25


def nominal_alpha_ci(unit, value, sample, n_samples: int, n_boot: int = 500, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of nominal alpha, resampling *samples* (images) with replacement.

    Images, not objects, are resampled because objects of one image are not independent.
    Returns ``(low, high)``; NaN when fewer than 2 images carry pairable values.
    """
    sample = np.asarray(sample, np.int64)
    # the samples present, in order (np.unique without sorting a copy of every observation)
    used = np.flatnonzero(np.bincount(sample)) if len(sample) and sample.min() >= 0 else np.unique(sample)
    if len(used) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    prep = _resample_sums(unit, value, sample, n_samples)
    p = np.full(len(used), 1 / len(used))
    chunks = []
    for b0 in range(0, n_boot, BOOT_CHUNK):  # the generator draws row after row: same draws as one call
        draws = rng.multinomial(len(used), p, size=min(BOOT_CHUNK, n_boot - b0))
        weights = np.zeros((len(draws), n_samples))
        weights[:, used] = draws
        chunks.append(_resampled_alphas(prep, weights))
    alphas = np.concatenate(chunks) if chunks else np.zeros(0)
    alphas = alphas[np.isfinite(alphas)]
    if not len(alphas):
        return float("nan"), float("nan")
    lo, hi = np.quantile(alphas, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
