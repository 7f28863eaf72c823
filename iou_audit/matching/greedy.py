"""Greedy one-to-one matching exactly as pycocotools' ``COCOeval.evaluateImg`` does it.

The algorithm (pycocotools/cocoeval.py, mirrored line by line in :func:`_greedy_kernel`):

1. predictions are visited by descending score, ``np.argsort(-scores, kind="mergesort")`` (stable:
   equal scores keep their input order);
2. ground truths are scanned with the non-ignored ones first (stable sort on the ignore flag);
3. a prediction takes the ground truth with the highest IoU ``>= min(thresh, 1 - 1e-10)``; on equal
   IoUs the *later* ground truth in that scan order wins (pycocotools replaces its best match when
   ``iou >= best``);
4. a ground truth already taken is skipped unless it is a crowd, which may absorb many predictions;
5. once a prediction holds a non-ignored match, the scan stops at the first ignored ground truth;
6. a prediction matched to an ignored (e.g. crowd) ground truth is itself ignored: COCO counts it
   neither as a true nor as a false positive.

The kernel runs on the batched layout of ``docs/ARCHITECTURE.md`` (all images in one compiled pass);
:func:`greedy_match` is the one-image front end.
"""
from __future__ import annotations

import numba
import numpy as np

from iou_audit.matching.classes import label_codes

# pycocotools caps the threshold so that an IoU of exactly 1 still matches at threshold 1.0.
_MAX_THRESH = 1 - 1e-10


def coco_threshold(iou_thresh: float) -> float:
    """The threshold pycocotools actually compares against: ``min(iou_thresh, 1 - 1e-10)``."""
    t = float(iou_thresh)
    if not np.isfinite(t):
        raise ValueError(f"iou_thresh must be finite, got {iou_thresh!r}")
    return min(t, _MAX_THRESH)


@numba.njit(cache=True, nogil=True)
def _greedy_kernel(
    values, pair_offsets, offsets1, offsets2, order1, order2, thresh,
    crowd2, ignore2, codes1, codes2, use_codes, active1, match1, match2, ignored1,
):  # pragma: no cover - compiled; covered through greedy_match / batched_match
    # order2 sorts each sample's side-2 rows by (class code when use_codes, ignore flag), stably:
    # a prediction scans only its own class's run, non-ignored rows first, in input order.
    n_samples = len(offsets1) - 1
    for s in range(n_samples):
        a1 = offsets1[s]
        b1 = offsets1[s + 1]
        a2 = offsets2[s]
        b2 = offsets2[s + 1]
        n2 = b2 - a2
        if b1 == a1 or n2 == 0:
            continue
        base = pair_offsets[s]
        for k in range(a1, b1):
            i = order1[k]
            if not active1[i]:
                continue
            lo = a2
            hi = b2
            if use_codes:
                c = codes1[i]
                h = b2
                while lo < h:  # first row of class >= c
                    mid = (lo + h) >> 1
                    if codes2[order2[mid]] < c:
                        lo = mid + 1
                    else:
                        h = mid
                hi = lo
                h = b2
                while hi < h:  # first row of class > c
                    mid = (hi + h) >> 1
                    if codes2[order2[mid]] <= c:
                        hi = mid + 1
                    else:
                        h = mid
            best = thresh
            m = -1
            row = base + (i - a1) * n2 - a2
            for q in range(lo, hi):
                j = order2[q]
                # a ground truth already matched is taken, unless it is a crowd
                if match2[j] >= 0 and not crowd2[j]:
                    continue
                # holding a regular match, stop at the first ignored ground truth
                if m >= 0 and not ignore2[m] and ignore2[j]:
                    break
                v = values[row + j]
                # written as "not >=" so that a NaN IoU never matches
                if not (v >= best):
                    continue
                best = v
                m = j
            if m >= 0:
                match1[i] = m
                ignored1[i] = ignore2[m]
                # a crowd keeps its first (highest-scoring) prediction as its match
                if match2[m] < 0:
                    match2[m] = i


