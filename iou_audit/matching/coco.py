"""COCO detection evaluation on the batched layout: pycocotools' ``evaluate + accumulate + summarize``.

What it reproduces (pycocotools ``COCOeval``), for all images and categories at once:

- per (image, category), detections sorted by score (stable) and cut to ``max_dets[-1]``;
- greedy matching (crowd-aware, :func:`iou_audit.matching.greedy.run_greedy`) at every IoU threshold
  and area range; ground truth that is ignored (crowd by default) or outside the range is ignored,
  and so is an unmatched detection outside the range;
- per category, the detections of all images by score, cut to each ``max_dets``, accumulated into
  101-point interpolated precision (:func:`iou_audit.matching.ap.precision_at_recall`);
- ``stats``: the 12 numbers ``COCOeval.summarize`` prints, means over categories with ground truth.

The IoUs are the caller's (any geometry: boxes, masks, polygons), with crowd IoU already in the
crowd columns. Areas (for the small/medium/large ranges) are the caller's too: COCO uses the
ground truth's ``area`` field and the detection's box or mask area in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, category_precision
from iou_audit.matching.batched import check_layout
from iou_audit.matching.greedy import _flag, run_greedy, sorted_order

#: pycocotools' ``areaRng`` / ``areaRngLbl`` (used when areas are given).
COCO_AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                    "large": (96.0**2, 1e10)}
#: pycocotools' ``maxDets``.
COCO_MAX_DETS = (1, 10, 100)
#: the 12 numbers of ``COCOeval.summarize``, in its order.
STAT_NAMES = (
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
)


def _mean_valid(x: np.ndarray) -> float:
    valid = x[x > -1]
    return float(np.mean(valid)) if len(valid) else -1.0


@dataclass
class CocoEvalResult:
    """Output of :func:`coco_evaluate`. T thresholds, K categories, A area ranges, M maxDets,
    S images, D detections, G ground truths. Matches and counts are those of the first area range
    (``"all"``) at ``max_dets[-1]``, as pycocotools' ``evalImgs`` for that range.

    Attributes:
        iou_thresholds: (T,).
        categories: (K,) category labels, in the order of the K axes.
        area_ranges: names -> (lo, hi), in the order of the A axes.
        max_dets: (M,) detections per image and category kept, in the order of the M axes.
        evaluated: (D,) bool, detection within the top ``max_dets[-1]`` of its image and category
            (and of an evaluated category); the others take no part, as in pycocotools.
        match: (T, D) int64 global ground-truth row matched to each detection, -1 unmatched.
        ignored: (T, D) bool, detection COCO counts neither as TP nor FP (matched to an ignored
            ground truth, or unmatched and outside the area range).
        gt_match: (T, G) int64 detection row matched to each ground truth, -1 unmatched.
        tp, fp, fn: (T, S) int64 per-image counts (ignored detections and ground truths excluded).
        eval_precision: (T, R, K, A, M) pycocotools' ``eval["precision"]``, -1 for categories
            without ground truth in the range.
        eval_recall: (T, K, A, M) pycocotools' ``eval["recall"]``.
        areas_known: areas were given and all finite (the small/medium/large split is meaningful).
    """

    iou_thresholds: np.ndarray
    categories: np.ndarray
    area_ranges: dict
    max_dets: tuple
    evaluated: np.ndarray
    match: np.ndarray
    ignored: np.ndarray
    gt_match: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    eval_precision: np.ndarray
    eval_recall: np.ndarray
    areas_known: bool = False

    @property
    def precision(self) -> np.ndarray:
        """(T, R, K) precision of the first area range at ``max_dets[-1]``."""
        return self.eval_precision[:, :, :, 0, -1]

    @property
    def recall(self) -> np.ndarray:
        """(T, K) final recall of the first area range at ``max_dets[-1]``."""
        return self.eval_recall[:, :, 0, -1]

    def ap_at(self, iou_threshold: float | None = None) -> float:
        """Mean AP over categories (and thresholds when ``None``), as ``COCOeval.summarize``."""
        return _mean_valid(self.precision[self._threshold_index(iou_threshold)])

    def _threshold_index(self, iou_threshold: float | None):
        if iou_threshold is None:
            return slice(None)
        t = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold))
        if len(t) == 0:
            raise ValueError(f"IoU threshold {iou_threshold} was not evaluated")
        return t

    @property
    def AP(self) -> float:  # noqa: N802 - COCO's names
        return self.ap_at(None)

    @property
    def AP50(self) -> float:  # noqa: N802
        return self.ap_at(0.5)

    @property
    def AP75(self) -> float:  # noqa: N802
        return self.ap_at(0.75)

    @property
    def stats(self) -> np.ndarray:
        """``COCOeval.summarize``'s 12 numbers (:data:`STAT_NAMES`); needs COCO's four area ranges
        and three maxDets (pass ``dt_area``/``gt_area`` and ``max_dets=(1, 10, 100)``). As in
        pycocotools, ``AP`` is -1 when no maxDets is 100."""
        names = list(self.area_ranges)
        if names != list(COCO_AREA_RANGES) or len(self.max_dets) != 3:
            raise ValueError(f"stats need area ranges {list(COCO_AREA_RANGES)} and 3 max_dets, "
                             f"got {names} and {self.max_dets}")
        p, r = self.eval_precision, self.eval_recall
        t50, t75 = self._threshold_index(0.5), self._threshold_index(0.75)
        # summarize's first number looks maxDets up by value (100), the others by position
        at100 = [m for m, d in enumerate(self.max_dets) if d == 100]
        return np.array([
            _mean_valid(p[..., 0, at100]), _mean_valid(p[t50][..., 0, 2]), _mean_valid(p[t75][..., 0, 2]),
            _mean_valid(p[..., 1, 2]), _mean_valid(p[..., 2, 2]), _mean_valid(p[..., 3, 2]),
            _mean_valid(r[..., 0, 0]), _mean_valid(r[..., 0, 1]), _mean_valid(r[..., 0, 2]),
            _mean_valid(r[..., 1, 2]), _mean_valid(r[..., 2, 2]), _mean_valid(r[..., 3, 2]),
        ])

    def stats_dict(self) -> dict[str, float]:
        """:attr:`stats` by name."""
        return {name: float(v) for name, v in zip(STAT_NAMES, self.stats)}

    def per_category_ap(self) -> dict[str, np.ndarray]:
        """(K,) AP@[.5:.95], AP50, AP75 per category (first area range, ``max_dets[-1]``); -1
        where a category has no ground truth."""
        p = self.precision
        out = {}
        for name, t in (("AP", None), ("AP50", 0.5), ("AP75", 0.75)):
            q = p[self._threshold_index(t)].transpose(2, 0, 1)
            q = q.reshape(len(q), q[0].size if len(q) else 0)  # no category (no label at all): (0, 0)
            ok = q > -1
            n = ok.sum(axis=1)
            out[name] = np.where(n > 0, np.where(ok, q, 0).sum(axis=1) / np.maximum(n, 1), -1.0)
        return out


def _areas(dt_area, gt_area, n1: int, n2: int, area_ranges):
    """(dt areas, gt areas, ranges); no areas: one unbounded range ``all`` and no area test."""
    if (dt_area is None) != (gt_area is None):
        raise ValueError("pass both dt_area and gt_area, or neither")
    if dt_area is None:
        if area_ranges is not None:
            raise ValueError("area_ranges need dt_area and gt_area")
        return np.zeros(n1), np.zeros(n2), {"all": (-np.inf, np.inf)}
    a1 = np.asarray(dt_area, np.float64).reshape(-1)
    a2 = np.asarray(gt_area, np.float64).reshape(-1)
    if len(a1) != n1 or len(a2) != n2:
        raise ValueError(f"dt_area/gt_area have {len(a1)}/{len(a2)} entries for {n1}/{n2} rows")
    return a1, a2, dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)


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
    max_dets: int | tuple = 100,
    categories: np.ndarray | None = None,
    dt_area: np.ndarray | None = None,
    gt_area: np.ndarray | None = None,
    area_ranges: dict | None = None,
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
        max_dets: detections kept per image and category, highest scores first; one number or
            increasing numbers (``(1, 10, 100)`` for :attr:`CocoEvalResult.stats`).
        categories: evaluated categories (default: every label on either side). pycocotools
            evaluates the categories of the ground-truth file; pass them to count the same FPs.
        dt_area, gt_area: (D,), (G,) areas in pixels; with them, ``area_ranges`` (default COCO's
            all/small/medium/large) are evaluated; without, one range ``all`` with no area test.
        area_ranges: names -> (lo, hi); the first is the one matches and counts are reported for.

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

        With areas, max_dets (1, 10, 100) gives the 12 ``summarize`` numbers (a 50-pixel box
        is "small", so AP_medium and AP_large have no ground truth):
        >>> r = coco_evaluate(np.array([0.8, 0.3]), np.array([0, 2]), np.array([0, 2]),
        ...                   np.array([0, 1]), np.array([0.9, 0.6]), np.array([0, 0]),
        ...                   np.array([0]), max_dets=(1, 10, 100), dt_area=np.array([50., 50.]),
        ...                   gt_area=np.array([50.]))
        >>> r.stats[:6].round(3).tolist()
        [0.7, 1.0, 1.0, 0.7, -1.0, -1.0]
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
    dets = tuple(int(m) for m in np.atleast_1d(max_dets))
    if not dets or min(dets) < 1:
        raise ValueError(f"max_dets must be positive, got {max_dets!r}")
    a1, a2, ranges = _areas(dt_area, gt_area, n1, n2, area_ranges)
    cats = np.unique(np.concatenate([l1, l2])) if categories is None else np.asarray(categories)
    if len(np.unique(cats)) != len(cats):
        raise ValueError(f"categories must be distinct, got {cats.tolist()}")
    universe = np.unique(np.concatenate([l1, l2, cats]))
    c1, c2, ck = (np.searchsorted(universe, x).astype(np.int64) for x in (l1, l2, cats))
    crowd = _flag(gt_crowd, n2, "gt_crowd")
    base_ignore = crowd.copy() if gt_ignore is None else _flag(gt_ignore, n2, "gt_ignore")
    in_cat1, in_cat2 = np.isin(c1, ck), np.isin(c2, ck)
    s_count = len(o1) - 1
    sample1 = np.repeat(np.arange(s_count), np.diff(o1))
    sample2 = np.repeat(np.arange(s_count), np.diff(o2))

    # pycocotools' maxDets cut: rank by score within each (image, category)
    by_group = np.lexsort((-scores, c1, sample1))
    g_key = np.stack([sample1[by_group], c1[by_group]], axis=1)
    new_group = np.ones(n1, bool)
    new_group[1:] = (g_key[1:] != g_key[:-1]).any(axis=1)
    start = np.maximum.accumulate(np.where(new_group, np.arange(n1), 0))
    rank = np.empty(n1, np.int64)
    rank[by_group] = np.arange(n1) - start
    evaluated = (rank < dets[-1]) & in_cat1

    thr = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    T, K, R, A, M = len(thr), len(ck), len(COCO_RECALL_THRESHOLDS), len(ranges), len(dets)
    match = np.full((T, n1), -1, np.int64)
    gt_match = np.full((T, n2), -1, np.int64)
    ignored = np.zeros((T, n1), bool)
    tp = np.zeros((T, s_count), np.int64)
    fp = np.zeros((T, s_count), np.int64)
    fn = np.zeros((T, s_count), np.int64)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    # pycocotools concatenates images in order, each sorted by descending score; this order and
    # the rows of each category in it are the same at every threshold and area range.
    # accumulate's stable sort by score across images is done here once, for all of them.
    order1 = sorted_order(scores, o1, descending=True)
    ordered = order1[evaluated[order1]]
    # per category (in ck's order), by descending score; ties keep the concatenation order
    k_of = np.full(len(universe), K, np.int64)
    k_of[ck] = np.arange(K)
    by_cat = ordered[np.lexsort((-scores[ordered], k_of[c1[ordered]]))]
    cut = [by_cat[rank[by_cat] < m] for m in dets]
    bounds = [np.searchsorted(k_of[c1[r]], np.arange(K + 1)) for r in cut]
    for a, (lo, hi) in enumerate(ranges.values()):
        ignore = base_ignore | (a2 < lo) | (a2 > hi)
        dt_out = (a1 < lo) | (a1 > hi)
        counted_gt = in_cat2 & ~ignore
        num_gt = np.bincount(c2[counted_gt], minlength=len(universe))[ck]
        # the side-2 visiting order depends on the ignore flags: once per area range
        order2 = sorted_order(ignore.astype(np.float64), o2, descending=False, groups=c2)
        for t in range(T):
            m1, m2, ig1 = run_greedy(
                v, po, o1, o2, scores, thr[t], crowd, ignore, c1, c2, True, active1=evaluated,
                order1=order1, order2=order2,
            )
            matched = m1 >= 0
            dt_ignore = np.where(matched, ig1, dt_out)
            for m in range(M):
                precision[t, :, :, a, m], recall[t, :, a, m] = category_precision(
                    matched, dt_ignore, cut[m], bounds[m], num_gt
                )
            if a == 0:
                m2[~in_cat2] = -1
                match[t], gt_match[t], ignored[t] = m1, m2, dt_ignore
                tp[t] = np.bincount(sample1[evaluated & matched & ~dt_ignore], minlength=s_count)
                fp[t] = np.bincount(sample1[evaluated & ~matched & ~dt_ignore], minlength=s_count)
                fn[t] = np.bincount(sample2[counted_gt & (m2 < 0)], minlength=s_count)
    areas_known = dt_area is not None and bool(np.isfinite(a1).all() and np.isfinite(a2).all())
    return CocoEvalResult(thr, cats, ranges, dets, evaluated, match, ignored, gt_match, tp, fp, fn,
                          precision, recall, areas_known)
