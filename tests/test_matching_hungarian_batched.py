"""Batched Hungarian (conflict-free samples solved without scipy) == scipy on every image alone.

Oracle: ``hungarian_match`` per image (``scipy.optimize.linear_sum_assignment`` on that image's
block), plus the brute-force optimum total in tests/test_matching.py. The strategy draws sparse
blocks (most rows one candidate: the fast path) mixed with dense ones (conflicts: scipy), ties
(repeated IoU values) and class labels, so both paths and their seam are exercised.
"""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iou_audit.matching import batched_match, hungarian_match

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image(draw):
    n, m = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    density = draw(st.sampled_from([0.1, 0.3, 1.0]))
    value = st.one_of(st.sampled_from([0.0, 0.5, 0.6, 0.6, 0.9, 1.0]), st.floats(0, 1))
    ious = np.array(draw(st.lists(value, min_size=n * m, max_size=n * m)), float).reshape(n, m)
    keep = np.array(draw(st.lists(st.floats(0, 1), min_size=n * m, max_size=n * m)), float).reshape(n, m) < density
    labels1 = np.array(draw(st.lists(st.sampled_from("ab"), min_size=n, max_size=n)), dtype=object)
    labels2 = np.array(draw(st.lists(st.sampled_from("ab"), min_size=m, max_size=m)), dtype=object)
    return np.where(keep, ious, 0.0), labels1, labels2


def brute_force_total(ious, thresh):
    n, m = ious.shape
    ok = (ious >= thresh) & (ious > 0)
    best = 0.0
    for perm in itertools.permutations(range(max(n, m)), n) if n <= m else []:
        best = max(best, sum(ious[i, j] for i, j in enumerate(perm) if j < m and ok[i, j]))
    if n > m:
        return brute_force_total(ious.T, thresh)
    return best


@SETTINGS
@given(st.lists(image(), min_size=1, max_size=8), st.sampled_from([0.3, 0.5, 0.75]),
       st.sampled_from(["geometry_first", "classwise"]))
def test_batched_hungarian_identical_to_scipy_per_image(images, thresh, mode):
    n1 = [im[0].shape[0] for im in images]
    n2 = [im[0].shape[1] for im in images]
    off1 = np.concatenate([[0], np.cumsum(n1)]).astype(np.int64)
    off2 = np.concatenate([[0], np.cumsum(n2)]).astype(np.int64)
    po = np.concatenate([[0], np.cumsum(np.multiply(n1, n2))]).astype(np.int64)
    values = np.concatenate([im[0].ravel() for im in images])
    l1 = np.concatenate([im[1] for im in images])
    l2 = np.concatenate([im[2] for im in images])
    m1, _, m2, _ = batched_match(values, po, off1, off2, None, thresh, method="hungarian",
                                 labels1=l1, labels2=l2, mode=mode)
    for s, (ious, a, b) in enumerate(images):
        r2c, c2r = hungarian_match(ious, thresh, labels1=a, labels2=b, mode=mode)
        got1 = m1[off1[s]:off1[s + 1]]
        got2 = m2[off2[s]:off2[s + 1]]
        # identical pairs, not merely an equally good assignment
        np.testing.assert_array_equal(np.where(got1 >= 0, got1 - off2[s], -1), r2c)
        np.testing.assert_array_equal(np.where(got2 >= 0, got2 - off1[s], -1), c2r)
        if mode == "geometry_first" and max(ious.shape) <= 6:
            rows = np.flatnonzero(r2c >= 0)
            assert abs(ious[rows, r2c[rows]].sum() - brute_force_total(ious, thresh)) < 1e-9


def test_conflict_free_and_conflicting_images_in_one_batch():
    # image 0: diagonal (conflict-free, no scipy); image 1: greedy trap (needs the optimum)
    a = np.array([[0.9, 0.0], [0.0, 0.7]])
    b = np.array([[0.9, 0.6], [0.8, 0.0]])
    values = np.concatenate([a.ravel(), b.ravel()])
    off = np.array([0, 2, 4])
    m1, iou1, _, _ = batched_match(values, np.array([0, 4, 8]), off, off, None, 0.5, method="hungarian")
    assert m1.tolist() == [0, 1, 3, 2]
    assert iou1.tolist() == [0.9, 0.7, 0.6, 0.8]
