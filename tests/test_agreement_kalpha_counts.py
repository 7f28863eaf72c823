"""Nominal alpha's counting (bincount fast path) against a direct coincidence-matrix computation.

Oracle: Krippendorff's definition written out with an explicit coincidence matrix per unit
(o_ck = sum_u sum_{i != j} [v_i = c][v_j = k] / (m_u - 1)), independent of kalpha.py's counting.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.agreement.kalpha import dense_codes, nominal_alpha_counts


def alpha_by_coincidences(unit, value):
    cats = sorted(set(value))
    idx = {c: i for i, c in enumerate(cats)}
    o = np.zeros((len(cats), len(cats)))
    for u in set(unit):
        vs = [value[i] for i in range(len(unit)) if unit[i] == u]
        if len(vs) < 2:
            continue
        for i in range(len(vs)):
            for j in range(len(vs)):
                if i != j:
                    o[idx[vs[i]], idx[vs[j]]] += 1 / (len(vs) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    do = o.sum() - np.trace(o)
    de = (n * n - (n_c**2).sum()) / (n - 1) if n > 1 else 0
    if n < 2:
        return float("nan")
    if de == 0:
        return 1.0 if do == 0 else float("nan")
    return 1 - do / de


obs = st.lists(st.tuples(st.integers(0, 30), st.integers(-1, 3)), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(obs, st.sampled_from([0, 10**6]))
def test_nominal_alpha_equals_coincidence_matrix(pairs, shift):
    unit = np.array([p[0] + shift for p in pairs], dtype=np.int64)  # shift: the np.unique path
    value = np.array([p[1] for p in pairs], dtype=np.int64)
    got = nominal_alpha_counts(unit, value)
    want = alpha_by_coincidences(unit.tolist(), value.tolist())
    assert (np.isnan(got) and np.isnan(want)) or abs(got - want) < 1e-9


@given(st.lists(st.integers(0, 10**7), max_size=40))
def test_dense_codes_equals_unique(keys):
    keys = np.array(keys, dtype=np.int64)
    got = dense_codes(keys)
    want = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
