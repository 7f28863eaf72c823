"""Group sums and codes shared by the agreement statistics (``stats.py``), and the quorum rule.

``group_sum`` sums the way pandas' ``groupby().sum()`` does (Kahan-compensated, in row order), so
the per-image and per-class tables are bit-identical to the groupby code they replaced.

An array re-implementation of the whole per-object table (``cluster_table_arrays``) used to live
here too, bit-identical to ``stats.cluster_table``'s pandas path. ``bench/bench_cluster_stats.py``
measured what it saved: 2.0 % of the agreement audit (3 x 5,000 x 15; -0.9 % end to end, within
noise), under the 5 % that would justify a second implementation of the same numbers, so it was
removed and the pandas path is the only one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

EDGE_COLUMNS = ("d_left", "d_top", "d_right", "d_bottom")


def quorum_count(n_covering: np.ndarray, quorum: float | int | None) -> np.ndarray:
    """Annotators needed for an object to count as found.

    ``None``: a strict majority (n // 2 + 1); a float in (0, 1]: ``ceil(q * n)`` (CVAT's rule); an
    int >= 1: that many, capped at ``n``. Never below 1.

    Example:
        >>> quorum_count(np.array([2, 3, 4]), None), quorum_count(np.array([2, 3, 4]), 0.5)
        (array([2, 2, 3]), array([1, 2, 2]))
    """
    n = np.asarray(n_covering, dtype=np.int64)
    if quorum is None:
        q = n // 2 + 1
    elif isinstance(quorum, (int, np.integer)) and not isinstance(quorum, bool):
        if quorum < 1:
            raise ValueError(f"integer quorum must be >= 1, got {quorum}")
        q = np.minimum(quorum, n)
    else:
        if not 0 < float(quorum) <= 1:
            raise ValueError(f"fractional quorum must be in (0, 1], got {quorum}")
        q = np.ceil(float(quorum) * n - 1e-9).astype(np.int64)
    return np.maximum(q, 1)


@njit(cache=True)
def _group_kahan(group, values, n_groups):  # pragma: no cover - compiled; tested against pandas
    # pandas' cython group_sum / group_mean: per group and column, NaN skipped, Kahan-compensated
    # running sum in row order (the compensation reset when it turns NaN, i.e. for infinities).
    n_cols = values.shape[1]
    total = np.zeros((n_groups, n_cols))
    comp = np.zeros((n_groups, n_cols))
    count = np.zeros((n_groups, n_cols), np.int64)
    for i in range(len(group)):
        g = group[i]
        for j in range(n_cols):
            val = values[i, j]
            if val == val:
                count[g, j] += 1
                y = val - comp[g, j]
                t = total[g, j] + y
                comp[g, j] = t - total[g, j] - y
                if comp[g, j] != comp[g, j]:
                    comp[g, j] = 0.0
                total[g, j] = t
    return total, count


@njit(cache=True)
def _kahan_into(total, comp, group, values):  # pragma: no cover - compiled; tested against group_sum
    # _group_kahan's loop for one column, continuing the running sums ``total``/``comp`` in place
    for i in range(len(group)):
        g = group[i]
        val = values[i]
        if val == val:
            y = val - comp[g]
            t = total[g] + y
            comp[g] = t - total[g] - y
            if comp[g] != comp[g]:
                comp[g] = 0.0
            total[g] = t


class RunningGroupSum:
    """:func:`group_sum` of a concatenation fed piece by piece (the pieces are not joined: memory),
    bit-identical to ``group_sum`` of the joined arrays; it also tells whether the joined group ids
    are sorted (:func:`is_sorted`, where pandas sums otherwise).

    Example:
        >>> r = RunningGroupSum(2)
        >>> r.add(np.array([0, 1]), np.array([0.1, 5.0])); r.add(np.array([0]), np.array([0.2]))
        >>> r.total.tolist(), bool(r.sorted)
        ([0.30000000000000004, 5.0], False)
    """

    def __init__(self, n_groups: int):
        self.total, self.comp = np.zeros(int(n_groups)), np.zeros(int(n_groups))
        self.sorted, self.last = True, None

    def add(self, group: np.ndarray, values: np.ndarray | None = None) -> None:
        """Append ``group`` ids with ``values`` (None: zeros, which still move the compensation)."""
        group = np.asarray(group, np.int64)
        if not len(group):
            return
        if self.sorted:
            self.sorted = is_sorted(group) and (self.last is None or group[0] >= self.last)
        self.last = group[-1]
        values = np.zeros(len(group)) if values is None else np.ascontiguousarray(values, np.float64)
        _kahan_into(self.total, self.comp, group, values)


@njit(cache=True)
def _add_in_order(out, index, weights):  # pragma: no cover - compiled; tested against np.bincount
    for i in range(len(index)):
        out[index[i]] += weights[i]


def add_in_order(out: np.ndarray, index: np.ndarray, weights: np.ndarray) -> None:
    """``out += np.bincount(index, weights)`` summed as one bincount over pieces added one after
    another would sum them: every weight added in order into ``out`` (so feeding the pieces of a
    concatenation to a zero ``out`` equals ``np.bincount`` of the concatenation, bit for bit).

    Example:
        >>> out = np.zeros(2); add_in_order(out, np.array([1, 1]), np.array([0.5, 0.25])); out.tolist()
        [0.0, 0.75]
    """
    _add_in_order(out, np.asarray(index, np.int64), np.ascontiguousarray(weights, np.float64))


def is_sorted(group: np.ndarray) -> bool:
    """Group ids in non-decreasing order: pandas' groupby then sums and averages floats with
    ``ufunc.reduceat`` (when no value is NaN), not with the compensated loop :func:`group_sum` reproduces, so callers leave that case to pandas.

    Example:
        >>> is_sorted(np.array([0, 0, 1])), is_sorted(np.array([1, 0]))
        (True, False)
    """
    group = np.asarray(group)
    return bool(len(group) == 0 or (group[1:] >= group[:-1]).all())


def group_sum(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups,) sums of ``values`` (N,) per ``group``, bit-identical to ``groupby(group).sum()``
    when ``group`` is not sorted (see :func:`is_sorted`).

    Example:
        >>> group_sum(np.array([0, 1, 0]), np.array([0.1, 5.0, 0.2]), 2).tolist()
        [0.30000000000000004, 5.0]
    """
    values = np.ascontiguousarray(values, np.float64).reshape(-1, 1)
    return _group_kahan(np.asarray(group, np.int64), values, int(n_groups))[0][:, 0]


def string_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, names)``: class code of every label in the labels' string order, or None when some
    label is not a ``str`` (pandas would order and drop those differently: use its path).

    Example:
        >>> string_labels(np.array(["dog", "cat", "dog"], dtype=object))
        (array([1, 0, 1]), array(['cat', 'dog'], dtype=object))
    """
    codes, uniq = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=False)
    uniq = np.asarray(uniq, dtype=object)
    if not all(type(u) is str for u in uniq):
        return None
    order = np.array(sorted(range(len(uniq)), key=uniq.__getitem__), dtype=np.int64)  # str order, few labels
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[codes], uniq[order]
