"""COCO detection metrics (pycocotools ``COCOeval.evaluate`` + ``accumulate`` + ``summarize``) on flat arrays.

``iou_audit.matching.coco_evaluate`` covers ``areaRng="all"`` at one ``maxDets``; ``summarize``'s 12
numbers also need the small/medium/large area ranges (which ignore ground truth *and* unmatched
predictions outside the range) and maxDets 1/10/100. This module adds exactly that on top of the
matching package's kernel (``run_greedy``) and AP (``precision_at_recall``).

Same definitions as pycocotools, computed for all images and classes at once:

- per (image, class), predictions are sorted by score (stable) and cut at ``maxDets``;
- matching is :func:`iou_audit.matching.greedy.run_greedy` (pycocotools' ``evaluateImg`` rules: crowd
  ground truth absorbs predictions, ignored ground truth is scanned last) at each IoU threshold
  0.50:0.05:0.95 and for each area range; ground truth outside the range (or crowd) is ignored, as is
  an unmatched prediction outside the range;
- per class, detections of all images are sorted by score, TP/FP are cumulated, precision is made
  monotone from the right and sampled at 101 recall points (``searchsorted(..., "left")``);
- ``stats`` are the 12 numbers ``COCOeval.summarize`` prints (AP, AP50, AP75, AP s/m/l, AR1, AR10,
  AR100, AR s/m/l), means over the classes that have ground truth, -1 when there is none.

Areas: ground truth uses its ``area`` (COCO's annotation field), predictions their box or mask area in
pixels, as ``COCO.loadRes`` computes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, precision_at_recall
from iou_audit.matching.greedy import run_greedy

IOU_THRESHOLDS = COCO_IOU_THRESHOLDS
RECALL_THRESHOLDS = COCO_RECALL_THRESHOLDS
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
STAT_NAMES = (
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
)


@dataclass
class CocoEvaluation:
    """pycocotools' ``eval`` arrays: precision (T, R, K, A, M), recall (T, K, A, M), and the 12 stats."""

    precision: np.ndarray
    recall: np.ndarray
    stats: np.ndarray
    classes: np.ndarray
    areas_known: bool = True

    def stats_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(STAT_NAMES, self.stats)}

    def per_class_ap(self) -> dict[str, np.ndarray]:
        """AP@[.5:.95], AP50, AP75 per class (area all, 100 detections); -1 where a class has no GT."""
        p = self.precision[:, :, :, 0, -1]

        def mean_valid(x, axis):
            ok = x > -1
            s = np.where(ok, x, 0).sum(axis=axis)
            n = ok.sum(axis=axis)
            return np.where(n > 0, s / np.maximum(n, 1), -1.0)

        return {
            "AP": mean_valid(p.transpose(2, 0, 1).reshape(p.shape[2], -1), 1),
            "AP50": mean_valid(p[0].T, 1),
            "AP75": mean_valid(p[5].T, 1),
        }


