"""A COCO-style detection evaluation on the batched layout: matches, per-image TP/FP/FN, AP.

What it reproduces (pycocotools ``COCOeval`` with ``areaRng="all"``): per image and category, the
detections sorted by score and cut to ``max_dets``; greedy matching (crowd-aware) at every IoU
threshold; AP averaged over the thresholds and over the categories that have non-ignored ground
truth. The IoUs are the caller's (any geometry: boxes, masks, polygons), with crowd IoU already in
the crowd columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, precision_at_recall
from iou_audit.matching.batched import check_layout
from iou_audit.matching.greedy import _flag, greedy_orders, run_greedy, sorted_order


@dataclass
class CocoEvalResult:
    """Output of :func:`coco_evaluate`. T thresholds, K categories, S images, D detections, G gts.

    Attributes:
        iou_thresholds: (T,).
        categories: (K,) category labels, in the order of the K axes.
        evaluated: (D,) bool, detection within the top ``max_dets`` of its image and category (and
            of an evaluated category); the others take no part, as in pycocotools.
        match: (T, D) int64 global ground-truth row matched to each detection, -1 unmatched.
        ignored: (T, D) bool, detection matched to an ignored (crowd) ground truth.
        gt_match: (T, G) int64 detection row matched to each ground truth, -1 unmatched.
        tp, fp, fn: (T, S) int64 per-image counts (ignored detections and ground truths excluded).
        precision: (T, R, K) interpolated precision, -1 for categories without ground truth.
        recall: (T, K) final recall, -1 likewise.
    """

    iou_thresholds: np.ndarray
    categories: np.ndarray
    evaluated: np.ndarray
    match: np.ndarray
    ignored: np.ndarray
    gt_match: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    def ap_at(self, iou_threshold: float | None = None) -> float:
        """Mean AP over categories (and thresholds when ``None``), as ``COCOeval.summarize``."""
        p = self.precision
        if iou_threshold is not None:
            t = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold))
            if len(t) == 0:
                raise ValueError(f"IoU threshold {iou_threshold} was not evaluated")
            p = p[t]
        valid = p[p > -1]
        return float(np.mean(valid)) if len(valid) else -1.0

    @property
    def AP(self) -> float:  # noqa: N802 - COCO's names
        return self.ap_at(None)

    @property
    def AP50(self) -> float:  # noqa: N802
        return self.ap_at(0.5)

    @property
    def AP75(self) -> float:  # noqa: N802
        return self.ap_at(0.75)


def coco_evaluate(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    dt_offsets: np.ndarray,
    gt_offsets: np.ndarray,
    dt_scores: np.ndarray,
    dt_labels: np.ndarray,
    gt_labels: np.ndarray,
    gt_crowd: np.ndarray | None = None,
    gt_ignore: np.ndarray | None = None,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: int = 100,
    categories: np.ndarray | None = None,
) -> CocoEvalResult:
    """COCO evaluation of detections (side 1) against ground truth (side 2) over many images.

    Args:
        values, pair_offsets, dt_offsets, gt_offsets: detection x ground-truth IoUs in the batched
            layout, all classes (pairs of different classes are skipped here).
        dt_scores: (D,) confidences.
        dt_labels, gt_labels: (D,), (G,) classes (str or int).
        gt_crowd: (G,) bool crowd ground truth (IoU columns must hold crowd IoU).
        gt_ignore: (G,) bool ground truth that does not count; default ``gt_crowd`` as in COCO.
        iou_thresholds: default 0.50:0.05:0.95.
        max_dets: detections kept per image and category, highest scores first.
        categories: evaluated categories (default: every label on either side). pycocotools
            evaluates the categories of the ground-truth file; pass them to count the same FPs.

    For ties in score across images to resolve exactly as in pycocotools, order images as its
    ``imgIds`` (ascending ids) and keep each image's detections and ground truths in file order.

    Example: one image, one ground truth, two detections (0.9 overlaps it at IoU 0.8):
        >>> r = coco_evaluate(np.array([0.8, 0.3]), np.array([0, 2]), np.array([0, 2]),
        ...                   np.array([0, 1]), np.array([0.9, 0.6]), np.array(["cat", "cat"]),
        ...                   np.array(["cat"]))
        >>> r.tp[:, 0].tolist() == [1] * 7 + [0] * 3, r.fp[0].tolist(), r.fn[-1].tolist()
        (True, [1], [1])
        >>> round(r.AP50, 6), round(r.AP, 6)
        (1.0, 0.7)
    """
    v, po, o1, o2 = check_layout(values, pair_offsets, dt_offsets, gt_offsets)
    n1, n2 = int(o1[-1]), int(o2[-1])
    scores = np.asarray(dt_scores, dtype=np.float64).reshape(-1)
    if len(scores) != n1:
        raise ValueError(f"dt_scores has {len(scores)} entries for {n1} detections")
    l1 = np.asarray(dt_labels).reshape(-1)
    l2 = np.asarray(gt_labels).reshape(-1)
    if len(l1) != n1 or len(l2) != n2:
        raise ValueError(f"dt_labels/gt_labels have {len(l1)}/{len(l2)} entries for {n1}/{n2} rows")
    cats = np.unique(np.concatenate([l1, l2])) if categories is None else np.asarray(categories)
    universe = np.unique(np.concatenate([l1, l2, cats]))
    c1, c2, ck = (np.searchsorted(universe, x).astype(np.int64) for x in (l1, l2, cats))
    crowd = _flag(gt_crowd, n2, "gt_crowd")
    ignore = crowd.copy() if gt_ignore is None else _flag(gt_ignore, n2, "gt_ignore")
    in_cat1, in_cat2 = np.isin(c1, ck), np.isin(c2, ck)
    s_count = len(o1) - 1
    sample1 = np.repeat(np.arange(s_count), np.diff(o1))
    sample2 = np.repeat(np.arange(s_count), np.diff(o2))

    # pycocotools' maxDets cut: the top max_dets by score of each (image, category)
    by_group = np.lexsort((-scores, c1, sample1))
    g_key = np.stack([sample1[by_group], c1[by_group]], axis=1)
    new_group = np.ones(n1, bool)
    new_group[1:] = (g_key[1:] != g_key[:-1]).any(axis=1)
    start = np.maximum.accumulate(np.where(new_group, np.arange(n1), 0))
    rank = np.empty(n1, np.int64)
    rank[by_group] = np.arange(n1) - start
    evaluated = (rank < max_dets) & in_cat1

    thr = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    T, K, R = len(thr), len(ck), len(COCO_RECALL_THRESHOLDS)
    match = np.full((T, n1), -1, np.int64)
    gt_match = np.full((T, n2), -1, np.int64)
    ignored = np.zeros((T, n1), bool)
    tp = np.zeros((T, s_count), np.int64)
    fp = np.zeros((T, s_count), np.int64)
    fn = np.zeros((T, s_count), np.int64)
    precision = -np.ones((T, R, K))
    recall = -np.ones((T, K))
    counted_gt = in_cat2 & ~ignore
    num_gt = np.bincount(c2[counted_gt], minlength=len(universe))[ck]
    # pycocotools concatenates images in order, each sorted by descending score; this order and
    # the rows of each category in it are the same at every threshold
    score_order = sorted_order(scores, o1, descending=True)
    ordered = score_order[evaluated[score_order]]
    rows_of = [ordered[c1[ordered] == ck[k]] if num_gt[k] else None for k in range(K)]
    # accumulate's stable sort by score across images, done once: precision_at_recall's own
    # stable sort then runs on sorted input (timsort, linear)
    rows_of = [r if r is None else r[np.argsort(-scores[r], kind="stable")] for r in rows_of]
    order1, order2 = greedy_orders(o1, o2, scores, ignore, c2, True)
    for t in range(T):
        m1, m2, ig1 = run_greedy(
            v, po, o1, o2, scores, thr[t], crowd, ignore, c1, c2, True, active1=evaluated,
            order1=order1, order2=order2,
        )
        m2[~in_cat2] = -1
        match[t], gt_match[t], ignored[t] = m1, m2, ig1
        is_tp = evaluated & (m1 >= 0) & ~ig1
        is_fp = evaluated & (m1 < 0)
        tp[t] = np.bincount(sample1[is_tp], minlength=s_count)
        fp[t] = np.bincount(sample1[is_fp], minlength=s_count)
        fn[t] = np.bincount(sample2[counted_gt & (m2 < 0)], minlength=s_count)
        for k in range(K):
            rows = rows_of[k]
            if rows is None:
                continue
            q, rc = precision_at_recall(
                m1[rows] >= 0, scores[rows], int(num_gt[k]), ignored=ig1[rows]
            )
            precision[t, :, k] = q
            recall[t, k] = rc
    return CocoEvalResult(thr, cats, evaluated, match, ignored, gt_match, tp, fp, fn, precision, recall)
