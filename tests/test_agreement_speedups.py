"""The agreement audit's fast paths (mAP, edge graph, threshold curve, batch joining) against the
general code they replace (itself tested against pycocotools in test_coco_reference.py /
test_agreement_lvis.py, and against kalphacv values in test_agreement_core.py): random layouts with
ties, NaN IoUs, empty samples, more than ``max_dets`` labels of a class, and uncovered samples.
Table fast paths: test_agreement_speedups_tables.py."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.agreement.coco_map import ap_from_parts, directional_hits
from iou_audit.matching import coco_evaluate
from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, precision_at_recall


def random_pair(seed: int):
    """Two annotators' labels on a few samples and their (a x b) IoU blocks, with exact ties."""
    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 6))
    n_a, n_b = rng.integers(0, 7, S), rng.integers(0, 7, S)
    off_a, off_b = np.r_[0, np.cumsum(n_a)], np.r_[0, np.cumsum(n_b)]
    po = np.r_[0, np.cumsum(n_a * n_b)]
    # few distinct IoU values, so ties at and around the thresholds are common; half of the
    # layouts mostly non-overlapping (each label then has at most one candidate: the fast path)
    values = rng.choice([0.0, 0.3, 0.5, 0.55, 0.6, 0.75, 0.75, 0.9, 0.95, 1.0, np.nan], int(po[-1]))
    if rng.random() < 0.5:
        values[rng.random(len(values)) < 0.85] = 0.0
    code_a = rng.integers(0, 3, int(off_a[-1]))
    code_b = rng.integers(0, 3, int(off_b[-1]))
    keep = rng.random(S) < 0.8
    return values, po, off_a, off_b, code_a, code_b, keep


def transposed(values, po, n_a, n_b):
    out = np.empty_like(values)
    for s in range(len(n_a)):
        blk = values[po[s]:po[s + 1]].reshape(n_a[s], n_b[s])
        out[po[s]:po[s + 1]] = blk.T.reshape(-1)
    return out


def coco_reference(values, po, off_a, off_b, code_a, code_b, keep, max_dets):
    """What the audit computed before: coco_evaluate per direction on the kept samples."""
    n_a, n_b = np.diff(off_a), np.diff(off_b)
    ra, rb = np.flatnonzero(np.repeat(keep, n_a)), np.flatnonzero(np.repeat(keep, n_b))
    vals = values[np.repeat(keep, np.diff(po))]
    oa, ob = np.r_[0, np.cumsum(n_a * keep)], np.r_[0, np.cumsum(n_b * keep)]
    p = np.r_[0, np.cumsum(n_a * n_b * keep)]
    a_dets = coco_evaluate(vals, p, oa, ob, np.ones(len(ra)), code_a[ra], code_b[rb], max_dets=max_dets)
    b_dets = coco_evaluate(transposed(vals, p, np.diff(oa), np.diff(ob)), p, ob, oa, np.ones(len(rb)),
                           code_b[rb], code_a[ra], max_dets=max_dets)
    return ra, rb, a_dets, b_dets


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 100]))
def test_directional_hits_equal_coco_evaluate_in_both_directions(seed, max_dets):
    values, po, off_a, off_b, code_a, code_b, keep = random_pair(seed)
    hit_a, ev_a, hit_b, ev_b = directional_hits(values, po, off_a, off_b, code_a, code_b, keep, max_dets)
    ra, rb, a_dets, b_dets = coco_reference(values, po, off_a, off_b, code_a, code_b, keep, max_dets)
    np.testing.assert_array_equal(hit_a[:, ra], a_dets.match >= 0)
    np.testing.assert_array_equal(ev_a[ra], a_dets.evaluated)
    np.testing.assert_array_equal(hit_b[:, rb], b_dets.match >= 0)
    np.testing.assert_array_equal(ev_b[rb], b_dets.evaluated)