def rank_within_groups(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """0-based rank of each row by descending score (stable) within its group.

    Example:
        >>> rank_within_groups(np.array([0.2, 0.9, 0.5, 0.9]), np.array([0, 0, 1, 0]))
        array([2, 0, 0, 1])
    """
    order = np.lexsort((-np.asarray(scores, float), groups))
    g = np.asarray(groups)[order]
    start = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    idx = np.arange(len(g))
    first = np.maximum.accumulate(np.where(start, idx, 0)) if len(g) else idx
    ranks = np.empty(len(g), np.int64)
    ranks[order] = idx - first
    return ranks


def coco_evaluate(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    pred_offsets: np.ndarray,
    gt_offsets: np.ndarray,
    pred_codes: np.ndarray,
    gt_codes: np.ndarray,
    scores: np.ndarray,
    gt_crowd: np.ndarray,
    pred_area: np.ndarray,
    gt_area: np.ndarray,
    classes: np.ndarray,
) -> CocoEvaluation:
    """COCO bbox/segm evaluation of predictions (rows of ``values``) against ground truth (columns).

    Args:
        values, pair_offsets: per-sample prediction x ground-truth IoU blocks (crowd IoU for crowd GT).
        pred_offsets, gt_offsets: (S+1,) offsets of both tables.
        pred_codes, gt_codes: class codes (indices into ``classes``).
        scores: (P,) prediction confidences.
        gt_crowd: (G,) bool ``iscrowd``.
        pred_area, gt_area: areas in pixels (see module docstring).
        classes: (K,) class names.

    Example:
        One image, one ground truth, two predictions; the better-scored one overlaps 0.8, so it is a TP at 7 of the 10 thresholds:

        >>> ev = coco_evaluate(np.array([0.8, 0.0]), np.array([0, 2]), np.array([0, 2]), np.array([0, 1]),
        ...                    np.array([0, 0]), np.array([0]), np.array([0.9, 0.3]), np.array([False]),
        ...                    np.array([50.0, 50.0]), np.array([50.0]), np.array(["cat"]))
        >>> ev.stats[:3].round(3)
        array([0.7, 1. , 1. ])
    """
    scores = np.asarray(scores, dtype=np.float64)
    pred_codes = np.asarray(pred_codes, np.int64)
    gt_codes = np.asarray(gt_codes, np.int64)
    crowd = np.asarray(gt_crowd, dtype=bool)
    n_samples = len(pred_offsets) - 1
    K = len(classes)
    p_sample = np.repeat(np.arange(n_samples), np.diff(pred_offsets))
    rank = rank_within_groups(scores, p_sample * max(K, 1) + pred_codes)
    active = rank < MAX_DETS[-1]
    # pycocotools' accumulate order: per class, by score; ties by image order, then in-image rank.
    order = np.lexsort((rank, p_sample, -scores, pred_codes))
    order = order[active[order]]
    T, R, A, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for a, (lo, hi) in enumerate(AREA_RANGES.values()):
        gt_ignore = crowd | (gt_area < lo) | (gt_area > hi)
        pred_out = (pred_area < lo) | (pred_area > hi)
        npig = np.bincount(gt_codes[~gt_ignore], minlength=K)
        for t, thr in enumerate(IOU_THRESHOLDS):
            match1, _, ignored1 = run_greedy(
                values, pair_offsets, pred_offsets, gt_offsets, scores, thr, crowd, gt_ignore,
                pred_codes, gt_codes, True, active1=active,
            )
            matched = match1 >= 0
            dt_ignore = np.where(matched, ignored1, pred_out)
            for m, max_det in enumerate(MAX_DETS):
                rows = order[rank[order] < max_det]
                rows = rows[~dt_ignore[rows]]
                p, r = _accumulate(matched[rows], pred_codes[rows], scores[rows], npig, K)
                precision[t, :, :, a, m] = p
                recall[t, :, a, m] = r
    return CocoEvaluation(precision, recall, _summarize(precision, recall), np.asarray(classes, object))


def _accumulate(tp: np.ndarray, codes: np.ndarray, scores: np.ndarray, npig: np.ndarray, K: int):
    """Precision at the recall thresholds (R, K) and final recall (K,), by matching.ap, class by class.

    ``tp``/``codes``/``scores`` are the counted detections in pycocotools' concatenation order.
    """
    precision = -np.ones((len(RECALL_THRESHOLDS), K))
    recall = -np.ones(K)
    by_class = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_class], np.arange(K + 1))
    for k in np.flatnonzero(npig > 0):
        rows = by_class[bounds[k] : bounds[k + 1]]
        precision[:, k], recall[k] = precision_at_recall(tp[rows], scores[rows], int(npig[k]))
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    def mean_valid(x):
        x = x[x > -1]
        return float(np.mean(x)) if len(x) else -1.0

    t50, t75 = 0, 5
    ap = lambda a, m=2, t=None: mean_valid(precision[:, :, :, a, m] if t is None else precision[t, :, :, a, m])  # noqa: E731
    ar = lambda a, m: mean_valid(recall[:, :, a, m])  # noqa: E731
    return np.array([
        ap(0), ap(0, t=t50), ap(0, t=t75), ap(1), ap(2), ap(3),
        ar(0, 0), ar(0, 1), ar(0, 2), ar(1, 2), ar(2, 2), ar(3, 2),
    ])
