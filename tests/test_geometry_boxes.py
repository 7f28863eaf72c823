"""geometry.boxes against independent oracles: torchvision's and supervision's published test
tables, pycocotools / faster-coco-eval box IoU, the golden table in shared/notes/anchors.md §E,
and hypothesis properties. No expected value here was produced by our own code."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from iou_audit.geometry.boxes import (
    METRICS,
    batched_box_iou,
    batched_pair_rows,
    batched_self_pairs,
    box_iou,
    valid_boxes,
    xywh_to_xyxy,
)

# --- torchvision ------------------------------------------------------------------------------
# Copied from pytorch/vision test/test_ops.py (commit 00673be3960268a837860cd6a05373d9861221d3):
# INT_BOXES, INT_BOXES2, FLOAT_BOXES and the int_expected / float_expected tables of TestBoxIou,
# TestGeneralizedBoxIou, TestDistanceBoxIoU and TestCompleteBoxIou (atol 1e-4 int, 1e-3 float).
INT_BOXES = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300], [0, 0, 25, 25]]
INT_BOXES2 = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]
FLOAT_BOXES = [
    [285.3538, 185.5758, 1193.5110, 851.4551],
    [285.1472, 188.7374, 1192.4984, 851.0669],
    [279.2440, 197.9812, 1189.4746, 849.2019],
]
TV_FLOAT_EXPECTED = [[1.0, 0.9933, 0.9673], [0.9933, 1.0, 0.9737], [0.9673, 0.9737, 1.0]]
TV_DISTANCE_INT = [
    [1.0000, 0.1875, -0.4444],
    [0.1875, 1.0000, -0.5625],
    [-0.4444, -0.5625, 1.0000],
    [-0.0781, 0.1875, -0.6267],
]
TV_INT_EXPECTED = {
    "iou": [[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0625, 0.25, 0.0]],
    "giou": [[1.0, 0.25, -0.7778], [0.25, 1.0, -0.8611], [-0.7778, -0.8611, 1.0],
             [0.0625, 0.25, -0.8819]],
    "diou": TV_DISTANCE_INT,
    "ciou": TV_DISTANCE_INT,
}


@pytest.mark.parametrize("metric", ["iou", "giou", "diou", "ciou"])
def test_torchvision_tables(metric):
    got = box_iou(np.array(INT_BOXES), np.array(INT_BOXES2), metric)
    np.testing.assert_allclose(got, TV_INT_EXPECTED[metric], rtol=0, atol=1e-4)
    got = box_iou(np.array(FLOAT_BOXES), np.array(FLOAT_BOXES), metric)
    np.testing.assert_allclose(got, TV_FLOAT_EXPECTED, rtol=0, atol=1e-3)
    # the batched kernel on the same tables, as one image and split over two images
    values, po = batched_box_iou(INT_BOXES, [0, 4], INT_BOXES2, [0, 3], metric)
    np.testing.assert_allclose(values.reshape(4, 3), TV_INT_EXPECTED[metric], atol=1e-4)
    values, po = batched_box_iou(INT_BOXES, [0, 2, 4], INT_BOXES2, [0, 2, 3], metric)
    np.testing.assert_allclose(values[: po[1]].reshape(2, 2),
                               np.array(TV_INT_EXPECTED[metric])[:2, :2], atol=1e-4)
    np.testing.assert_allclose(values[po[1]:].reshape(2, 1),
                               np.array(TV_INT_EXPECTED[metric])[2:, 2:], atol=1e-4)


# pytorch/vision test/test_ops.py (same commit), get_boxes() and the expected losses of
# TestGeneralizedBoxIouLoss / TestDistanceBoxIouLoss / TestCompleteBoxIouLoss: loss = 1 - metric.
TV_LOSS_BOXES = {"box1": [-1, -1, 1, 1], "box2": [0, 0, 1, 1], "box3": [0, 1, 1, 2],
                 "box4": [1, 1, 2, 2]}
TV_LOSSES = [
    ("giou", "box1", "box2", 0.75), ("giou", "box2", "box3", 1.0), ("giou", "box2", "box4", 1.5),
    ("diou", "box1", "box2", 0.8125), ("diou", "box1", "box3", 1.1923),
    ("diou", "box1", "box4", 1.2500),
    ("ciou", "box1", "box2", 0.8125), ("ciou", "box1", "box3", 1.1923),
    ("ciou", "box1", "box4", 1.2500),
]


@pytest.mark.parametrize("metric,a,b,loss", TV_LOSSES)
def test_torchvision_losses(metric, a, b, loss):
    got = box_iou(np.array([TV_LOSS_BOXES[a]]), np.array([TV_LOSS_BOXES[b]]), metric)[0, 0]
    assert 1.0 - got == pytest.approx(loss, abs=1e-4)


# --- supervision ------------------------------------------------------------------------------
# roboflow/supervision test/detection/utils/test_iou_and_nms.py (commit 616dd3454c1e...):
# test_box_iou / test_box_iou_batch cases (true box, detection box, IOU, IOS), degenerate included;
# plus the box_iou_batch docstring in supervision/detection/utils/iou_and_nms.py.
SV_CASES = [
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0, 0.0),  # touching at an edge
    ([0, 0, 10, 10], [2, 2, 8, 8], 0.36, 1.0),  # one inside the other
    ([0, 0, 0, 0], [0, 0, 10, 10], 0.0, 0.0),  # degenerate true box
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0, 0.0),  # both degenerate
    ([-5, 0, 5, 10], [0, 0, 10, 10], 1 / 3, 0.5),  # negative coordinate
    ([0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5], 0.14285714285714285, 0.25),  # fractional
    ([100, 100, 200, 200], [150, 150, 250, 250], 0.14285714285714285, 0.25),
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0, 0.0),
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0, 1.0),
]


@pytest.mark.parametrize("a,b,iou,ios", SV_CASES)
def test_supervision_cases(a, b, iou, ios):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(iou, rel=1e-6, abs=1e-12)
    assert box_iou(np.array([a]), np.array([b]), "ios")[0, 0] == pytest.approx(ios, rel=1e-6,
                                                                               abs=1e-12)
    v, _ = batched_box_iou([a], [0, 1], [b], [0, 1], "ios")
    assert v[0] == pytest.approx(ios, rel=1e-6, abs=1e-12)


def test_supervision_batch_docstring_and_2x2():
    true = np.array([[100, 100, 200, 200], [300, 300, 400, 400]], float)
    det = np.array([[150, 150, 250, 250], [320, 320, 420, 420]], float)
    np.testing.assert_allclose(box_iou(true, det), [[0.14285715, 0], [0, 0.47058824]], rtol=1e-6)
    np.testing.assert_allclose(box_iou(true, det, "ios"), [[0.25, 0], [0, 0.64]], rtol=1e-6)
    true = np.array([[0, 0, 10, 10], [10, 10, 20, 20]], float)
    det = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], float)
    np.testing.assert_allclose(box_iou(true, det), [[1.0, 0.14285715], [0, 0.14285715]],
                               rtol=1e-6)
    np.testing.assert_allclose(box_iou(true, det, "ios"), [[1.0, 0.25], [0, 0.25]], rtol=1e-6)
    assert box_iou(np.empty((0, 4)), det).shape == (0, 2)
    assert box_iou(true, np.empty((0, 4))).shape == (2, 0)


# --- anchors.md §E golden table (recomputed independently there) -------------------------------
GOLDEN = [
    ([0, 0, 10, 10], [5, 5, 15, 15], "iou", 0.142857),
    ([0, 0, 10, 10], [5, 5, 15, 15], "giou", -0.079365),
    ([0, 0, 10, 10], [5, 5, 15, 15], "diou", 0.031746),
    ([0, 0, 10, 10], [5, 5, 15, 15], "ciou", 0.031746),
    ([0, 0, 10, 10], [1, 1, 11, 11], "iou", 0.680672),  # continuous; +1 convention gives 0.704
    ([0, 0, 10, 10], [20, 0, 30, 10], "giou", -1 / 3),
    ([0, 0, 100, 100], [200, 200, 300, 300], "diou", -0.4444),
    ([0, 0, 10, 10], [0, 0, 20, 10], "iou", 0.5),
    ([0, 0, 10, 10], [0, 0, 20, 10], "diou", 0.45),
    ([0, 0, 10, 10], [0, 0, 20, 10], "ciou", 0.446752),
]


@pytest.mark.parametrize("a,b,metric,expected", GOLDEN)
def test_anchor_golden(a, b, metric, expected):
    assert box_iou(np.array([a]), np.array([b]), metric)[0, 0] == pytest.approx(expected,
                                                                                abs=1e-4)
    v, _ = batched_box_iou([a], [0, 1], [b], [0, 1], metric)
    assert v[0] == pytest.approx(expected, abs=1e-4)


def test_anchor_golden_crowd():
    det, gt = np.array([[0, 0, 5, 5]]), np.array([[0, 0, 10, 10]])
    assert box_iou(det, gt, crowd=np.array([True]))[0, 0] == 1.0
    assert box_iou(det, gt)[0, 0] == 0.25
    assert batched_box_iou(det, [0, 1], gt, [0, 1], crowd2=np.array([True]))[0][0] == 1.0


# --- pycocotools and faster-coco-eval on boxes (xywh), with and without iscrowd ------------------
def _random_boxes(rng, n, degenerate_fraction=0.0):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0.5, 40, (n, 2))
    b = np.c_[xy, xy + wh]
    bad = rng.random(n) < degenerate_fraction
    b[bad, 2] = b[bad, 0] - rng.uniform(0, 5, bad.sum())  # zero or negative width
    return b


@pytest.mark.parametrize("seed", range(3))
def test_pycocotools_box_iou_with_crowd(seed):
    from faster_coco_eval.core import mask as fce_mask

    rng = np.random.default_rng(seed)
    dt, gt = _random_boxes(rng, 30), _random_boxes(rng, 25)
    iscrowd = rng.random(25) < 0.3
    dt_xywh = np.c_[dt[:, :2], dt[:, 2:] - dt[:, :2]]
    gt_xywh = np.c_[gt[:, :2], gt[:, 2:] - gt[:, :2]]
    for crowd in (np.zeros(25, bool), iscrowd):
        expected = coco_mask.iou(dt_xywh, gt_xywh, crowd.astype(np.uint8).tolist())
        np.testing.assert_allclose(box_iou(dt, gt, crowd=crowd), expected, rtol=0, atol=1e-12)
        values, _ = batched_box_iou(dt, [0, 30], gt, [0, 25], crowd2=crowd)
        np.testing.assert_allclose(values.reshape(30, 25), expected, rtol=0, atol=1e-12)
        fce = np.asarray(fce_mask.iou(dt_xywh, gt_xywh, crowd.astype(np.uint8).tolist()))
        np.testing.assert_allclose(values.reshape(30, 25), fce, rtol=0, atol=1e-12)
    np.testing.assert_allclose(xywh_to_xyxy(dt_xywh), dt, atol=1e-12)


# --- batched == per-image, ragged, empty images, degenerate boxes ------------------------------
def _ragged(rng, n_images, max_boxes, degenerate_fraction=0.1):
    counts = rng.integers(0, max_boxes + 1, n_images)
    counts[: min(3, n_images)] = 0  # always include empty images
    offsets = np.r_[0, np.cumsum(counts)]
    b = _random_boxes(rng, offsets[-1], degenerate_fraction)
    special = rng.random(len(b))
    b[special < 0.03, 1] = np.nan
    b[(special >= 0.03) & (special < 0.05), 3] = np.inf
    return b, offsets


@pytest.mark.parametrize("metric", METRICS)
def test_batched_equals_per_image(metric):
    rng = np.random.default_rng(7)
    b1, o1 = _ragged(rng, 300, 7)
    b2, o2 = _ragged(rng, 300, 7)
    crowd = rng.random(len(b2)) < 0.2
    values, po = batched_box_iou(b1, o1, b2, o2, metric, crowd2=crowd)
    assert po[-1] == len(values) and not np.isnan(values).any()
    for s in range(300):
        n1, n2 = o1[s + 1] - o1[s], o2[s + 1] - o2[s]
        ref = box_iou(b1[o1[s]:o1[s + 1]], b2[o2[s]:o2[s + 1]], metric,
                      crowd=crowd[o2[s]:o2[s + 1]])
        np.testing.assert_allclose(values[po[s]:po[s + 1]].reshape(n1, n2), ref, rtol=0,
                                   atol=1e-12)
    rows_p, r1, r2 = batched_pair_rows(o1, len(b1), o2, len(b2))
    np.testing.assert_array_equal(rows_p, po)
    full = box_iou(b1, b2, metric, crowd=crowd)  # every pair, images ignored
    np.testing.assert_allclose(values, full[r1, r2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", ["diou", "ciou"])
def test_batched_sizes_scale_relative_boxes_to_pixels(metric):
    rng = np.random.default_rng(3)
    rel1, o1 = _ragged(rng, 50, 5, 0.0)
    rel2, o2 = _ragged(rng, 50, 5, 0.0)
    rel1, rel2 = rel1 / 150, rel2 / 150
    sizes = rng.uniform(100, 2000, (50, 2))
    values, po = batched_box_iou(rel1, o1, rel2, o2, metric, sizes=sizes)
    for s in range(50):
        scale = np.tile(sizes[s], 2)
        ref = box_iou(rel1[o1[s]:o1[s + 1]] * scale, rel2[o2[s]:o2[s + 1]] * scale, metric)
        np.testing.assert_allclose(values[po[s]:po[s + 1]].ravel(), ref.ravel(), atol=1e-12)
    # IoU ignores sizes (scale invariant): same values either way
    a, _ = batched_box_iou(rel1, o1, rel2, o2, "iou", sizes=sizes)
    b, _ = batched_box_iou(rel1, o1, rel2, o2, "iou")
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_degenerate_boxes_are_zero_or_minus_one_never_nan():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, -1], [np.nan, 0, 1, 1],
                      [0, 0, np.inf, 1], [-np.inf, 0, 1, 1]])
    assert valid_boxes(boxes).tolist() == [True, False, False, False, False, False]
    for metric in METRICS:
        v, _ = batched_box_iou(boxes, [0, 6], boxes, [0, 6], metric,
                               crowd2=np.ones(6, bool))
        m = v.reshape(6, 6)
        fill = -1.0 if metric in ("giou", "diou", "ciou") else 0.0
        assert m[0, 0] == 1.0 and not np.isnan(m).any()
        assert (m[1:, :] == fill).all() and (m[:, 1:] == fill).all()
        ri, rj, sv = batched_self_pairs(boxes, [0, 6], metric)
        assert not np.isnan(sv).any() and (sv == fill).all() and len(sv) == 15


def test_input_errors_name_the_field():
    b = np.zeros((3, 4))
    with pytest.raises(ValueError, match="offsets1"):
        batched_box_iou(b, [0, 2], b, [0, 3])
    with pytest.raises(ValueError, match="offsets2"):
        batched_box_iou(b, [0, 3], b, [0, 4, 3])
    with pytest.raises(ValueError, match="images"):
        batched_box_iou(b, [0, 3], b, [0, 1, 3])
    with pytest.raises(ValueError, match="metric"):
        batched_box_iou(b, [0, 3], b, [0, 3], "dice")
    with pytest.raises(ValueError, match="crowd2"):
        batched_box_iou(b, [0, 3], b, [0, 3], crowd2=[True])
    with pytest.raises(ValueError, match="sizes"):
        batched_box_iou(b, [0, 3], b, [0, 3], "ciou", sizes=[[np.nan, 10]])
    with pytest.raises(ValueError, match="labels"):
        batched_self_pairs(b, [0, 3], same_label_only=True)


def test_self_pairs_labels_may_mix_none_and_str():
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], float)
    ri, rj, v = batched_self_pairs(b, [0, 3], labels=np.array(["a", None, "a"], dtype=object),
                                   same_label_only=True)
    assert (ri.tolist(), rj.tolist(), v.tolist()) == ([0], [2], [1.0])
    assert batched_box_iou(np.empty((0, 4)), [0], np.empty((0, 4)), [0])[0].shape == (0,)


# --- self pairs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["iou", "ios", "giou", "ciou"])
def test_self_pairs_match_upper_triangle(metric):
    rng = np.random.default_rng(11)
    b, o = _ragged(rng, 120, 9)
    labels = rng.choice(np.array(["cat", "dog", "car"]), len(b))
    ri, rj, v = batched_self_pairs(b, o, metric)
    expected = []
    for s in range(120):
        m = box_iou(b[o[s]:o[s + 1]], b[o[s]:o[s + 1]], metric)
        ii, jj = np.triu_indices(o[s + 1] - o[s], k=1)
        expected += [(o[s] + i, o[s] + j, m[i, j]) for i, j in zip(ii, jj)]
    exp = np.array(expected, dtype=float).reshape(-1, 3)
    np.testing.assert_array_equal(ri, exp[:, 0])
    np.testing.assert_array_equal(rj, exp[:, 1])
    np.testing.assert_allclose(v, exp[:, 2], rtol=0, atol=1e-12)
    ri2, rj2, v2 = batched_self_pairs(b, o, metric, labels=labels, same_label_only=True)
    same = labels[exp[:, 0].astype(int)] == labels[exp[:, 1].astype(int)]
    np.testing.assert_array_equal(ri2, exp[same, 0])
    np.testing.assert_array_equal(rj2, exp[same, 1])
    np.testing.assert_allclose(v2, exp[same, 2], rtol=0, atol=1e-12)


# --- hypothesis properties ---------------------------------------------------------------------
coord = st.floats(-1e3, 1e3, allow_nan=False)
extent = st.floats(1e-2, 1e3, allow_nan=False)
box = st.tuples(coord, coord, extent, extent).map(lambda t: [t[0], t[1], t[0] + t[2],
                                                             t[1] + t[3]])
boxes = st.lists(box, min_size=1, max_size=6).map(np.array)
factor = st.floats(1e-2, 1e2)


@settings(max_examples=60, deadline=None)
@given(boxes, boxes)
def test_properties_symmetry_and_ranges(a, b):
    for metric in METRICS:
        ab, ba = box_iou(a, b, metric), box_iou(b, a, metric)
        np.testing.assert_allclose(ab, ba.T, rtol=1e-12, atol=1e-12)
        # CIoU = DIoU - alpha * v with alpha * v = v^2 / (1 - IoU + v) <= 1/2 for disjoint boxes,
        # so its floor is -1.5, not -1 (e.g. a flat box far above a tall one)
        lo = {"iou": 0.0, "ios": 0.0, "giou": -1.0, "diou": -1.0, "ciou": -1.5}[metric]
        assert ((ab >= lo - 1e-12) & (ab <= 1 + 1e-12)).all()
        v, _ = batched_box_iou(a, [0, len(a)], b, [0, len(b)], metric)
        np.testing.assert_allclose(v.reshape(ab.shape), ab, rtol=0, atol=1e-12)
        self_vals = np.diag(box_iou(a, a, metric))
        np.testing.assert_allclose(self_vals, 1.0, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(boxes, boxes, factor, factor)
def test_properties_scale_invariance(a, b, sx, sy):
    # IoU, GIoU and IOS do not change when x and y are scaled independently (image resize)
    scale = np.array([sx, sy, sx, sy])
    for metric in ("iou", "giou", "ios"):
        np.testing.assert_allclose(box_iou(a * scale, b * scale, metric), box_iou(a, b, metric),
                                   rtol=1e-9, atol=1e-9)
    # DIoU and CIoU only under a uniform scale (they use distances and aspect ratios)
    for metric in ("diou", "ciou"):
        np.testing.assert_allclose(box_iou(a * sx, b * sx, metric), box_iou(a, b, metric),
                                   rtol=1e-9, atol=1e-9)


# --- box_iou (one compiled call) vs an independent numpy broadcast -----------------------------
def _reference(b1, b2, metric, crowd=None):
    """Pairwise metric written out here with numpy broadcasts, pair by pair formulas of
    torchvision (giou/diou/ciou) and pycocotools (crowd); degenerate -> 0 (iou, ios) or -1."""
    b1 = np.asarray(b1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(b2, dtype=np.float64).reshape(-1, 4)
    if len(b1) == 0 or len(b2) == 0:
        return np.zeros((len(b1), len(b2)))

    def good(b):
        with np.errstate(invalid="ignore"):
            return np.isfinite(b).all(1) & (b[:, 2] - b[:, 0] > 0) & (b[:, 3] - b[:, 1] > 0)

    ok = np.outer(good(b1), good(b2))
    p = np.where(good(b1)[:, None], b1, 0.0)[:, None, :]  # (N, 1, 4)
    q = np.where(good(b2)[:, None], b2, 0.0)[None, :, :]  # (1, M, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
        area_q = (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1])
        wh = np.clip(np.minimum(p[..., 2:], q[..., 2:]) - np.maximum(p[..., :2], q[..., :2]), 0,
                     None)
        inter = wh[..., 0] * wh[..., 1]
        union = area_p + area_q - inter
        iou = inter / union
        if metric == "ios":
            return np.where(ok, inter / np.minimum(area_p, area_q), 0.0)
        if metric == "iou":
            if crowd is not None:
                iou = np.where(np.asarray(crowd, bool)[None, :], inter / area_p, iou)
            return np.where(ok, iou, 0.0)
        lo = np.minimum(p[..., :2], q[..., :2])
        hi = np.maximum(p[..., 2:], q[..., 2:])
        if metric == "giou":
            hull = np.prod(hi - lo, axis=-1)
            return np.where(ok, iou - (hull - union) / hull, -1.0)
        centre = ((p[..., :2] + p[..., 2:]) - (q[..., :2] + q[..., 2:])) / 2
        val = iou - (centre**2).sum(-1) / ((hi - lo) ** 2).sum(-1)
        if metric == "ciou":
            v = 4 / np.pi**2 * (np.arctan((q[..., 2] - q[..., 0]) / (q[..., 3] - q[..., 1]))
                                - np.arctan((p[..., 2] - p[..., 0]) / (p[..., 3] - p[..., 1])))**2
            alpha = np.where(1 - iou + v > 0, v / (1 - iou + v), 0.0)
            val = val - alpha * v
        return np.where(ok, val, -1.0)


def _mixed_boxes(rng, n):
    b = _random_boxes(rng, n, degenerate_fraction=0.1)
    kind = rng.integers(0, 12, n)
    b[kind == 0, 1] = np.nan
    b[kind == 1, 3] = np.inf
    b[kind == 2, 0] = -np.inf
    b[kind == 3, 3] = b[kind == 3, 1]  # zero height
    b[kind == 4] = b[rng.integers(0, n, (kind == 4).sum())]  # exact duplicates
    return b


@pytest.mark.parametrize("metric", METRICS)
def test_box_iou_matches_numpy_reference(metric):
    rng = np.random.default_rng(17)
    for n, m in [(1, 1), (3, 7), (40, 25), (300, 257)]:
        b1, b2 = _mixed_boxes(rng, n), _mixed_boxes(rng, m)
        crowd = rng.random(m) < 0.3
        for c in (None, crowd, np.ones(m, bool)):
            got = box_iou(b1, b2, metric, crowd=c)
            ref = _reference(b1, b2, metric, c if metric == "iou" else None)
            assert got.shape == (n, m) and got.dtype == np.float64 and not np.isnan(got).any()
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
            # the batched kernels on the same single image: identical, not just close
            values, _ = batched_box_iou(b1, [0, n], b2, [0, m], metric, crowd2=c)
            np.testing.assert_array_equal(got.ravel(), values)
        fill = -1.0 if metric in ("giou", "diou", "ciou") else 0.0
        bad1, bad2 = ~valid_boxes(b1), ~valid_boxes(b2)
        got = box_iou(b1, b2, metric)
        assert (got[bad1] == fill).all() and (got[:, bad2] == fill).all()


@pytest.mark.parametrize("metric", METRICS)
def test_box_iou_input_layouts_and_dtypes(metric):
    rng = np.random.default_rng(5)
    b1, b2 = _mixed_boxes(rng, 60) * 3, _mixed_boxes(rng, 45) * 3
    ref = _reference(b1, b2, metric)
    wide = np.zeros((60, 9))
    wide[:, 1:9:2] = b1  # strided columns
    layouts = [
        (wide[:, 1:9:2], b2),
        (np.asfortranarray(b1), b2[::-1][::-1]),
        (np.repeat(b1, 2, axis=0)[::2], np.asfortranarray(b2)),
        (b1.tolist(), b2.tolist()),
    ]
    for a, b in layouts:
        assert not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a is b1
        np.testing.assert_allclose(box_iou(a, b, metric), ref, rtol=0, atol=1e-12)
    # float32 and int boxes: converted to float64 first, like the reference
    f1, f2 = b1.astype(np.float32), b2.astype(np.float32)
    np.testing.assert_allclose(box_iou(f1, f2, metric), _reference(f1, f2, metric), rtol=0,
                               atol=1e-12)
    i1 = np.nan_to_num(b1, nan=0, posinf=0, neginf=0).round().astype(np.int64)
    i2 = np.nan_to_num(b2, nan=0, posinf=0, neginf=0).round().astype(np.int32)
    got = box_iou(i1, i2, metric)
    np.testing.assert_allclose(got, _reference(i1, i2, metric), rtol=0, atol=1e-12)
    assert not np.isnan(got).any()
    # a flat (4k,) input is k boxes, as before
    np.testing.assert_allclose(box_iou(b1[0], b2, metric), ref[:1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_box_iou_empty_inputs(metric):
    b = np.array([[0, 0, 1, 1], [0, 0, 2, 2]], float)
    for a, c, shape in [(np.empty((0, 4)), b, (0, 2)), (b, np.empty((0, 4)), (2, 0)),
                        (np.empty((0, 4)), np.empty((0, 4)), (0, 0)), ([], b, (0, 2))]:
        got = box_iou(a, c, metric, crowd=np.ones(len(np.reshape(c, (-1, 4))), bool))
        assert got.shape == shape and got.dtype == np.float64


def test_box_iou_crowd_rules():
    det = np.array([[0, 0, 5, 5], [0, 0, 0, 5]], float)  # the second is degenerate
    gt = np.array([[0, 0, 10, 10], [0, 0, 5, 5]], float)
    np.testing.assert_array_equal(box_iou(det, gt, crowd=[True, False]), [[1.0, 1.0], [0, 0]])
    # crowd is only used with metric="iou": ignored (not checked) by the others
    for metric in ("ios", "giou", "diou", "ciou"):
        np.testing.assert_array_equal(box_iou(det, gt, metric, crowd=[True]),
                                      box_iou(det, gt, metric))
    with pytest.raises(ValueError, match="crowd has 1 entries for 2 boxes2"):
        box_iou(det, gt, crowd=[True])
    with pytest.raises(ValueError, match="metric"):
        box_iou(det, gt, "dice")


def test_box_iou_tiny_area_is_zero_not_nan():
    # positive width and height whose area underflows to 0: the 0/0 pair is IoU 0
    tiny = np.array([[0, 0, 1e-200, 1e-200]])
    for metric in METRICS:
        assert box_iou(tiny, tiny, metric).tolist() == [[0.0]]
