"""Matching and AP against independent oracles.

- Greedy: pycocotools' own ``COCOeval.evaluateImg`` (called on the same IoU matrix, with crowd and
  ignore flags set independently) on random matrices full of ties, and hand-built cases.
- Hungarian: brute force over all permutations.
- AP: pycocotools' own ``COCOeval.accumulate`` on synthetic per-image results with score ties
  across images.
"""
from __future__ import annotations

import contextlib
import copy
import io
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.cocoeval import COCOeval

from iou_audit.matching import (
    COCO_RECALL_THRESHOLDS,
    batched_match,
    greedy_match,
    hungarian_match,
    label_agreement,
    precision_at_recall,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Few distinct values so that equal IoUs and equal scores (the tie-breaking rules) occur often.
IOU_VALUES = [0.0, 0.2, 0.5, 0.5, 0.6, 0.75, 0.75, 0.9, 1.0]
SCORE_VALUES = [0.1, 0.5, 0.5, 0.9]


# ---------------------------------------------------------------- oracles
def pycocotools_evaluate_img(ious, scores, thresh, crowd, ignore):
    """Run pycocotools' evaluateImg on one (image, category) -> (pred_to_gt, gt_to_pred, pred_ignored)."""
    n, m = ious.shape
    ev = COCOeval(iouType="bbox")
    ev.params.iouThrs = np.array([thresh])
    ev._gts = {(1, 1): [dict(id=j + 1, ignore=int(ignore[j]), iscrowd=int(crowd[j]), area=1.0)
                        for j in range(m)]}
    ev._dts = {(1, 1): [dict(id=i + 1, score=float(scores[i]), area=1.0) for i in range(n)]}
    # computeIoU stores rows sorted by descending score (mergesort), columns in gt order
    order = np.argsort(-np.asarray(scores, float), kind="mergesort")
    ev.ious = {(1, 1): ious[order] if n and m else []}
    res = ev.evaluateImg(1, 1, [0, 1e10], max(n, 1))
    pred_to_gt = np.full(n, -1)
    gt_to_pred = np.full(m, -1)
    pred_ignored = np.zeros(n, bool)
    if res is None:
        return pred_to_gt, gt_to_pred, pred_ignored
    for k, d_id in enumerate(res["dtIds"]):
        pred_to_gt[d_id - 1] = int(res["dtMatches"][0, k]) - 1
        pred_ignored[d_id - 1] = bool(res["dtIgnore"][0, k])
    for k, g_id in enumerate(res["gtIds"]):
        gt_to_pred[g_id - 1] = int(res["gtMatches"][0, k]) - 1
    return pred_to_gt, gt_to_pred, pred_ignored


def assert_same_as_pycocotools(ours, oracle, crowd):
    p2g, g2p, ig = ours
    o_p2g, o_g2p, o_ig = oracle
    np.testing.assert_array_equal(p2g, o_p2g)
    np.testing.assert_array_equal(ig, o_ig)
    crowd = np.asarray(crowd, bool)
    # pycocotools overwrites a crowd's match with its last prediction; we keep the first. Both
    # agree on which crowds are matched and on every non-crowd match.
    np.testing.assert_array_equal(g2p[~crowd], o_g2p[~crowd])
    np.testing.assert_array_equal(g2p[crowd] >= 0, o_g2p[crowd] >= 0)
    for j in np.flatnonzero(crowd & (g2p >= 0)):
        assert p2g[g2p[j]] == j


def brute_force_best_total(ious, thresh):
    n, m = ious.shape
    k = max(n, m)
    if k == 0:
        return 0.0
    w = np.zeros((k, k))
    w[:n, :m] = np.where((ious >= thresh) & (ious > 0), ious, 0.0)
    perms = np.array(list(itertools.permutations(range(k))))
    return float(w[np.arange(k), perms].sum(axis=1).max())


@st.composite
def coco_cases(draw, max_n=7, max_m=7):
    n = draw(st.integers(0, max_n))
    m = draw(st.integers(0, max_m))
    value = st.one_of(st.sampled_from(IOU_VALUES), st.floats(0, 1))
    ious = np.array(draw(st.lists(value, min_size=n * m, max_size=n * m)), float).reshape(n, m)
    scores = np.array(draw(st.lists(st.sampled_from(SCORE_VALUES), min_size=n, max_size=n)), float)
    crowd = np.array(draw(st.lists(st.booleans(), min_size=m, max_size=m)), bool)
    ignore = np.array(draw(st.lists(st.booleans(), min_size=m, max_size=m)), bool)
    thresh = draw(st.sampled_from([0.3, 0.5, 0.75, 1.0]))
    return ious, scores, thresh, crowd, ignore


# ---------------------------------------------------------------- greedy vs pycocotools
@SETTINGS
@given(coco_cases())
def test_greedy_equals_pycocotools_evaluate_img(case):
    ious, scores, thresh, crowd, ignore = case
    ours = greedy_match(ious, scores, thresh, crowd=crowd, gt_ignore=ignore, return_ignored=True)
    oracle = pycocotools_evaluate_img(ious, scores, thresh, crowd, ignore)
    assert_same_as_pycocotools(ours, oracle, crowd)


@SETTINGS
@given(st.lists(coco_cases(max_n=5, max_m=5), min_size=1, max_size=6))
def test_batched_greedy_equals_pycocotools_per_image(cases):
    # flatten several images into the batched layout; the same thresh for all
    thresh = cases[0][2]
    values = np.concatenate([c[0].ravel() for c in cases])
    n1 = [c[0].shape[0] for c in cases]
    n2 = [c[0].shape[1] for c in cases]
    off1 = np.concatenate([[0], np.cumsum(n1)])
    off2 = np.concatenate([[0], np.cumsum(n2)])
    po = np.concatenate([[0], np.cumsum(np.multiply(n1, n2))])
    scores = np.concatenate([c[1] for c in cases])
    crowd = np.concatenate([c[3] for c in cases])
    ignore = np.concatenate([c[4] for c in cases])
    m1, iou1, m2, iou2, ig1 = batched_match(values, po, off1, off2, scores, thresh, crowd2=crowd,
                                            ignore2=ignore, return_ignored=True)
    for s, (ious, sc, _, cr, ign) in enumerate(cases):
        oracle = pycocotools_evaluate_img(ious, sc, thresh, cr, ign)
        r1, r2 = slice(off1[s], off1[s + 1]), slice(off2[s], off2[s + 1])
        local1 = np.where(m1[r1] >= 0, m1[r1] - off2[s], -1)
        local2 = np.where(m2[r2] >= 0, m2[r2] - off1[s], -1)
        assert_same_as_pycocotools((local1, local2, ig1[r1]), oracle, cr)
        hit = local1 >= 0
        np.testing.assert_array_equal(iou1[r1][hit], ious[np.flatnonzero(hit), local1[hit]])
        assert (iou1[r1][~hit] == 0).all()


@SETTINGS
@given(coco_cases(), st.lists(st.sampled_from(["cat", "dog", "car"]), min_size=14, max_size=14))
def test_classwise_greedy_equals_pycocotools_per_category(case, pool):
    ious, scores, thresh, crowd, ignore = case
    n, m = ious.shape
    labels1, labels2 = np.array(pool[:n], dtype=object), np.array(pool[7:7 + m], dtype=object)
    p2g, g2p, ig = greedy_match(ious, scores, thresh, crowd=crowd, gt_ignore=ignore,
                                labels1=labels1, labels2=labels2, return_ignored=True)
    for c in set(pool):  # COCO evaluates each category on its own
        r, k = np.flatnonzero(labels1 == c), np.flatnonzero(labels2 == c)
        o_p2g, o_g2p, o_ig = pycocotools_evaluate_img(ious[np.ix_(r, k)], scores[r], thresh,
                                                      crowd[k], ignore[k])
        to_global = np.append(k, -1)  # local -1 (unmatched) maps to the appended -1
        np.testing.assert_array_equal(p2g[r], to_global[o_p2g])
        np.testing.assert_array_equal(ig[r], o_ig)
        np.testing.assert_array_equal(g2p[k] >= 0, o_g2p >= 0)


# ---------------------------------------------------------------- greedy, hand-built cases
def test_equal_ious_later_ground_truth_wins():
    # pycocotools replaces its best match when iou >= best: of two equal IoUs the later gt wins
    p2g, g2p = greedy_match(np.array([[0.7, 0.7, 0.6]]), np.array([1.0]), 0.5)
    assert p2g.tolist() == [1] and g2p.tolist() == [-1, 0, -1]


def test_equal_scores_keep_input_order():
    # both predictions want the only gt; with equal scores the first row goes first (mergesort)
    p2g, _ = greedy_match(np.array([[0.6], [0.9]]), np.array([0.5, 0.5]), 0.5)
    assert p2g.tolist() == [0, -1]


def test_crowd_absorbs_several_predictions_and_they_are_ignored():
    ious = np.array([[0.95, 0.0], [0.8, 0.6], [0.7, 0.0]])
    p2g, g2p, ig = greedy_match(ious, np.array([0.9, 0.8, 0.7]), 0.5,
                                crowd=np.array([True, False]), return_ignored=True)
    # Row 1 overlaps the crowd more (0.8) but takes the regular gt (0.6): non-ignored gts are
    # scanned first, and holding a regular match stops the scan at the first ignored gt.
    assert p2g.tolist() == [0, 1, 0]
    assert ig.tolist() == [True, False, True]
    assert g2p.tolist() == [0, 1]


def test_non_crowd_ignored_gt_absorbs_only_one():
    ious = np.array([[0.9], [0.8]])
    p2g, _, ig = greedy_match(ious, np.array([0.9, 0.8]), 0.5, gt_ignore=np.array([True]),
                              return_ignored=True)
    assert p2g.tolist() == [0, -1] and ig.tolist() == [True, False]


def test_threshold_one_matches_exact_overlap_and_nan_never_matches():
    p2g, _ = greedy_match(np.array([[1.0, np.nan]]), np.array([0.5]), 1.0)
    assert p2g.tolist() == [0]
    p2g, _ = greedy_match(np.array([[np.nan]]), np.array([0.5]), 0.0)
    assert p2g.tolist() == [-1]


def test_empty_inputs():
    for n, m in [(0, 0), (0, 3), (2, 0)]:
        p2g, g2p = greedy_match(np.zeros((n, m)), np.ones(n), 0.5)
        assert p2g.tolist() == [-1] * n and g2p.tolist() == [-1] * m
        p2g, g2p = hungarian_match(np.zeros((n, m)), 0.5)
        assert p2g.tolist() == [-1] * n and g2p.tolist() == [-1] * m


# ---------------------------------------------------------------- Hungarian
@st.composite
def small_matrices(draw):
    n, m = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    value = st.one_of(st.sampled_from(IOU_VALUES), st.floats(0, 1))
    ious = np.array(draw(st.lists(value, min_size=n * m, max_size=n * m)), float).reshape(n, m)
    return ious, draw(st.sampled_from([0.0, 0.3, 0.5, 0.75]))


@SETTINGS
@given(small_matrices())
def test_hungarian_is_optimal_by_brute_force(case):
    ious, thresh = case
    r2c, c2r = hungarian_match(ious, thresh)
    rows = np.flatnonzero(r2c >= 0)
    # a valid one-to-one assignment of allowed pairs
    assert len(set(r2c[rows].tolist())) == len(rows)
    np.testing.assert_array_equal(c2r[r2c[rows]], rows)
    assert ((c2r >= 0).sum()) == len(rows)
    assert (ious[rows, r2c[rows]] >= thresh).all() and (ious[rows, r2c[rows]] > 0).all()
    # ... with the best total IoU over all permutations
    total = ious[rows, r2c[rows]].sum()
    assert total == pytest.approx(brute_force_best_total(ious, thresh), abs=1e-9)
    # never worse than greedy (greedy is one feasible assignment)
    g, _ = greedy_match(ious, np.zeros(len(ious)), max(thresh, 1e-12))
    gr = np.flatnonzero(g >= 0)
    assert total >= ious[gr, g[gr]].sum() - 1e-9


def test_greedy_and_hungarian_differ_on_a_crowded_scene():
    # two people side by side; the confident prediction straddles both
    ious = np.array([[0.9, 0.6],
                     [0.8, 0.0]])
    g, _ = greedy_match(ious, np.array([0.9, 0.8]), 0.5)
    h, _ = hungarian_match(ious, 0.5)
    assert g.tolist() == [0, -1]  # greedy: 1 match, total IoU 0.9
    assert h.tolist() == [1, 0]   # optimal: 2 matches, total IoU 1.4


@SETTINGS
@given(st.lists(small_matrices(), min_size=1, max_size=6))
def test_batched_hungarian_equals_per_image(cases):
    thresh = cases[0][1]
    n1 = [c[0].shape[0] for c in cases]
    n2 = [c[0].shape[1] for c in cases]
    off1 = np.concatenate([[0], np.cumsum(n1)])
    off2 = np.concatenate([[0], np.cumsum(n2)])
    po = np.concatenate([[0], np.cumsum(np.multiply(n1, n2))])
    values = np.concatenate([c[0].ravel() for c in cases])
    m1, iou1, m2, iou2 = batched_match(values, po, off1, off2, None, thresh, method="hungarian")
    for s, (ious, _) in enumerate(cases):
        local = m1[off1[s]:off1[s + 1]]
        local = np.where(local >= 0, local - off2[s], -1)
        rows = np.flatnonzero(local >= 0)
        assert ious[rows, local[rows]].sum() == pytest.approx(
            brute_force_best_total(ious, thresh), abs=1e-9)
        np.testing.assert_array_equal(iou1[off1[s]:off1[s + 1]][rows], ious[rows, local[rows]])
    hit2 = m2 >= 0
    np.testing.assert_array_equal(m1[m2[hit2]], np.flatnonzero(hit2))
    np.testing.assert_array_equal(iou2[hit2], iou1[m2[hit2]])


# ---------------------------------------------------------------- classes
def test_classwise_vs_geometry_first():
    ious = np.array([[0.9, 0.2],
                     [0.1, 0.8]])
    labels1 = np.array(["cat", "dog"])
    labels2 = np.array(["dog", "dog"])
    # class-aware: the cat box may not take the dog gt
    cw, _ = hungarian_match(ious, 0.5, labels1=labels1, labels2=labels2, mode="classwise")
    assert cw.tolist() == [-1, 1]
    # geometry first (CVAT): shapes match, then the class is compared -> one class conflict
    gf, _ = hungarian_match(ious, 0.5, labels1=labels1, labels2=labels2, mode="geometry_first")
    assert gf.tolist() == [0, 1]
    assert label_agreement(gf, labels1, labels2).tolist() == [False, True]
    gg, _ = greedy_match(ious, np.array([1.0, 0.5]), 0.5, labels1=labels1, labels2=labels2,
                         mode="geometry_first")
    assert gg.tolist() == [0, 1]
    m1 = batched_match(ious.ravel(), [0, 4], [0, 2], [0, 2], np.array([1.0, 0.5]), 0.5,
                       labels1=labels1, labels2=labels2, mode="classwise")[0]
    assert m1.tolist() == [-1, 1]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pair_offsets=[0, 3]), "sample 0"),
        (dict(values=np.zeros(5)), "values has 5"),
        (dict(scores1=np.ones(3)), "scores1 has 3"),
        (dict(method="best"), "method must be"),
        (dict(mode="loose", labels1=["a", "b"], labels2=["a", "b"]), "mode must be"),
        (dict(labels1=["a", "b"]), "labels1 and labels2"),
        (dict(crowd2=[True]), "crowd2 has 1"),
        (dict(method="hungarian", crowd2=[True, False]), "one-to-one"),
        (dict(offsets1=[1, 2]), "offsets1 must start with 0"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = dict(values=np.zeros(4), pair_offsets=[0, 4], offsets1=[0, 2], offsets2=[0, 2],
                scores1=np.ones(2), iou_thresh=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        batched_match(**args)


def test_greedy_bad_shapes_are_named():
    with pytest.raises(ValueError, match="scores has 3"):
        greedy_match(np.zeros((2, 2)), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="2-D"):
        greedy_match(np.zeros(4), np.ones(4), 0.5)
    with pytest.raises(ValueError, match="gt_ignore has 1"):
        greedy_match(np.zeros((2, 2)), np.ones(2), 0.5, gt_ignore=[True])


# ---------------------------------------------------------------- AP vs pycocotools accumulate
def pycocotools_precision(images, n_gt_per_image):
    """pycocotools' accumulate on synthetic evalImgs -> (precision (101,), recall)."""
    ev = COCOeval(iouType="bbox")
    p = ev.params
    p.imgIds, p.catIds = list(range(len(images))), [1]
    p.areaRng, p.areaRngLbl, p.maxDets, p.iouThrs = [[0, 1e10]], ["all"], [1000], np.array([0.5])
    ev._paramsEval = copy.deepcopy(p)
    ev.evalImgs = [
        dict(dtScores=list(sc), dtMatches=np.array([tp.astype(float)]), dtIgnore=np.array([ig]),
             gtIgnore=np.zeros(g))
        for (sc, tp, ig), g in zip(images, n_gt_per_image)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    return ev.eval["precision"][0, :, 0, 0, 0], ev.eval["recall"][0, 0, 0, 0]


@st.composite
def per_image_detections(draw):
    n = draw(st.integers(0, 8))
    sc = np.array(draw(st.lists(st.sampled_from([0.2, 0.4, 0.4, 0.6, 0.8, 0.8]), min_size=n,
                                max_size=n)))
    sc = sc[np.argsort(-sc, kind="mergesort")]  # evaluateImg returns an image's dets sorted
    tp = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    ig = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    return sc, tp, ig


@SETTINGS
@given(st.lists(per_image_detections(), min_size=1, max_size=5),
       st.lists(st.integers(0, 4), min_size=5, max_size=5))
def test_precision_equals_pycocotools_accumulate(images, n_gt):
    n_gt = n_gt[:len(images)]
    if sum(n_gt) == 0:
        n_gt[0] = 1
    ours, rc = precision_at_recall(np.concatenate([i[1] for i in images]),
                                   np.concatenate([i[0] for i in images]), sum(n_gt),
                                   ignored=np.concatenate([i[2] for i in images]))
    theirs, their_rc = pycocotools_precision(images, n_gt)
    np.testing.assert_array_equal(ours, theirs)
    assert len(ours) == len(COCO_RECALL_THRESHOLDS)
    if sum(len(i[0]) for i in images):
        assert rc == their_rc
    # the compiled many-category pass, fed rows in score order (stable), after a category
    # without ground truth (-1) that holds the same detections
    from iou_audit.matching.ap import category_precision

    scores = np.concatenate([i[0] for i in images])
    rows = np.argsort(-scores, kind="stable")
    p2, rc2 = category_precision(np.concatenate([i[1] for i in images]), np.concatenate([i[2] for i in images]),
                                 np.concatenate([rows, rows]), [0, len(rows), 2 * len(rows)], [0, sum(n_gt)])
    np.testing.assert_array_equal(p2[:, 1], theirs)
    assert (p2[:, 0] == -1).all() and rc2[0] == -1
    if len(rows):
        assert rc2[1] == their_rc


# ---------------------------------------------------------------- coco_evaluate vs COCOeval
def box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def synthetic_boxes(rng, n_img, n_gt, n_dt, n_cat, extent, sizes, jitter, crowd_rate, score_values):
    """xyxy ground truth (corners in [0, extent), sides from ``sizes(shape)``) and detections that
    are jittered copies of ground truth of their image, random classes, crowds and tied scores;
    equal numbers of rows per image -> (gt, dt, gt_cat, dt_cat, crowd, scores, gt_off, dt_off)."""
    gt_xy = rng.uniform(0, extent, (n_img * n_gt, 2))
    gt = np.concatenate([gt_xy, gt_xy + sizes(gt_xy.shape)], axis=1)
    src = gt.reshape(n_img, n_gt, 4)[:, rng.integers(0, n_gt, n_dt)].reshape(-1, 4)
    dt = src + jitter(src)
    dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 1)
    gt_cat = rng.integers(1, n_cat + 1, len(gt))
    dt_cat = rng.integers(1, n_cat + 1, len(dt))
    crowd = rng.random(len(gt)) < crowd_rate
    scores = rng.choice(score_values, len(dt))
    return gt, dt, gt_cat, dt_cat, crowd, scores, np.arange(n_img + 1) * n_gt, np.arange(n_img + 1) * n_dt


def cocoeval_boxes(gt, dt, gt_cat, dt_cat, crowd, scores, n_img, n_cat, gt_area=None, **params):
    """pycocotools' COCOeval (evaluate, accumulate) of xyxy boxes on ``n_img`` images with equal
    numbers of rows each (image ids 1..n_img, annotation and result ids 1..n in input order);
    ``params`` are set on ``ev.params``; ``gt_area`` defaults to the box area."""
    from pycocotools.coco import COCO

    g = np.concatenate([gt[:, :2], gt[:, 2:] - gt[:, :2]], axis=1).tolist()
    d = np.concatenate([dt[:, :2], dt[:, 2:] - dt[:, :2]], axis=1).tolist()
    area = box_area(gt) if gt_area is None else gt_area
    img_gt = np.repeat(np.arange(1, n_img + 1), len(gt) // n_img)
    img_dt = np.repeat(np.arange(1, n_img + 1), len(dt) // n_img)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dict(
            images=[dict(id=i) for i in range(1, n_img + 1)],
            categories=[dict(id=c) for c in range(1, n_cat + 1)],
            annotations=[dict(id=i + 1, image_id=int(img_gt[i]), category_id=int(gt_cat[i]), bbox=g[i],
                              area=float(area[i]), iscrowd=int(crowd[i])) for i in range(len(g))])
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(image_id=int(img_dt[i]), category_id=int(dt_cat[i]), bbox=d[i],
                                        score=float(scores[i])) for i in range(len(d))])
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        for name, value in params.items():
            setattr(ev.params, name, value)
        ev.evaluate()
        ev.accumulate()
    return ev


def test_coco_evaluate_with_max_dets_cut_equals_pycocotools():
    """Synthetic images with more detections per (image, category) than max_dets, score ties
    across images and crowds: matches, evaluated rows and precision equal COCOeval's."""
    from iou_audit.geometry.boxes import batched_box_iou
    from iou_audit.matching import coco_evaluate

    rng = np.random.default_rng(7)
    n_img, n_gt, n_dt, n_cat, max_dets = 25, 6, 14, 2, 4
    gt, dt, gt_cat, dt_cat, crowd, scores, gt_off, dt_off = synthetic_boxes(
        rng, n_img, n_gt, n_dt, n_cat, 60, lambda shape: rng.uniform(5, 40, shape),
        lambda src: rng.normal(0, 3, src.shape), 0.1, [0.3, 0.5, 0.7, 0.9])

    ev = cocoeval_boxes(gt, dt, gt_cat, dt_cat, crowd, scores, n_img, n_cat, areaRng=[[0, 1e10]],
                        areaRngLbl=["all"], maxDets=[max_dets])

    values, po = batched_box_iou(dt, dt_off, gt, gt_off, crowd2=crowd)
    r = coco_evaluate(values, po, dt_off, gt_off, scores, dt_cat, gt_cat, gt_crowd=crowd,
                      max_dets=max_dets, categories=np.arange(1, n_cat + 1))
    np.testing.assert_array_equal(r.precision, ev.eval["precision"][:, :, :, 0, 0])
    evaluated = np.zeros(len(dt), bool)
    gt_ids = np.append(np.arange(1, len(gt) + 1), 0)
    for e in ev.evalImgs:
        if e is None or not e["dtIds"]:
            continue
        rows = np.array(e["dtIds"]) - 1  # loadRes numbers results 1..n in input order
        evaluated[rows] = True
        np.testing.assert_array_equal(gt_ids[r.match[:, rows]], e["dtMatches"])
        np.testing.assert_array_equal(r.ignored[:, rows], e["dtIgnore"].astype(bool))
    np.testing.assert_array_equal(r.evaluated, evaluated)
    assert evaluated.sum() < len(dt) and r.ignored.any()  # the cut and the crowds were exercised


def test_matching_imports_neither_fiftyone_nor_pandas():
    import subprocess
    import sys

    # only what importing matching adds (the package root may grow its own imports)
    code = ("import sys, iou_audit; before = set(sys.modules); import iou_audit.matching; "
            "print(sorted(m for m in set(sys.modules) - before "
            "if m.split('.')[0] in ('fiftyone', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_coco_evaluate_area_ranges_and_max_dets_equal_pycocotools():
    """COCO's four area ranges and maxDets 1/10/100 on synthetic boxes of every size, with the
    ground truth's ``area`` field differing from its box area (pycocotools uses the field):
    precision and recall arrays, the 12 stats, and area "all" matches, ignore flags and
    per-image TP/FP/FN equal COCOeval's."""
    from iou_audit.geometry.boxes import batched_box_iou
    from iou_audit.matching import coco_evaluate
    from iou_audit.matching.coco import STAT_NAMES

    rng = np.random.default_rng(11)
    n_img, n_gt, n_dt, n_cat = 30, 8, 15, 3
    # sides from 4 to 200 pixels: small (< 32^2), medium and large areas all occur; jitter
    # proportional to the size
    gt, dt, gt_cat, dt_cat, crowd, scores, gt_off, dt_off = synthetic_boxes(
        rng, n_img, n_gt, n_dt, n_cat, 300, lambda shape: np.exp(rng.uniform(np.log(4), np.log(200), shape)),
        lambda src: rng.normal(0, 2, src.shape) * (src[:, [2, 3, 2, 3]] - src[:, [0, 1, 0, 1]]) / 10,
        0.08, [0.2, 0.4, 0.6, 0.8])
    gt_area = box_area(gt) * rng.uniform(0.6, 1.0, len(gt))  # like a mask's area
    dt_area = box_area(dt)  # loadRes: box area
    # maxDets 10 < detections per image and category sometimes
    ev = cocoeval_boxes(gt, dt, gt_cat, dt_cat, crowd, scores, n_img, n_cat, gt_area, maxDets=[1, 4, 10])
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()

    values, po = batched_box_iou(dt, dt_off, gt, gt_off, crowd2=crowd)
    r = coco_evaluate(values, po, dt_off, gt_off, scores, dt_cat, gt_cat, gt_crowd=crowd, max_dets=(1, 4, 10),
                      categories=np.arange(1, n_cat + 1), dt_area=dt_area, gt_area=gt_area)
    np.testing.assert_array_equal(r.eval_precision, ev.eval["precision"])
    np.testing.assert_array_equal(r.eval_recall, ev.eval["recall"])
    np.testing.assert_array_equal(r.stats, ev.stats)
    assert list(r.stats_dict()) == list(STAT_NAMES) and r.areas_known
    assert (ev.eval["precision"][:, :, :, 1:] > -1).any(axis=(0, 1, 2, 4)).all()  # every range has gt
    gt_ids = np.append(np.arange(1, len(gt) + 1), 0)
    tp, fp, fn = np.zeros_like(r.tp), np.zeros_like(r.fp), np.zeros_like(r.fn)
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[0]:
            continue
        s = e["image_id"] - 1
        rows = np.array(e["dtIds"], np.int64) - 1
        if len(rows):
            np.testing.assert_array_equal(gt_ids[r.match[:, rows]], e["dtMatches"])
            np.testing.assert_array_equal(r.ignored[:, rows], e["dtIgnore"].astype(bool))
        counted = ~e["dtIgnore"].astype(bool)
        tp[:, s] += ((e["dtMatches"] > 0) & counted).sum(axis=1)
        fp[:, s] += ((e["dtMatches"] == 0) & counted).sum(axis=1)
        gt_counted = ~np.asarray(e["gtIgnore"], bool)
        fn[:, s] += ((e["gtMatches"] == 0) & gt_counted).sum(axis=1)
    np.testing.assert_array_equal(r.tp, tp)
    np.testing.assert_array_equal(r.fp, fp)
    np.testing.assert_array_equal(r.fn, fn)


def test_coco_evaluate_rejects_half_given_areas():
    from iou_audit.matching import coco_evaluate

    args = (np.array([0.8]), np.array([0, 1]), np.array([0, 1]), np.array([0, 1]), np.array([0.9]),
            np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match="dt_area and gt_area"):
        coco_evaluate(*args, dt_area=np.array([5.0]))
    with pytest.raises(ValueError, match="gt_area have 1/2"):
        coco_evaluate(*args, dt_area=np.array([5.0]), gt_area=np.array([5.0, 6.0]))
    with pytest.raises(ValueError, match="stats need area ranges"):
        coco_evaluate(*args).stats