def ap_reference(parts):
    """ap_from_parts as it was: precision_at_recall class by class and threshold by threshold."""
    evaluated = np.concatenate([p["evaluated"] for p in parts])
    hit = np.concatenate([p["hit"] for p in parts], axis=1)
    label = np.concatenate([p["names"][p["class"]] for p in parts]).astype(str)
    ref = np.concatenate([p["names"][p["ref_class"]] for p in parts]).astype(str)
    cats, inv = np.unique(np.concatenate([label, ref]), return_inverse=True)
    code, num_gt = inv[:len(label)], np.bincount(inv[len(label):], minlength=len(cats))
    precision = -np.ones((10, 101, len(cats)))
    for k in np.flatnonzero(num_gt):
        rows = np.flatnonzero(evaluated & (code == k))
        for t in range(10):
            precision[t, :, k], _ = precision_at_recall(hit[t, rows], np.ones(len(rows)), int(num_gt[k]))

    def mean(p):
        return float(np.mean(p[p > -1])) if (p > -1).any() else float("nan")

    t50, t75 = np.isclose(COCO_IOU_THRESHOLDS, 0.5), np.isclose(COCO_IOU_THRESHOLDS, 0.75)
    return {"map": mean(precision), "map50": mean(precision[t50]), "map75": mean(precision[t75])}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_ap_from_parts_equals_precision_at_recall_per_class(seed):
    rng = np.random.default_rng(seed)
    all_names = np.array(["bird", "cat", "dog", "emu"])
    parts = []
    for _ in range(int(rng.integers(1, 4))):  # batches, each with its own sorted class names
        d, g = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        names = np.sort(rng.choice(all_names, int(rng.integers(1, 5)), replace=False))
        parts.append({"evaluated": rng.random(d) < 0.9, "hit": rng.random((10, d)) < 0.6, "names": names,
                      "class": rng.integers(0, len(names), d), "ref_class": rng.integers(0, max(len(names) - 1, 1), g)})
    got, want = ap_from_parts(parts), ap_reference(parts)
    assert pd.Series(got).equals(pd.Series(want))


def random_annotators(seed: int, K: int | None = None, S: int | None = None):
    """K annotators jittering shared objects (misses, extras, class swaps), shuffled label ids."""
    from types import SimpleNamespace as T

    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 5)) if K is None else K
    S = int(rng.integers(1, 8)) if S is None else S
    objects = [rng.uniform(0, 0.7, (int(rng.integers(0, 6)), 2)) for _ in range(S)]
    tables = []
    for k in range(K):
        rows = []
        for s in range(S):
            for o, xy in enumerate(objects[s]):
                if rng.random() < 0.8:
                    x, y = xy + rng.normal(0, 0.03, 2)
                    rows.append((s, f"{rng.integers(10**6):06d}k{k}", str(rng.choice(["p", "q", "r"])), [x, y, x + .2, y + .2]))
            if rng.random() < 0.3:
                x, y = rng.uniform(0, 0.7, 2)
                rows.append((s, f"{rng.integers(10**6):06d}k{k}x", "p", [x, y, x + .1, y + .1]))
        counts = np.bincount([r[0] for r in rows], minlength=S)
        tables.append(T(offsets=np.r_[0, np.cumsum(counts)], label_id=np.array([r[1] for r in rows], dtype=object),
                        label=np.array([r[2] for r in rows], dtype=object),
                        box=np.array([r[3] for r in rows], float).reshape(-1, 4),
                        sample_ids=np.array([f"s{i}" for i in range(S)], dtype=object), masks=None, polygons=None))
    covered = rng.random((S, K)) < 0.85
    return tables, covered


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_alpha_from_roots_equals_alpha_of_the_observations(seed):
    from iou_audit.audits.agreement.clusters import alpha_observations_from_roots, edge_graph
    from iou_audit.audits.agreement.core import class_codes, coverage_matrix
    from iou_audit.audits.agreement.curve import alpha_from_roots
    from iou_audit.audits.agreement.kalpha import nominal_alpha_counts
    from iou_audit.audits.agreement.pairs import match_all_pairs

    tables, covered = random_annotators(seed)
    covered = coverage_matrix(tables, covered)
    codes = class_codes(tables)
    g = edge_graph(tables, match_all_pairs(tables, 0.3))
    for t in (None, 0.3, 0.5, 0.8, 0.95):
        roots = g.roots(t)
        want = nominal_alpha_counts(*alpha_observations_from_roots(g, *roots, covered, codes))
        got = alpha_from_roots(g, *roots, covered, codes)
        assert got == want or (np.isnan(got) and np.isnan(want))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.5, 0.6]))
