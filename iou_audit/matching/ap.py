"""COCO average precision (101-point interpolation), mirroring ``COCOeval.accumulate``.

For one category at one IoU threshold, pycocotools:

1. concatenates the evaluated detections of all images (image by image, each image's detections
   already sorted by descending score) and sorts them again with
   ``np.argsort(-scores, kind="mergesort")`` (stable: ties keep that concatenation order);
2. drops ignored detections (matched to crowd/ignored ground truth), takes cumulative TP and FP,
   ``recall = tp / n_gt`` and ``precision = tp / (tp + fp + eps)``;
3. makes precision monotonically non-increasing from the right (the envelope);
4. samples it at the recall thresholds ``np.linspace(0, 1, 101)`` with
   ``np.searchsorted(recall, thresholds, side="left")``, 0 where the recall is never reached;
5. AP is the mean of those 101 values; categories without non-ignored ground truth get -1 and are
   left out of the mean over categories.
"""
from __future__ import annotations

import numba
import numpy as np

#: pycocotools' ``recThrs``: 0.00, 0.01, ..., 1.00.
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: pycocotools' ``iouThrs``: 0.50, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def precision_at_recall(
    tp: np.ndarray,
    scores: np.ndarray,
    num_gt: int,
    ignored: np.ndarray | None = None,
    recall_thresholds: np.ndarray = COCO_RECALL_THRESHOLDS,
) -> tuple[np.ndarray, float]:
    """Interpolated precision at each recall threshold, and the final recall, for one category.

    Args:
        tp: (D,) bool, detection matched to a non-ignored ground truth.
        scores: (D,) confidences. Detections must come in pycocotools' concatenation order
            (images in evaluation order, each image's detections by descending score) for ties
            across images to resolve as pycocotools resolves them.
        num_gt: number of non-ignored ground truths of the category (> 0).
        ignored: (D,) bool, detections COCO neither counts as TP nor FP.
        recall_thresholds: where to sample precision (COCO: 101 points).

    Returns:
        ``(precision, recall)``: (R,) float64 and the recall reached with all detections.

    Example: 3 ground truths; detections by score are TP, FP, TP:
        >>> p, r = precision_at_recall(np.array([True, False, True]), np.array([.9, .8, .7]), 3)
        >>> r, p[[0, 33, 34, 66, 67, 100]].round(4).tolist()
        (0.6666666666666666, [1.0, 1.0, 0.6667, 0.6667, 0.0, 0.0])
    """
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(tp):
        raise ValueError(f"scores has {len(s)} entries for {len(tp)} tp flags")
    if num_gt <= 0:
        raise ValueError(f"num_gt must be > 0 (categories without ground truth have no AP), got {num_gt}")
    ig = np.zeros(len(tp), bool) if ignored is None else np.asarray(ignored, bool).reshape(-1)
    if len(ig) != len(tp):
        raise ValueError(f"ignored has {len(ig)} entries for {len(tp)} tp flags")
    order = np.argsort(-s, kind="mergesort")
    tp, ig = tp[order], ig[order]
    tps = tp & ~ig
    fps = ~tp & ~ig
    tp_sum = np.cumsum(tps).astype(float)
    fp_sum = np.cumsum(fps).astype(float)
    rc = tp_sum / num_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    recall = float(rc[-1]) if len(rc) else 0.0
    # precision envelope: max precision at any recall >= this one
    pr = np.maximum.accumulate(pr[::-1])[::-1]
    idx = np.searchsorted(rc, recall_thresholds, side="left")
    q = np.zeros(len(recall_thresholds))
    reached = idx < len(pr)
    q[reached] = pr[idx[reached]]
    return q, recall


def average_precision(
    tp: np.ndarray,
    scores: np.ndarray,
    num_gt: int,
    ignored: np.ndarray | None = None,
) -> float:
    """COCO 101-point interpolated AP of one category at one IoU threshold.

    Example (see :func:`precision_at_recall`): precision 1.0 at the 34 recall thresholds up to
    1/3, 2/3 at the 33 up to 2/3, 0 above: (34 + 33 * 2/3) / 101 = 56/101:
        >>> round(average_precision(np.array([True, False, True]), np.array([.9, .8, .7]), 3), 6)
        0.554455
    """
    return float(precision_at_recall(tp, scores, num_gt, ignored)[0].mean())


@numba.njit(cache=True, nogil=True)
def _category_precision_kernel(tp, ignored, rows, bounds, num_gt, thresholds, precision, recall):
    # precision_at_recall's arithmetic, category by category, on rows already in score order:
    # float cumulative counts, the same divisions, the envelope, searchsorted(side="left").
    eps = np.spacing(1.0)
    longest = 0
    for k in range(len(bounds) - 1):
        longest = max(longest, bounds[k + 1] - bounds[k])
    rc = np.empty(longest)
    pr = np.empty(longest)
    for k in range(len(bounds) - 1):
        if num_gt[k] <= 0:
            continue
        a = bounds[k]
        n = bounds[k + 1] - a
        tps = 0.0
        fps = 0.0
        for i in range(n):
            r = rows[a + i]
            if not ignored[r]:
                if tp[r]:
                    tps += 1.0
                else:
                    fps += 1.0
            rc[i] = tps / num_gt[k]
            pr[i] = tps / (fps + tps + eps)
        recall[k] = rc[n - 1] if n > 0 else 0.0
        for i in range(n - 2, -1, -1):
            if pr[i + 1] > pr[i]:
                pr[i] = pr[i + 1]
        i = 0
        for j in range(len(thresholds)):
            while i < n and rc[i] < thresholds[j]:
                i += 1
            precision[j, k] = pr[i] if i < n else 0.0


def category_precision(
    tp: np.ndarray,
    ignored: np.ndarray,
    rows: np.ndarray,
    bounds: np.ndarray,
    num_gt: np.ndarray,
    recall_thresholds: np.ndarray = COCO_RECALL_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`precision_at_recall` of many categories in one compiled pass -> (R, K), (K,).

    Args:
        tp, ignored: (D,) bool per detection, as in :func:`precision_at_recall`.
        rows: detection indices, category after category; within a category in descending
            score order, ties in pycocotools' concatenation order (what precision_at_recall's
            stable sort would give).
        bounds: (K+1,) category k's rows are ``rows[bounds[k]:bounds[k + 1]]``.
        num_gt: (K,) non-ignored ground truths; categories with 0 get -1 (no AP).

    Bit-identical to calling :func:`precision_at_recall` category by category.

    Example: category 0 as in :func:`precision_at_recall`, category 1 without ground truth:
        >>> p, r = category_precision(np.array([True, False, True, False]), np.zeros(4, bool),
        ...                           np.array([0, 1, 2, 3]), np.array([0, 3, 4]), np.array([3, 0]))
        >>> p[[0, 34, 67], 0].round(4).tolist(), p[0, 1], r.round(4).tolist()
        ([1.0, 0.6667, 0.0], np.float64(-1.0), [0.6667, -1.0])
    """
    bounds = np.asarray(bounds, np.int64)
    num_gt = np.asarray(num_gt, np.int64)
    if len(num_gt) != len(bounds) - 1:
        raise ValueError(f"num_gt has {len(num_gt)} entries for {len(bounds) - 1} categories")
    thresholds = np.asarray(recall_thresholds, np.float64)
    precision = -np.ones((len(thresholds), len(num_gt)))
    recall = -np.ones(len(num_gt))
    _category_precision_kernel(np.asarray(tp, np.bool_), np.asarray(ignored, np.bool_),
                               np.asarray(rows, np.int64), bounds, num_gt, thresholds, precision, recall)
    return precision, recall
