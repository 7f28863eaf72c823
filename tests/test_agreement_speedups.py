"""The agreement audit's fast paths against the general code they replace (itself tested against
pycocotools in test_coco_reference.py / test_agreement_lvis.py, and against kalphacv values in
test_agreement_core.py): random layouts with ties, NaN IoUs, empty samples, more than ``max_dets``
labels of a class, and uncovered samples."""
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
    # few distinct IoU values, so ties at and around the thresholds are common
    values = rng.choice([0.0, 0.3, 0.5, 0.55, 0.6, 0.75, 0.75, 0.9, 0.95, 1.0, np.nan], int(po[-1]))
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
    label = np.concatenate([p["label"] for p in parts]).astype(str)
    ref = np.concatenate([p["ref_label"] for p in parts]).astype(str)
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
    names = np.array(["cat", "dog", "bird", "emu"], dtype=object)
    parts = []
    for _ in range(int(rng.integers(1, 4))):  # batches
        d, g = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        parts.append({"evaluated": rng.random(d) < 0.9, "hit": rng.random((10, d)) < 0.6,
                      "label": names[rng.integers(0, 4, d)], "ref_label": names[rng.integers(0, 3, g)]})
    got, want = ap_from_parts(parts), ap_reference(parts)
    assert pd.Series(got).equals(pd.Series(want))
