"""Nominal alpha of the clusters at many IoU thresholds, straight from the union-find (the threshold curve).

``core.threshold_curve`` asks, for each threshold t of the curve, for the nominal alpha of the
clusters built from the matches with IoU >= t. The reference path builds the union-find roots
(``EdgeGraph.roots``), lists the observations (``clusters.alpha_observations_from_roots``) and counts
them (``kalpha.nominal_alpha_counts``). Here the union-find is grown once, from the highest
threshold down, and each threshold's alpha sums are taken in one compiled pass over its roots,
summing the same per-unit terms in the same order, so the numbers are bit-identical.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from iou_audit.audits.agreement.clusters import EdgeGraph, _constrained_link, _find


@njit(cache=True)
def _roots_alpha_sums(roots, owners, node_sample, covered, codes, n_values):
    # Per cluster (root, in increasing id = the unit order of nominal_alpha_counts): its members'
    # codes plus -1 for each covering annotator it lacks; m_u values, sum_c n_uc^2 from pairwise
    # equality (at most K values a unit). Returns (n, do_sum, sum_c n_c^2) over units with m_u >= 2.
    n_nodes = len(roots)
    K = covered.shape[1]
    start = np.zeros(n_nodes + 1, np.int64)
    for i in range(n_nodes):
        start[roots[i] + 1] += 1
    for i in range(n_nodes):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    by_root = np.empty(n_nodes, np.int64)
    for i in range(n_nodes):
        by_root[fill[roots[i]]] = i
        fill[roots[i]] += 1
    vals = np.empty(K, np.int64)
    totals = np.zeros(n_values + 1, np.int64)  # index 0: "empty" (-1), c + 1: class c
    n = 0
    do_sum = 0.0
    for r in range(n_nodes):
        if roots[r] != r:
            continue
        m = 0
        for q in range(start[r], start[r + 1]):
            vals[m] = codes[by_root[q]]
            m += 1
        s = node_sample[r]
        for k in range(K):
            if covered[s, k] and ((owners[r] >> k) & 1) == 0:
                vals[m] = -1
                m += 1
        if m < 2:
            continue
        same = m
        for i in range(m):
            totals[vals[i] + 1] += 1
            for j in range(i + 1, m):
                if vals[i] == vals[j]:
                    same += 2
        mf = float(m)
        do_sum += (mf ** 2 - float(same)) / (mf - 1.0)
        n += m
    sq = 0
    for c in range(n_values + 1):
        sq += totals[c] * totals[c]
    return n, do_sum, sq


def alpha_from_roots(g: EdgeGraph, roots: np.ndarray, owners: np.ndarray, covered: np.ndarray, codes: np.ndarray) -> float:
    """Nominal alpha of the clusters given by union-find ``roots`` in one compiled pass.

    Equals ``kalpha.nominal_alpha_counts(*alpha_observations_from_roots(...))`` bit for bit: the
    same per-unit terms, summed in the same (unit) order, the count sums exact integers; it skips
    building, deduplicating and counting the observation arrays (6.6 ms -> 1 ms per threshold of
    the curve on the 3 x 5,000 x 15 benchmark).

    Example: two annotators, one cluster with both (same class) and one label alone:
        >>> g = EdgeGraph(np.array([0, 2, 3]), np.array([0, 0, 1]), np.array([0, 0, 0]), np.array([0, 1, 2]),
        ...               np.array([0]), np.array([2]), np.array([0.9]))
        >>> round(alpha_from_roots(g, *g.roots(), np.ones((1, 2), bool), np.array([0, 0, 0])), 4)
        0.0
    """
    from iou_audit.audits.agreement.kalpha import _ratio

    codes = np.asarray(codes, np.int64)
    n_values = int(codes.max()) + 1 if len(codes) else 0
    n, do_sum, sq = _roots_alpha_sums(np.asarray(roots, np.int64), np.asarray(owners, np.int64), g.node_sample,
                                      np.ascontiguousarray(covered, dtype=np.bool_), codes, n_values)
    if n == 0:
        return float("nan")
    nf = np.array([float(n)])
    return float(_ratio(nf, np.array([do_sum]), nf**2 - float(sq))[0])


@njit(cache=True)
def _curve_sums_kernel(node_annotator, u, v, w, thresholds, node_sample, covered, codes, n_values):  # pragma: no cover
    # Thresholds from the highest down, one union-find grown edge by edge: a sample's edges are
    # sorted by decreasing IoU, so those >= t are a prefix of its edges and adding the ones in
    # [t, previous t) continues every sample's visit in order (samples share no edge). Roots are
    # each component's smallest node, whatever the order of unions, so every step holds exactly
    # what _constrained_union returns for its threshold.
    n_nodes = len(node_annotator)
    parent = np.arange(n_nodes)
    owners = np.zeros(n_nodes, dtype=np.int64)
    for i in range(n_nodes):
        owners[i] = np.int64(1) << node_annotator[i]
    order = np.argsort(-thresholds)
    n_out = np.zeros(len(thresholds), np.int64)
    do_out = np.zeros(len(thresholds))
    sq_out = np.zeros(len(thresholds), np.int64)
    roots = np.empty(n_nodes, dtype=np.int64)
    added = np.zeros(len(u), np.bool_)
    for q in range(len(order)):
        t = thresholds[order[q]]
        for e in range(len(u)):
            if w[e] >= t and not added[e]:
                added[e] = True
                _constrained_link(parent, owners, u[e], v[e])
        for i in range(n_nodes):
            roots[i] = _find(parent, i)
        n, do_sum, sq = _roots_alpha_sums(roots, owners, node_sample, covered, codes, n_values)
        n_out[order[q]] = n
        do_out[order[q]] = do_sum
        sq_out[order[q]] = sq
    return n_out, do_out, sq_out


def curve_alphas(g: EdgeGraph, thresholds, covered: np.ndarray, codes: np.ndarray) -> list[float]:
    """``[alpha_from_roots(g, *g.roots(t), covered, codes) for t in thresholds]`` in one compiled pass.

    The union-find is built once, from the highest threshold down, instead of once per threshold
    (about 2.8 -> 1.5 ms per threshold on the 3 x 5,000 x 15 benchmark); see the kernel for why
    each step equals the separate run.

    Example (the graph of :func:`alpha_from_roots`: the edge's IoU is 0.9):
        >>> g = EdgeGraph(np.array([0, 2, 3]), np.array([0, 0, 1]), np.array([0, 0, 0]), np.array([0, 1, 2]),
        ...               np.array([0]), np.array([2]), np.array([0.9]))
        >>> [round(a, 4) for a in curve_alphas(g, [0.5, 0.95], np.ones((1, 2), bool), np.array([0, 0, 0]))]
        [0.0, -0.6667]
    """
    from iou_audit.audits.agreement.kalpha import _ratio

    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if len(thresholds) == 0:
        return []
    codes = np.asarray(codes, np.int64)
    n_values = int(codes.max()) + 1 if len(codes) else 0
    n, do_sum, sq = _curve_sums_kernel(g.node_annotator, g.u, g.v, np.asarray(g.w, np.float64), thresholds, g.node_sample,
                                       np.ascontiguousarray(covered, dtype=np.bool_), codes, n_values)
    nf = n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = _ratio(nf, do_sum, nf**2 - sq.astype(float))
    return [float("nan") if k == 0 else float(a) for k, a in zip(n, alpha)]