def sorted_order(
    keys: np.ndarray | None,
    offsets: np.ndarray,
    descending: bool,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices sorted within each sample by ``keys`` (stable), samples kept in order.

    Equals, per sample, ``np.argsort(-keys, kind="mergesort")`` when ``descending`` (what
    pycocotools does with scores) or ``np.argsort(keys, kind="mergesort")`` otherwise. With
    ``groups`` (integer codes), rows are sorted by group first, then by key.

    Example:
        >>> sorted_order(np.array([0.2, 0.9, 0.9, 0.5]), np.array([0, 3, 4]), descending=True)
        array([1, 2, 0, 3])
    """
    n = int(offsets[-1])
    sample = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    sort_keys = [] if keys is None else [-np.asarray(keys, np.float64) if descending
                                         else np.asarray(keys, np.float64)]
    if groups is not None:
        sort_keys.append(groups)
    if not sort_keys:
        return np.arange(n, dtype=np.int64)
    return np.lexsort((*sort_keys, sample)).astype(np.int64)


def run_greedy(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    offsets1: np.ndarray,
    offsets2: np.ndarray,
    scores1: np.ndarray | None,
    iou_thresh: float,
    crowd2: np.ndarray,
    ignore2: np.ndarray,
    codes1: np.ndarray,
    codes2: np.ndarray,
    use_codes: bool,
    active1: np.ndarray | None = None,
    order1: np.ndarray | None = None,
    order2: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy COCO matching over validated batched arrays -> (match1, match2, ignored1).

    Internal: inputs are assumed checked (see :func:`iou_audit.matching.batched.batched_match`).
    ``active1`` False rows take no part (pycocotools' maxDets cut). ``order1``/``order2`` are
    the visiting orders from :func:`greedy_orders`; pass them when matching the same tables at
    several thresholds.
    """
    n1 = int(offsets1[-1])
    n2 = int(offsets2[-1])
    if order1 is None or order2 is None:
        order1, order2 = greedy_orders(offsets1, offsets2, scores1, ignore2, codes2, use_codes)
    match1 = np.full(n1, -1, np.int64)
    match2 = np.full(n2, -1, np.int64)
    ignored1 = np.zeros(n1, np.bool_)
    if active1 is None:
        active1 = np.ones(n1, np.bool_)
    _greedy_kernel(
        values, pair_offsets, offsets1, offsets2, order1, order2, coco_threshold(iou_thresh),
        crowd2, ignore2, codes1, codes2, use_codes, active1, match1, match2, ignored1,
    )
    return match1, match2, ignored1


def greedy_orders(
    offsets1: np.ndarray,
    offsets2: np.ndarray,
    scores1: np.ndarray | None,
    ignore2: np.ndarray,
    codes2: np.ndarray,
    use_codes: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Visiting orders of the greedy kernel: side 1 by descending score, side 2 by (class, ignore).

    Both sorts are stable within each sample, as pycocotools' mergesorts are.
    """
    order1 = sorted_order(scores1, offsets1, descending=True)
    order2 = sorted_order(np.asarray(ignore2, np.float64), offsets2, descending=False,
                          groups=codes2 if use_codes else None)
    return order1, order2


def greedy_match(
    ious: np.ndarray,
    scores: np.ndarray | None,
    iou_thresh: float,
    crowd: np.ndarray | None = None,
    gt_ignore: np.ndarray | None = None,
    *,
    labels1: np.ndarray | None = None,
    labels2: np.ndarray | None = None,
    mode: str = "classwise",
    return_ignored: bool = False,
):
    """Greedy COCO matching of one image's predictions (rows) to ground truths (columns).

    Args:
        ious: (N, M) IoUs, predictions x ground truths. For crowd columns pass the crowd IoU
            (intersection over the prediction's area, ``box_iou(..., crowd=crowd)``).
        scores: (N,) confidences; ``None`` visits predictions in row order. NaN sorts last.
        iou_thresh: a pair matches when IoU >= ``min(iou_thresh, 1 - 1e-10)``.
        crowd: (M,) bool, crowd ground truths (may absorb several predictions).
        gt_ignore: (M,) bool, ground truths that do not count (predictions matched to them are
            ignored; they are scanned last). Defaults to ``crowd``, as in COCO.
        labels1, labels2: optional (N,) and (M,) classes (str or int).
        mode: ``"classwise"`` (only same-class pairs match) or ``"geometry_first"`` (classes are
            not looked at; compare them afterwards with ``label_agreement``).
        return_ignored: also return ``pred_ignored`` (N,) bool, predictions matched to an ignored
            ground truth, which COCO drops from both TP and FP.

    Returns:
        ``(pred_to_gt, gt_to_pred)`` int64 arrays, ``-1`` = unmatched, indices in the input order;
        plus ``pred_ignored`` when asked. Every prediction absorbed by a crowd points to it; the
        crowd's ``gt_to_pred`` is its highest-scoring prediction.

    Example:
        >>> ious = np.array([[0.9, 0.6],
        ...                  [0.8, 0.0],
        ...                  [0.0, 0.55]])
        >>> greedy_match(ious, np.array([0.7, 0.9, 0.5]), 0.5)
        (array([ 1,  0, -1]), array([1, 0]))

        The 0.9-score prediction (row 1) takes ground truth 0 first, so row 0 (0.7), although it
        overlaps ground truth 0 best, falls back to ground truth 1, and row 2 (0.5) finds nothing
        left. A crowd
        absorbs all predictions that reach it and they are ignored:

        >>> greedy_match(np.array([[0.7], [0.9]]), np.array([0.9, 0.8]), 0.5,
        ...              crowd=np.array([True]), return_ignored=True)
        (array([0, 0]), array([0]), array([ True,  True]))
    """
    m_ious = np.asarray(ious, dtype=np.float64)
    if m_ious.ndim != 2:
        raise ValueError(f"ious must be 2-D (predictions x ground truths), got shape {m_ious.shape}")
    n, m = m_ious.shape
    s = None
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != n:
            raise ValueError(f"scores has {len(s)} entries for {n} predictions (rows of ious)")
    c = _flag(crowd, m, "crowd")
    ig = c.copy() if gt_ignore is None else _flag(gt_ignore, m, "gt_ignore")
    codes1, codes2, use = label_codes(labels1, labels2, n, m, mode)
    match1, match2, ignored1 = run_greedy(
        np.ascontiguousarray(m_ious).reshape(-1), np.array([0, n * m], np.int64),
        np.array([0, n], np.int64), np.array([0, m], np.int64), s, iou_thresh,
        c, ig, codes1, codes2, use,
    )
    if return_ignored:
        return match1, match2, ignored1
    return match1, match2


def _flag(x: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if x is None:
        return np.zeros(n, np.bool_)
    f = np.asarray(x).reshape(-1)
    if len(f) != n:
        raise ValueError(f"{name} has {len(f)} entries for {n} rows")
    return f.astype(np.bool_)
