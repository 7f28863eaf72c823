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
