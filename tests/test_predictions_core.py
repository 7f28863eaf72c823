"""Array-level pieces of the prediction audit, checked against brute-force loops and hand cases."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.predictions.errors import group_max, off_edges
from iou_audit.audits.predictions.quality import image_quality, label_quality
from iou_audit.overlaps import pair_rows
from iou_audit.table import LabelTable


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_pair_rows_matches_nested_loops(counts):
    off1 = np.r_[0, np.cumsum([a for a, _ in counts])]
    off2 = np.r_[0, np.cumsum([b for _, b in counts])]
    want1, want2 = [], []
    for s in range(len(counts)):
        for i in range(off1[s], off1[s + 1]):
            for j in range(off2[s], off2[s + 1]):
                want1.append(i)
                want2.append(j)
    r1, r2 = pair_rows(off1, off2)
    assert r1.tolist() == want1 and r2.tolist() == want2


@given(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 1)), max_size=30))
@settings(max_examples=60, deadline=None)
def test_group_max_matches_python(items):
    g = np.array([a for a, _ in items], dtype=np.int64)
    v = np.array([b for _, b in items], dtype=float)
    out, arg = group_max(g, v, 6)
    for k in range(6):
        vals = [b for a, b in items if a == k]
        if vals:
            assert out[k] == max(vals) and v[arg[k]] == max(vals) and g[arg[k]] == k
        else:
            assert out[k] == 0 and arg[k] == -1


def test_off_edges_names_the_worst_edge():
    gt = np.array([[0.1, 0.1, 0.3, 0.5], [0.0, 0.0, 0.2, 0.2]])
    pred = np.array([[0.1, 0.1, 0.3, 0.3], [0.0, 0.0, 0.2, 0.2]])
    edge, amount = off_edges(gt, pred, np.array([0, -1]))
    assert edge.tolist() == ["bottom", ""]
    assert amount[0] == pytest.approx(1.0)  # 0.2 lower than predicted, the prediction is 0.2 tall


def test_quality_is_one_minus_the_worst_score():
    q, k = label_quality(np.array([0.2, 0.0]), np.array([0.1, 0.7]), np.array([0.6, 0.0]))
    assert q.tolist() == pytest.approx([0.4, 0.3]) and k.tolist() == ["mislocated", "class_swap"]
    iq = image_quality(np.array([0, 0, 2]), np.array([0.9, 0.5, 1.0]), np.array([1, 2]), np.array([0.3, 0.8]), 4)
    assert iq.tolist() == pytest.approx([0.5, 0.7, 0.2, 1.0])


def _table(field, per_image, with_conf=False):
    rows = [(s, *r) for s, img in enumerate(per_image) for r in img]
    n = len(rows)
    off = np.r_[0, np.cumsum([len(x) for x in per_image])].astype(np.int64)
    return LabelTable(
        field=field, label_type="detections", sample_ids=np.array([f"s{i}" for i in range(len(per_image))], object),
        filepaths=np.full(len(per_image), "", object), width=np.full(len(per_image), 100.0),
        height=np.full(len(per_image), 100.0), offsets=off,
        sample_index=np.array([r[0] for r in rows], np.int64),
        label_id=np.array([f"{field}{i}" for i in range(n)], object),
        label=np.array([r[1] for r in rows], object), box=np.array([r[2] for r in rows], float).reshape(-1, 4),
        confidence=np.array([r[3] if with_conf else np.nan for r in rows], float),
        iscrowd=np.array([bool(r[4]) if len(r) > 4 else False for r in rows]),
    )


def test_crowd_absorbs_predictions_without_findings():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    gt = _table("gt", [[("person", [0, 0, 1, 1], None, True), ("person", [0.1, 0.1, 0.3, 0.3], None, False)]])
    pred = _table("pred", [[("person", [0.1, 0.1, 0.3, 0.3], 0.9), ("person", [0.6, 0.6, 0.8, 0.8], 0.8)]],
                  with_conf=True)
    a = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    # the second prediction lies inside the crowd region (crowd IoU = 1): ignored, not a missing label
    assert a.pred_match.tolist() == [1, 0]
    assert a.errors.possible_missing.tolist() == [0.0, 0.0]
    assert a.metrics["fp"] == 0 and a.metrics["tp"] == 1 and a.metrics["fn"] == 0
    assert a.errors.possible_spurious[0] == 0.0  # crowd regions are never findings


def test_hungarian_recovers_the_pair_greedy_loses():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    # prediction 0 (score .9) overlaps both labels; greedy gives it label 0 and leaves prediction 1 alone
    gt = _table("gt", [[("a", [0.0, 0.0, 0.4, 0.4]), ("a", [0.2, 0.0, 0.6, 0.4])]])
    pred = _table("pred", [[("a", [0.1, 0.0, 0.5, 0.4], 0.9), ("a", [0.0, 0.0, 0.35, 0.4], 0.8)]], with_conf=True)
    g = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    h = compute_prediction_audit(pred, gt, method="hungarian", coco_metrics=False, tide=False)
    assert g.metrics["tp"] == 1 and h.metrics["tp"] == 2
    assert h.gt_match.tolist() == [1, 0]


def test_geometry_first_matches_across_classes():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    gt = _table("gt", [[("cat", [0, 0, 0.5, 0.5])]])
    pred = _table("pred", [[("dog", [0, 0, 0.5, 0.5], 0.9)]], with_conf=True)
    a = compute_prediction_audit(pred, gt, classwise=False, coco_metrics=False, tide=False)
    assert a.pred_match.tolist() == [0]
    # class swap = calibrated precision of the 0.9 "dog": no other dog prediction, so the 0.9 confidence
    # shrunk twice (confidence bin, then bin x class) towards 0 matches out of 1 with SHRINK = 20
    assert a.label_kind.tolist() == ["class_swap"] and a.errors.class_swap[0] == pytest.approx(0.9 * (20 / 21) ** 2)
    cm = a.tables["confusion"]
    assert cm.loc["cat", "dog"] == 1 and cm.loc["unmatched"].sum() == 0


def test_mismatched_tables_are_rejected():
    from iou_audit.audits.predictions.core import compute_prediction_audit

    gt = _table("gt", [[("a", [0, 0, 1, 1])]])
    pred = _table("pred", [[("a", [0, 0, 1, 1], 0.5)], []], with_conf=True)
    with pytest.raises(ValueError, match="same samples"):
        compute_prediction_audit(pred, gt)
    with pytest.raises(ValueError, match="iou_thresh"):
        compute_prediction_audit(_table("pred", [[("a", [0, 0, 1, 1], 0.5)]], True), gt, iou_thresh=0)
