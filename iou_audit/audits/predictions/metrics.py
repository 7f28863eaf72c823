"""Counts, precision/recall per class, the confusion matrix and COCO AP for a prediction audit.

- TP: a prediction matched to a label of its class; FP: any other prediction not matched to a crowd
  region (COCO ignores those); FN: a non-crowd label with no same-class match. Precision =
  TP / (TP + FP), recall = TP / (TP + FN), over all predictions (no confidence cut).
- Confusion matrix: geometry-first greedy matching at the threshold (whatever the classes); rows are
  the labels' classes plus ``unmatched`` (predictions with no label), columns the predictions' classes
  plus ``unmatched`` (labels with no prediction), as FiftyOne's ``classwise=False`` matrices.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.predictions.coco_eval import CocoEvaluation, coco_evaluate
from iou_audit.matching import batched_match

UNMATCHED = "unmatched"


def match_counts(match1, ignored1, pred_codes, gt_codes, gt_crowd, pred_sample, gt_sample, S: int, K: int) -> dict:
    """TP/FP/FN flags per row and counts per class and per sample.

    Example:
        >>> c = match_counts(np.array([0, -1]), np.zeros(2, bool), np.array([0, 0]), np.array([0, 1]),
        ...                  np.zeros(2, bool), np.array([0, 0]), np.array([0, 0]), 1, 2)
        >>> c["tp"].tolist(), c["fp"].tolist(), c["fn"].tolist(), c["sample_fn"].tolist()
        ([1, 0], [1, 0], [0, 1], [1])
    """
    m1 = np.asarray(match1)
    hit = (m1 >= 0) & ~ignored1
    tp_pred = hit & (pred_codes == (gt_codes[np.maximum(m1, 0)] if len(gt_codes) else np.full(len(m1), -1)))
    fp_pred = ~ignored1 & ~tp_pred
    gt_tp = np.zeros(len(gt_codes), bool)
    gt_tp[m1[tp_pred]] = True
    fn_gt = ~gt_crowd & ~gt_tp
    return {
        "tp_pred": tp_pred, "fp_pred": fp_pred, "fn_gt": fn_gt,
        "tp": np.bincount(pred_codes[tp_pred], minlength=K), "fp": np.bincount(pred_codes[fp_pred], minlength=K),
        "fn": np.bincount(gt_codes[fn_gt], minlength=K),
        "n_gt": np.bincount(gt_codes[~gt_crowd], minlength=K), "n_pred": np.bincount(pred_codes, minlength=K),
        "sample_tp": np.bincount(pred_sample[tp_pred], minlength=S),
        "sample_fp": np.bincount(pred_sample[fp_pred], minlength=S),
        "sample_fn": np.bincount(gt_sample[fn_gt], minlength=S),
    }


def _ratio(a, b):
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    return np.divide(a, b, out=np.full(a.shape, np.nan), where=b > 0)


def per_class_table(classes, counts: dict) -> pd.DataFrame:
    """One row per class: labels, predictions, TP, FP, FN, precision, recall."""
    return pd.DataFrame({
        "class": np.asarray(classes, dtype=object), "gt": counts["n_gt"], "pred": counts["n_pred"],
        "tp": counts["tp"], "fp": counts["fp"], "fn": counts["fn"],
        "precision": _ratio(counts["tp"], counts["tp"] + counts["fp"]),
        "recall": _ratio(counts["tp"], counts["tp"] + counts["fn"]),
    })


def overall_counts(counts: dict) -> dict:
    tp, fp, fn = (int(counts[k].sum()) for k in ("tp", "fp", "fn"))
    return {"tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}


def per_sample_table(sample_ids, counts: dict, quality: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": np.asarray(sample_ids, dtype=object), "tp": counts["sample_tp"],
                         "fp": counts["sample_fp"], "fn": counts["sample_fn"], "quality": quality})


def confusion_matrix(pairs, classes, iou_thresh: float) -> pd.DataFrame:
    """Rows: label class (+ ``unmatched``); columns: predicted class (+ ``unmatched``); counts.

    Example:
        >>> from iou_audit.audits.predictions.pairs import PredictionPairs
        >>> pairs = PredictionPairs(np.array([0.9, 0.0]), np.array([0, 2]), np.array([0, 2]), np.array([0, 1]),
        ...     np.array([1, 0]), np.array([0]), np.array([0.9, 0.8]), np.zeros(1, bool))
        >>> cm = confusion_matrix(pairs, np.array(["cat", "dog"]), 0.5)
        >>> cm.loc["cat", "dog"], cm.loc["unmatched", "cat"], cm.loc["cat", "unmatched"]
        (np.int64(1), np.int64(1), np.int64(0))
    """
    return confusion_cells(pairs, classes, iou_thresh)[0]


def confusion_cells(pairs, classes, iou_thresh: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The confusion matrix and, per label, the class on the other side of its cell.

    Returns ``(matrix, pred_other, gt_other)``: ``pred_other[i]`` is the class of the label that
    prediction ``i`` matched (``unmatched`` if none; None when it matched a crowd region, which no
    cell counts), ``gt_other[j]`` the class of the prediction that label ``j`` matched (``unmatched``
    if none; None for crowd labels). So cell (g, p) holds the labels of class g whose ``gt_other``
    is p and the predictions of class p whose ``pred_other`` is g.

    Example:
        >>> from iou_audit.audits.predictions.pairs import PredictionPairs
        >>> pairs = PredictionPairs(np.array([0.9, 0.0]), np.array([0, 2]), np.array([0, 2]), np.array([0, 1]),
        ...     np.array([1, 0]), np.array([0]), np.array([0.9, 0.8]), np.zeros(1, bool))
        >>> _, pred_other, gt_other = confusion_cells(pairs, np.array(["cat", "dog"]), 0.5)
        >>> pred_other.tolist(), gt_other.tolist()
        (['cat', 'unmatched'], ['dog'])
    """
    crowd, pred_codes, gt_codes = pairs.gt_crowd, pairs.pred_codes, pairs.gt_codes
    m1, _, m2, _, ig1 = batched_match(pairs.values, pairs.pair_offsets, pairs.pred_offsets, pairs.gt_offsets,
                                      pairs.scores, iou_thresh, "greedy", crowd2=crowd, mode="geometry_first",
                                      return_ignored=True)
    K = len(classes)
    cm = np.zeros((K + 1, K + 1), np.int64)
    hit = (m1 >= 0) & ~ig1
    np.add.at(cm, (gt_codes[m1[hit]], pred_codes[hit]), 1)
    lone_pred = (m1 < 0)
    np.add.at(cm, (np.full(int(lone_pred.sum()), K), pred_codes[lone_pred]), 1)
    lone_gt = (m2 < 0) & ~crowd
    np.add.at(cm, (gt_codes[lone_gt], np.full(int(lone_gt.sum()), K)), 1)
    names = [*map(str, classes), UNMATCHED]
    names_arr = np.asarray(names, dtype=object)
    pred_other = np.full(len(m1), None, dtype=object)
    pred_other[hit] = names_arr[gt_codes[m1[hit]]]
    pred_other[lone_pred] = UNMATCHED
    gt_other = np.full(len(m2), None, dtype=object)
    gt_hit = (m2 >= 0) & ~crowd
    gt_other[gt_hit] = names_arr[pred_codes[m2[gt_hit]]]
    gt_other[lone_gt] = UNMATCHED
    matrix = pd.DataFrame(cm, index=pd.Index(names, name="label"), columns=pd.Index(names, name="prediction"))
    return matrix, pred_other, gt_other


