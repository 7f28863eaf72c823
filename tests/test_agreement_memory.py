"""The agreement audit's memory savings against what they replace: the same numbers, bit for bit.

Pieces fed one at a time equal the joined arrays (pandas' groupby sum, ``np.bincount``); edge
offsets recomputed at a few rows equal the full member table's; the narrowed joined arrays hold the
values of a single pass (see ``test_agreement_speedups.random_annotators``)."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from test_agreement_speedups import random_annotators


def test_running_group_sum_of_pieces_is_pandas_groupby_sum_of_the_joined_arrays():
    from iou_audit.audits.agreement.cluster_stats import RunningGroupSum

    rng = np.random.default_rng(7)
    pieces = [(rng.integers(0, 40, n), rng.uniform(0, 1, n) * 10.0 ** rng.integers(-8, 8, n)) for n in (5000, 1, 0, 7000)]
    running = RunningGroupSum(40)
    for i, (g, v) in enumerate(pieces):
        running.add(g, None if i == 1 else v)  # None: zeros, which still move the compensation
    group = np.concatenate([g for g, _ in pieces])
    values = np.concatenate([np.zeros(len(g)) if i == 1 else v for i, (g, v) in enumerate(pieces)])
    want = pd.Series(values).groupby(group).sum().reindex(range(40)).to_numpy()
    np.testing.assert_array_equal(running.total, want)
    assert not running.sorted
    ordered = RunningGroupSum(3)
    ordered.add(np.array([0, 0, 1])), ordered.add(np.array([1, 2]))
    assert ordered.sorted
    ordered.add(np.array([1]))
    assert not ordered.sorted


def test_add_in_order_of_pieces_is_one_bincount_of_the_joined_arrays():
    from iou_audit.audits.agreement.cluster_stats import add_in_order

    rng = np.random.default_rng(3)
    idx = [rng.integers(0, 30, n) for n in (4000, 0, 9000)]
    w = [rng.uniform(0, 1, len(i)) * 10.0 ** rng.integers(-8, 8, len(i)) for i in idx]
    out = np.zeros((30, 4))
    for i, x in zip(idx, w):
        add_in_order(out[:, 2], i, x)  # a strided column, as per_image_and_class fills it
    np.testing.assert_array_equal(out[:, 2], np.bincount(np.concatenate(idx), weights=np.concatenate(w), minlength=30))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_edge_offsets_at_some_rows_equal_the_full_member_table(seed):
    from iou_audit.audits.agreement.clusters import build_clusters
    from iou_audit.audits.agreement.core import coverage_matrix
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import cluster_table, edge_offsets

    tables, covered = random_annotators(seed)
    pms = match_all_pairs(tables, 0.3)
    clusters = build_clusters(tables, pms)
    _, mem = cluster_table(tables, clusters, pms, coverage_matrix(tables, covered), None)
    rows = np.flatnonzero(np.random.default_rng(seed).random(len(mem)) < 0.3)
    got = edge_offsets(tables, mem.cluster.to_numpy(), mem.annotator.to_numpy(), mem.row.to_numpy(), rows)
    want = mem[["d_left", "d_top", "d_right", "d_bottom"]].to_numpy()[rows]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_narrowed_joined_arrays_hold_the_single_pass_values(seed):
    from iou_audit.audits.agreement import compute_agreement
    from iou_audit.audits.agreement.clusters import build_clusters
    from iou_audit.audits.agreement.core import coverage_matrix
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import cluster_table

    tables, covered = random_annotators(seed)
    r = compute_agreement(tables, coverage=covered, compute_map=False)
    pms = match_all_pairs(tables, 0.5)
    clusters = build_clusters(tables, pms)
    _, mem = cluster_table(tables, clusters, pms, coverage_matrix(tables, covered), None)
    assert r.member_rows.annotator.dtype == np.int8 and "d_left" not in r.member_rows
    full = r.members  # the legacy member table: int64 indices, edge offsets, ids and classes
    for col in ("cluster", "annotator", "row", "own_votes", "member_iou", "d_left", "d_top", "d_right", "d_bottom",
                "label", "label_id"):
        assert full[col].dtype == mem[col].dtype or col in ("label", "label_id"), col
        np.testing.assert_array_equal(full[col].to_numpy(), mem[col].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(r.clusters.members, clusters.members)
    for k in range(len(tables)):
        np.testing.assert_array_equal(r.clusters.cluster_of[k], clusters.cluster_of[k])
    for got, want in zip(r.pair_matches, pms):
        np.testing.assert_array_equal(got.match_a, want.match_a)
        np.testing.assert_array_equal(got.match_b, want.match_b)
