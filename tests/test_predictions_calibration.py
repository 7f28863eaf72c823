"""The calibration of the prediction audit's scores (iou_audit.audits.predictions.calibration):
shrunk group statistics against brute-force loops, and the calibrated behaviour the rule promises."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.predictions.calibration import (
    calibrated_precision,
    group_median,
    posterior,
    shrunk_ecdf,
    shrunk_median,
    shrunk_rate,
)

groups = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.floats(0, 1)), min_size=1, max_size=40)


def _loop_levels(rows, k, stat, top):
    """Brute force: per row, stat over the rows of its group at each level, shrunk level by level."""
    out = []
    for i, (a, b, v) in enumerate(rows):
        est = top(i)
        for key in (lambda r: r[0], lambda r: (r[0], r[1])):
            members = [r for r in rows if key(r) == key(rows[i])]
            n, val = stat(members, v)
            est = (n * val + k * est) / (n + k)
        out.append(est)
    return np.array(out)


@given(groups, st.floats(0, 50))
@settings(max_examples=60, deadline=None)
def test_shrunk_rate_matches_loops(rows, k):
    a = np.array([r[0] for r in rows]); b = np.array([r[1] for r in rows])  # noqa: E702
    hits = np.array([r[2] > 0.5 for r in rows], float)
    got = shrunk_rate(hits, np.ones(len(rows)), [[a], [a, b]], k, top=0.3)
    want = _loop_levels(rows, k, lambda m, v: (len(m), np.mean([r[2] > 0.5 for r in m])), lambda i: 0.3)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@given(groups, st.floats(0, 50))
@settings(max_examples=60, deadline=None)
def test_shrunk_ecdf_matches_loops(rows, k):
    a = np.array([r[0] for r in rows]); b = np.array([r[1] for r in rows])  # noqa: E702
    v = np.array([r[2] for r in rows])
    got = shrunk_ecdf(v, [[a], [a, b]], k)
    n_all = len(rows)
    want = _loop_levels(rows, k, lambda m, x: (len(m), np.mean([r[2] <= x for r in m])),
                        lambda i: np.mean(v <= v[i]) + 0 * n_all)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    up = shrunk_ecdf(v, [[a]], k, upper=True)
    want_up = [(sum(r[2] >= x for r in rows if r[0] == g) + k * np.mean(v >= x)) / (sum(a == g) + k)
               for g, x in zip(a, v)]
    np.testing.assert_allclose(up, want_up, rtol=1e-12, atol=1e-12)


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-5, 5)), max_size=30))
@settings(max_examples=60, deadline=None)
def test_group_median_matches_numpy(items):
    g = np.array([x for x, _ in items], np.int64)
    v = np.array([y for _, y in items], float)
    med, cnt = group_median(g, v, 4)
    for k in range(4):
        sel = v[g == k]
        assert cnt[k] == len(sel)
        assert (np.isnan(med[k]) if len(sel) == 0 else med[k] == pytest.approx(np.median(sel)))


def test_shrunk_median_uses_reference_rows_only():
    v = np.array([1.0, 1.0, 100.0, 5.0])
    ref = np.array([True, True, False, True])
    g = np.array([0, 0, 0, 1])
    # group 0's reference rows are [1, 1] (the 100 is not a reference row); all reference rows: median 1
    got = shrunk_median(v, ref, [[g]], k=2.0)
    assert got[0] == pytest.approx((2 * 1 + 2 * 1) / 4) and got[2] == got[0]
    assert got[3] == pytest.approx((1 * 5 + 2 * 1) / 3)


def test_precision_is_calibrated_and_monotone():
    """Predictions whose chance of being right is known: the estimate follows the truth, not the
    stated confidence, and never falls as confidence rises."""
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 20000)
    true_prec = 0.2 + 0.6 * conf ** 2  # an over-confident detector
    tp = rng.uniform(size=conf.size) < true_prec
    cls = rng.integers(0, 3, conf.size)
    prec = calibrated_precision(conf, cls, tp, np.ones(conf.size, bool))
    assert np.abs(prec - true_prec).mean() < 0.05
    for c in range(3):
        o = np.argsort(conf[cls == c])
        assert np.all(np.diff(prec[cls == c][o]) >= -1e-12)


def test_posterior_bounds():
    assert posterior(np.array([1.0]), 0.05)[0] == pytest.approx(0.05)
    assert posterior(np.array([0.0]))[0] == 0.0 and posterior(np.array([np.inf]))[0] == 1.0


def _tables(n_img, rng, recall_by_class, noise, shift_label=None):
    """Labels (two classes, 20 px boxes on 100 px images) and a detector that finds class c with
    probability recall_by_class[c], corners jittered by U(-noise, noise) of the box."""
    from iou_audit.table import LabelTable

    gts, preds = [], []
    for i in range(n_img):
        g = [("a", np.array([0.1, 0.1, 0.3, 0.3])), ("b", np.array([0.6, 0.6, 0.8, 0.8]))]
        gts.append(g)
        preds.append([(lab, b + rng.uniform(-noise, noise, 4) * 0.2, 0.9) for lab, b in g
                      if rng.uniform() < recall_by_class[lab]])

    def table(field, per_image, conf):
        rows = [(s, *r) for s, img in enumerate(per_image) for r in img]
        off = np.r_[0, np.cumsum([len(x) for x in per_image])].astype(np.int64)
        S = len(per_image)
        return LabelTable(field=field, label_type="detections", sample_ids=np.array([f"s{i}" for i in range(S)], object),
                          filepaths=np.full(S, "", object), width=np.full(S, 100.0), height=np.full(S, 100.0),
                          offsets=off, sample_index=np.array([r[0] for r in rows], np.int64),
                          label_id=np.array([f"{field}{i}" for i in range(len(rows))], object),
                          label=np.array([r[1] for r in rows], object),
                          box=np.array([r[2] for r in rows], float).reshape(-1, 4),
                          confidence=np.array([r[3] if conf else np.nan for r in rows], float),
                          iscrowd=np.zeros(len(rows), bool))
    return table("gt", gts, False), table("pred", preds, True)


def test_unsupported_label_is_weaker_evidence_where_the_detector_misses_more():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    rng = np.random.default_rng(1)
    gt, pred = _tables(200, rng, {"a": 0.98, "b": 0.7}, 0.03)
    a = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    unsup = a.errors.support == 0
    sa = a.errors.possible_spurious[unsup & (gt.label == "a")]
    sb = a.errors.possible_spurious[unsup & (gt.label == "b")]
    assert len(sa) and len(sb) and sa.min() > 2 * sb.max()


def test_a_subtle_single_edge_error_stands_out_against_tight_boxes():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    rng = np.random.default_rng(2)
    gt, pred = _tables(200, rng, {"a": 1.0, "b": 1.0}, 0.02)
    gt.box[0, 2] += 0.2 * 0.2  # label 0's right edge 20 % of the box out: IoU ~0.83 with its object
    a = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    assert a.errors.mislocated[0] > 0.9 and a.label_kind[0] == "mislocated" and a.errors.off_edge[0] == "right"
    assert np.sort(a.errors.mislocated)[-2] < 0.5  # nothing else looks mislocated


def test_extra_prediction_fields_are_evidence():
    """A second field that agrees the label is unsupported makes it more suspicious than a second
    field that sees the object; matching and metrics stay those of the main field."""
    from iou_audit.audits.predictions.core import compute_prediction_audit

    rng = np.random.default_rng(3)
    gt, pred = _tables(100, rng, {"a": 0.9, "b": 0.9}, 0.03)
    _, sees_all = _tables(100, np.random.default_rng(4), {"a": 1.0, "b": 1.0}, 0.03)
    _, sees_none = _tables(100, np.random.default_rng(5), {"a": 0.0, "b": 0.0}, 0.03)
    sees_all = sees_all.__class__(**{**sees_all.__dict__, "field": "pred2"})
    one = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    agree = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False, extra_preds=(sees_none,))
    disagree = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False, extra_preds=(sees_all,))
    unsup = one.errors.support == 0
    assert unsup.any()
    assert np.all(disagree.errors.possible_spurious[unsup] < one.errors.possible_spurious[unsup])
    assert np.all(agree.errors.possible_spurious[unsup] >= disagree.errors.possible_spurious[unsup])
    np.testing.assert_array_equal(one.gt_match, disagree.gt_match)
    assert one.metrics["tp"] == disagree.metrics["tp"]


def test_a_confident_box_on_no_label_is_weak_evidence_where_the_detector_often_puts_such_boxes():
    """possible_missing is the chance that an unexplained box is an unlabelled object: for class "a"
    the detector puts one confident (0.9) box on empty background in every image, as many as its
    right boxes, so an unexplained 0.9 "a" box is a real object about 0.05 / 0.95 * 200 / 200 of the
    time; class "b" has no such boxes, so its one unexplained 0.9 box is almost surely real. The
    detector's precision alone (0.5 for "a") would rank "a"'s background boxes above most label errors."""
    from iou_audit.audits.predictions.core import compute_prediction_audit

    rng = np.random.default_rng(3)
    gt, pred = _tables(200, rng, {"a": 1.0, "b": 1.0}, 0.02)
    # every image gets a 0.9 "a" box on empty background; image 0 also a 0.9 "b" box on an unlabelled object
    extra = [(s, "a", np.array([0.4, 0.8, 0.5, 0.9])) for s in range(200)] + [(0, "b", np.array([0.8, 0.1, 0.95, 0.25]))]
    rows = sorted([(int(s), str(lab), b, 0.9) for s, lab, b in zip(pred.sample_index, pred.label, pred.box)]
                  + [(s, lab, b, 0.9) for s, lab, b in extra], key=lambda r: r[0])
    from dataclasses import replace

    counts = np.bincount([r[0] for r in rows], minlength=200)
    pred = replace(pred, offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
                   sample_index=np.array([r[0] for r in rows], np.int64),
                   label_id=np.array([f"pred{i}" for i in range(len(rows))], object),
                   label=np.array([r[1] for r in rows], object), box=np.array([r[2] for r in rows], float),
                   confidence=np.array([r[3] for r in rows], float), iscrowd=np.zeros(len(rows), bool))
    a = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    miss = a.errors.possible_missing
    background = (pred.label == "a") & (pred.box[:, 1] == 0.8)
    unlabelled = (pred.label == "b") & (pred.box[:, 0] == 0.8)
    assert background.sum() == 200 and unlabelled.sum() == 1
    assert miss[background].max() < 0.1 and miss[unlabelled][0] > 0.9