def label_areas(table, iou_type: str) -> np.ndarray:
    """Areas in pixels for COCO's area ranges: the ``area`` attribute where present, else the mask's
    pixel count (``segm``) or the box's, from the image size (NaN when the size is unknown)."""
    n = len(table.label_id)
    W = np.asarray(table.width, float)[table.sample_index]
    H = np.asarray(table.height, float)[table.sample_index]
    b = np.asarray(table.box, float).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * W * (b[:, 3] - b[:, 1]) * H
    if iou_type == "segm" and table.masks is not None:
        area = np.array([float(np.count_nonzero(m)) if m is not None else np.nan for m in table.masks])
    given = table.attributes.get("area") if table.attributes else None
    if given is not None:
        g = np.asarray(given, dtype=float) if len(given) == n else np.full(n, np.nan)
        area = np.where(np.isfinite(g), g, area)
    return area


def coco_metrics(values, pair_offsets, pred, gt, pred_codes, gt_codes, scores, classes, iou_type) -> CocoEvaluation:
    """pycocotools' 12 numbers on the audit's tables (see :mod:`.coco_eval`)."""
    s = np.nan_to_num(np.asarray(scores, float), nan=1.0)
    pa, ga = label_areas(pred, iou_type), label_areas(gt, iou_type)
    return coco_evaluate(values, pair_offsets, pred.offsets, gt.offsets, pred_codes, gt_codes, s,
                         np.asarray(gt.iscrowd, bool), pa, ga, classes)