def test_joined_batches_equal_the_graph_and_tables_of_one_pass(seed, iou_thresh):
    from types import SimpleNamespace as T

    from iou_audit.audits.agreement.clusters import edge_graph
    from iou_audit.audits.agreement.parts import compute_part, merge_parts

    tables, covered = random_annotators(seed, S=9)
    cuts = np.unique(np.r_[0, np.random.default_rng(seed).integers(1, 9, 3), 9])

    def rows(t, s0, s1):
        lo, hi = t.offsets[s0], t.offsets[s1]
        return T(offsets=t.offsets[s0:s1 + 1] - lo, label_id=t.label_id[lo:hi], label=t.label[lo:hi], box=t.box[lo:hi],
                 sample_ids=t.sample_ids[s0:s1], masks=None, polygons=None)

    parts = [compute_part([rows(t, s0, s1) for t in tables], covered[s0:s1] | np.stack(
        [np.diff(t.offsets[s0:s1 + 1]) > 0 for t in tables], axis=1), iou_thresh, "hungarian", "boxes", None, 0.5, False, False)
        for s0, s1 in zip(cuts[:-1], cuts[1:])]
    m = merge_parts(parts)
    want = edge_graph(m.tables, m.curve_pms or m.pms, m.ranks)
    got = m.curve_graph
    for name in ("node_start", "node_annotator", "node_sample", "node_rank", "u", "v", "w"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    # member and cluster tables: as shifting every batch's frame, joining and sorting them gave
    c_start = np.r_[0, np.cumsum([len(p.ctab) for p in parts])]
    s_start = np.r_[0, np.cumsum([len(p.covered) for p in parts])]
    row_start = np.vstack([np.zeros((1, len(tables)), np.int64), np.cumsum([[len(t.label_id) for t in p.tables] for p in parts], axis=0)])
    mems = [p.mem.assign(cluster=p.mem.cluster + c_start[i], row=p.mem.row + row_start[i][p.mem.annotator.to_numpy()])
            for i, p in enumerate(parts)]
    want_mem = pd.concat(mems, ignore_index=True).sort_values(["annotator", "row"], kind="stable").reset_index(drop=True)
    want_ctab = pd.concat([p.ctab.assign(cluster=p.ctab.cluster + c_start[i], sample_index=p.ctab.sample_index + s_start[i])
                           for i, p in enumerate(parts)], ignore_index=True)
    assert m.mem.dtypes.equals(want_mem.dtypes) and m.mem.equals(want_mem)
    assert m.ctab.dtypes.equals(want_ctab.dtypes) and m.ctab.equals(want_ctab)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([5, 60, 300]))
def test_edge_order_equals_lexsort(seed, per_sample):
    from iou_audit.audits.agreement.clusters import edge_order

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 4 * per_sample))
    sample = rng.integers(0, 4, n)
    w = rng.choice([0.5, 0.7, 0.7, 0.9, 1.0, -0.0, 0.0, np.nan], n)  # ties, signed zeros, NaN
    lo, hi = rng.integers(0, 5, n), rng.integers(0, 5, n)  # ties on every key keep input order
    np.testing.assert_array_equal(edge_order(sample, w, lo, hi), np.lexsort((hi, lo, -w, sample)))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_curve_alphas_equal_one_union_find_per_threshold(seed):
    from iou_audit.audits.agreement.clusters import edge_graph
    from iou_audit.audits.agreement.core import class_codes, coverage_matrix
    from iou_audit.audits.agreement.curve import alpha_from_roots, curve_alphas
    from iou_audit.audits.agreement.pairs import match_all_pairs

    tables, covered = random_annotators(seed, K=int(np.random.default_rng(seed).integers(2, 6)))
    covered = coverage_matrix(tables, covered)
    codes = class_codes(tables)
    g = edge_graph(tables, match_all_pairs(tables, 0.2))
    rng = np.random.default_rng(seed)
    thresholds = list(rng.choice([0.2, 0.3, 0.5, 0.65, 0.8, 0.9, 0.99], int(rng.integers(1, 8))))  # any order, repeats
    want = [alpha_from_roots(g, *g.roots(t), covered, codes) for t in thresholds]
    assert pd.Series(curve_alphas(g, thresholds, covered, codes)).equals(pd.Series(want, dtype=float))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_compiled_alpha_sums_equal_the_numpy_sums(seed):
    from iou_audit.audits.agreement.kalpha import _sums_compiled, _sums_numpy, dense_codes

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    unit = rng.integers(0, int(rng.integers(1, 120)), n)
    _, u = dense_codes(unit)
    v = rng.integers(0, int(rng.integers(1, 6)), n)
    groups, gi = dense_codes(rng.integers(0, int(rng.integers(1, 9)), n))  # a unit may span groups: last wins
    args = (u, v, gi, int(u.max()) + 1, len(groups), int(v.max()) + 1)
    for got, want in zip(_sums_compiled(*args), _sums_numpy(*args)):
        np.testing.assert_array_equal(got, want)
