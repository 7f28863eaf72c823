"""The agreement audit's table fast paths (cluster, per-class, annotator tables, findings) against
the pandas code they replace, kept as the fallback in ``stats.py`` or copied here as it was: same
columns, dtypes and bits, on random annotators (see ``test_agreement_speedups.random_annotators``)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_agreement_speedups import random_annotators

from iou_audit.audits.agreement.findings import _frame as frame


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_per_class_table_on_codes_equals_the_pandas_groupby(seed, one_class):
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import per_image_and_class

    tables, covered = random_annotators(seed)
    if one_class:  # sorted groups: pandas sums with reduceat, not its compensated loop
        for t in tables:
            t.label = np.array(["p"] * len(t.label) + [None], dtype=object)[:-1]
    pms = match_all_pairs(tables, 0.3)
    img, got = per_image_and_class(tables, pms, covered)
    for t in tables:  # np.str_ labels are not ``str`` exactly: the pandas path runs, same strings
        t.label = np.array([np.str_(x) for x in t.label] + [None], dtype=object)[:-1]
    img2, want = per_image_and_class(tables, pms, covered)
    assert img.equals(img2)
    assert list(got.columns) == list(want.columns) and got.dtypes.equals(want.dtypes), (got.dtypes, want.dtypes)
    assert got.equals(want)


def test_group_sum_is_pandas_groupby_sum_bit_for_bit():
    from iou_audit.audits.agreement.cluster_stats import group_sum

    rng = np.random.default_rng(4)
    group = rng.integers(0, 50, 20000)
    values = rng.uniform(0, 1, 20000) * 10.0 ** rng.integers(-8, 8, 20000)
    values[rng.random(20000) < 0.3] = 0.0  # zeros still move a compensated sum
    want = pd.Series(values).groupby(group).sum().reindex(range(50)).to_numpy()
    np.testing.assert_array_equal(group_sum(group, values, 50), want)
    assert not np.array_equal(np.bincount(group, weights=values, minlength=50), want)


def class_agrees_reference(mem: pd.DataFrame) -> np.ndarray:
    """Per member: the others' class counts re-counted with a groupby (how it was computed before
    member_class_agrees read them off the cluster table)."""
    own_others = mem.own_votes.to_numpy() - 1
    counts = mem.groupby(["cluster", "label"]).size().rename("n").reset_index()
    counts = counts.sort_values(["cluster", "n"], ascending=[True, False], kind="stable")
    first = counts.drop_duplicates("cluster").set_index("cluster")
    second = counts[counts.duplicated("cluster")].drop_duplicates("cluster").set_index("cluster").n
    c = mem.cluster.to_numpy()
    top_label = first.label.reindex(c).to_numpy()
    top_n = first.n.reindex(c).to_numpy()
    second_n = second.reindex(c).fillna(0).to_numpy()
    best_other_class = np.where(mem.label.to_numpy() == top_label, second_n, top_n)
    return (own_others >= 1) & (own_others >= best_other_class)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_member_class_agreement_from_the_cluster_table_equals_the_recount(seed):
    from iou_audit.audits.agreement.clusters import build_clusters
    from iou_audit.audits.agreement.core import coverage_matrix
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import cluster_table, member_class_agrees

    tables, covered = random_annotators(seed, K=int(np.random.default_rng(seed).integers(2, 7)))
    covered = coverage_matrix(tables, covered)
    pms = match_all_pairs(tables, 0.3)
    clusters = build_clusters(tables, pms)
    ctab, mem = cluster_table(tables, clusters, pms, covered, None)
    np.testing.assert_array_equal(member_class_agrees(ctab, mem), class_agrees_reference(mem))


def findings_reference(ctab: pd.DataFrame, mem: pd.DataFrame, clusters, covered, sample_ids, fields, names,
                       low_iou: float = 0.75) -> pd.DataFrame:
    """agreement_findings as it was: row selections of the frames, numpy scalars formatted."""
    sid = np.asarray(sample_ids, dtype=object)
    fields = np.asarray(fields, dtype=object)
    names = np.asarray(names, dtype=object)
    c_sample = ctab.sample_index.to_numpy()
    n_present = ctab.n_present.to_numpy()
    n_cov = ctab.n_covering.to_numpy()
    others_cov = np.maximum(n_cov - 1, 1)
    mc = mem.cluster.to_numpy()
    # A representative member per cluster (lowest annotator index present) for "other" columns.
    first_k = np.argmax(clusters.members >= 0, axis=1)
    first_id = mem.set_index(["cluster", "annotator"]).label_id
    rep_id = first_id.reindex(pd.MultiIndex.from_arrays([np.arange(len(ctab)), first_k])).to_numpy()
    out = []

    member_iou = mem.member_iou.to_numpy()
    low = (n_present[mc] >= 2) & (member_iou < low_iou)
    if low.any():
        r = mem[low]
        c = r.cluster.to_numpy()
        iou = member_iou[low]
        edges = np.abs(r[["d_left", "d_top", "d_right", "d_bottom"]].to_numpy())
        worst = np.nan_to_num(edges, nan=-1).argmax(axis=1)
        names_e = np.array(["left", "top", "right", "bottom"])
        out.append(frame(kind=["low_agreement"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), other_label_id=rep_id[c], label=r.label.to_numpy(),
                          score=np.clip(1 - iou, 0, 1), iou=iou,
                          detail=[f"{names[k]}: mean IoU {m:.3f} with the {n - 1} other annotator(s); cluster min {mn:.3f}; "
                                  f"largest edge offset {names_e[w]} {e[w]:.2f} of the object size"
                                  for k, m, mn, n, w, e in zip(r.annotator, iou, ctab.min_iou.to_numpy()[c], n_present[c], worst, edges)]))

    found = n_present >= ctab.quorum.to_numpy()
    cov_by_cluster = covered[c_sample]
    missing = (clusters.members < 0) & cov_by_cluster & found[:, None]
    cm, km = np.nonzero(missing)
    if len(cm):
        score = n_present[cm] / others_cov[cm]
        out.append(frame(kind=["missing_in_annotator"] * len(cm), sample_id=sid[c_sample[cm]], field=fields[km],
                          other_field=fields[first_k[cm]], other_label_id=rep_id[cm], label=ctab.label.to_numpy()[cm],
                          score=np.clip(score, 0, 1), iou=ctab.mean_iou.to_numpy()[cm],
                          detail=[f"{names[k]} lacks an object found by {n} of {t} annotators" for k, n, t in
                                  zip(km, n_present[cm], n_cov[cm])]))

    extra = ~found[mc]
    if extra.any():
        r = mem[extra]
        c = r.cluster.to_numpy()
        score = 1 - (n_present[c] - 1) / others_cov[c]
        out.append(frame(kind=["extra_in_annotator"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), label=r.label.to_numpy(), score=np.clip(score, 0, 1),
                          iou=ctab.mean_iou.to_numpy()[c],
                          detail=[f"only {n} of {t} annotators have this object (quorum {q}); {names[k]} is one"
                                  for k, n, t, q in zip(r.annotator, n_present[c], n_cov[c], ctab.quorum.to_numpy()[c])]))

    votes = ctab.votes.to_numpy()
    conflict = (ctab.n_classes.to_numpy()[mc] > 1)
    if conflict.any():
        own = mem.own_votes.to_numpy()
        maj = ctab.majority_votes.to_numpy()[mc]
        flag = conflict & ((own < maj) | ctab.majority_tie.to_numpy()[mc])
        r = mem[flag]
        c = r.cluster.to_numpy()
        own = own[flag]
        score = (n_present[c] - own) / np.maximum(n_present[c] - 1, 1)
        out.append(frame(kind=["class_conflict"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), other_label_id=rep_id[c], label=r.label.to_numpy(),
                          score=np.clip(score, 0, 1), iou=ctab.mean_iou.to_numpy()[c],
                          detail=[f"{names[k]} says {lab!r}; votes {votes[ci]}" for k, lab, ci in zip(r.annotator, r.label, c)]))
    if not out:
        return frame(kind=[])
    return pd.concat(out, ignore_index=True)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, 0.5, 1]))
def test_findings_equal_the_frame_row_selection_version(seed, quorum):
    from iou_audit.audits.agreement import compute_agreement
    from iou_audit.audits.agreement.core import coverage_matrix
    from iou_audit.audits.agreement.findings import agreement_findings

    tables, covered = random_annotators(seed, K=int(np.random.default_rng(seed).integers(2, 6)))
    r = compute_agreement(tables, names=[f"n{k}" for k in range(len(tables))], coverage=covered, quorum=quorum,
                          compute_map=False)
    args = (r.cluster_table, r.members, r.clusters, coverage_matrix(tables, covered),
            tables[0].sample_ids, [f"f{k}" for k in range(len(tables))], [f"n{k}" for k in range(len(tables))], 0.8)
    got, want = agreement_findings(*args), findings_reference(*args)
    assert got.dtypes.equals(want.dtypes) and got.equals(want)
    # the audit's own call: a member table without ids and classes, read from the tables instead
    lean = agreement_findings(r.cluster_table, r.member_rows, *args[2:], tables=r.label_tables)
    assert "label_id" not in r.member_rows and lean.dtypes.equals(want.dtypes) and lean.equals(want)



def test_one_object_drawn_by_everyone_matches_pandas_reduceat_path():
    # One cluster: its member ids are sorted, where pandas averages with np.add.reduceat; these four
    # y2 values average differently that way than with the compensated loop (last bit).
    from types import SimpleNamespace as T

    from iou_audit.audits.agreement.clusters import build_clusters
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import _cluster_table_pandas, cluster_table, pair_iou_stats

    y2 = [0.6955207039081741, 0.664401629559503, 0.6917345430883473, 0.7165052085571584]
    tables = [T(offsets=np.array([0, 1]), label_id=np.array([f"id{k}"], dtype=object), label=np.array(["p"], dtype=object),
                box=np.array([[0.5, y - 0.2, 0.7, y]]), sample_ids=np.array(["s"], dtype=object)) for k, y in enumerate(y2)]
    pms = match_all_pairs(tables, 0.3)
    clusters = build_clusters(tables, pms)
    got = cluster_table(tables, clusters, pms, np.ones((1, 4), bool), None)
    want = _cluster_table_pandas(tables, clusters, pair_iou_stats(tables, clusters, pms), np.ones((1, 4), bool), None)
    assert len(clusters.sample_index) == 1 and got[0].equals(want[0]) and got[1].equals(want[1])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_per_image_sums_equal_np_add_at_pair_after_pair(seed):
    from iou_audit.audits.agreement.pairs import match_all_pairs
    from iou_audit.audits.agreement.stats import per_image_and_class

    tables, covered = random_annotators(seed, K=int(np.random.default_rng(seed).integers(2, 6)))
    pms = match_all_pairs(tables, 0.3)
    got, _ = per_image_and_class(tables, pms, covered)
    S = covered.shape[0]
    img = np.zeros((S, 4))  # the previous accumulation: matched, labels, iou sum, matched same class
    for pm in pms:
        both = covered[:, pm.a] & covered[:, pm.b]
        sa, sb = (np.repeat(np.arange(S), np.diff(tables[k].offsets)) for k in (pm.a, pm.b))
        matched = np.flatnonzero((pm.match_a >= 0) & both[sa])
        same = tables[pm.a].label[matched] == tables[pm.b].label[pm.match_a[matched]]
        np.add.at(img[:, 0], sa[matched], 1)
        np.add.at(img[:, 2], sa[matched], pm.iou_a[matched])
        np.add.at(img[:, 3], sa[matched[same]], 1)
        img[:, 1] += np.bincount(sa[both[sa]], minlength=S) + np.bincount(sb[both[sb]], minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = pd.DataFrame({"sample_index": np.arange(S), "n_labels": img[:, 1].astype(int), "matched": img[:, 0].astype(int),
                             "f1": 2 * img[:, 0] / img[:, 1], "f1_class": 2 * img[:, 3] / img[:, 1], "mean_iou": img[:, 2] / img[:, 0]})
    assert got.equals(want)


@pytest.mark.parametrize("names", [["a", "b", "c", "d"], ["a", "b", "a"]])
def test_matrix_equals_cell_by_cell_loc_writes(names):
    from iou_audit.audits.agreement.stats import matrix

    pairs = pd.DataFrame([(names[i], names[j], v) for (i, j), v in zip(
        [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))], [0.5, np.nan, 1 / 3, 0.25, 0.0, 0.9])],
        columns=["annotator_a", "annotator_b", "f1"])
    want = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for r in pairs.itertuples():
        want.loc[r.annotator_a, r.annotator_b] = want.loc[r.annotator_b, r.annotator_a] = r.f1
    got = matrix(pairs, names, "f1")
    assert got.equals(want) and got.index.equals(want.index) and got.columns.equals(want.columns)
