"""COCO keypoint evaluation: the greedy COCO matching and AP of :mod:`iou_audit.matching.coco`
run on OKS (:mod:`iou_audit.geometry.keypoints`) instead of IoU.

What pycocotools' ``COCOeval(iouType="keypoints")`` changes compared with boxes, reproduced here:

- the overlap is OKS (``computeOks``), not IoU;
- a ground truth without labeled keypoints (``num_keypoints == 0``) is ignored, like a crowd;
- ``maxDets`` is 20 per image and category;
- the area ranges are ``all``, ``medium`` (32**2 to 96**2) and ``large`` (ground truth: its area;
  detection: the area of the box spanning its points, as ``loadRes`` gives it);
- ``summarize`` prints 10 numbers (:data:`KEYPOINT_STAT_NAMES`).

CrowdPose (xtcocotools / faster-coco-eval ``iouType="keypoints_crowd"``, ``use_area=False``)
differs only in its 14 sigmas and in the OKS area, 0.53 x the box area; with no ``area`` field
its ranges never split anything, so it is evaluated here with ``area_ranges=None``.
"""
from __future__ import annotations

import numpy as np

from iou_audit.geometry.keypoints import batched_oks, box_areas, extent_boxes, labeled_mask
from iou_audit.matching.ap import COCO_IOU_THRESHOLDS
from iou_audit.matching.coco import CocoEvalResult, _mean_valid, coco_evaluate

#: pycocotools' keypoint ``areaRng`` / ``areaRngLbl``.
KEYPOINT_AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
#: pycocotools' keypoint ``maxDets``.
KEYPOINT_MAX_DETS = 20
#: the 10 numbers of ``COCOeval.summarize`` for keypoints, in its order.
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large")


def keypoint_evaluate(
    dt_points: np.ndarray,
    dt_offsets: np.ndarray,
    dt_scores: np.ndarray,
    gt_points: np.ndarray,
    gt_offsets: np.ndarray,
    gt_areas: np.ndarray,
    gt_visibility: np.ndarray | None = None,
    gt_boxes: np.ndarray | None = None,
    sigmas=None,
    dt_labels: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
    gt_crowd: np.ndarray | None = None,
    area_ranges: dict | None = KEYPOINT_AREA_RANGES,
    max_dets: int = KEYPOINT_MAX_DETS,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
    categories: np.ndarray | None = None,
) -> tuple[CocoEvalResult, np.ndarray, np.ndarray]:
    """COCO keypoint evaluation of many images at once -> ``(result, oks_values, pair_offsets)``.

    Args:
        dt_points, gt_points: (D, K, 2), (G, K, 2) keypoints in pixels.
        dt_offsets, gt_offsets: (S+1,) per-image offsets (images in pycocotools' ``imgIds``
            order, ascending ids, for ties in score to resolve as it does).
        dt_scores: (D,) the detections' instance scores.
        gt_areas: (G,) OKS areas in pixels squared (COCO: the ``area`` field; CrowdPose:
            ``box_areas(boxes, CROWDPOSE_AREA_FACTOR)``); also the ground truth's area for
            the area ranges.
        gt_visibility: (G, K) COCO flags; ground truths with none > 0 are ignored.
        gt_boxes: (G, 4) xyxy pixels (COCO's rule for OKS with unlabeled ground truth).
        sigmas: (K,) or None for COCO's 17.
        dt_labels, gt_labels: category per row (default: one category).
        gt_crowd: (G,) bool ``iscrowd`` (ignored, may absorb several detections).
        area_ranges: pycocotools' keypoint ranges by default; None = one range ``all`` without
            an area test.

    ``result.tp/fp/fn``, ``match`` and ``gt_match`` are those of pycocotools' ``evalImgs`` for
    the ``all`` range; :func:`keypoint_stats` gives the numbers ``summarize`` prints.

    Example: one person, two detections; the better one (OKS 0.943) matches at the thresholds
    0.50 to 0.90, not at 0.95, so AP = 9/10; the other (30 px off everywhere) at none:
        >>> gt = np.tile(np.arange(17.0)[:, None], (1, 2))[None] * 10
        >>> dt = np.concatenate([gt + 1, gt + 30])
        >>> r, v, _ = keypoint_evaluate(dt, [0, 2], [0.9, 0.8], gt, [0, 1], [2000.0], area_ranges=None)
        >>> v.round(3).tolist(), r.tp[:, 0].tolist(), round(r.AP, 6)
        ([0.943, 0.0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0], 0.9)
    """
    gt_p = np.asarray(gt_points, dtype=np.float64)
    dt_p = np.asarray(dt_points, dtype=np.float64)
    values, pair_offsets = batched_oks(dt_p, dt_offsets, gt_p, gt_offsets, gt_areas, gt_visibility, gt_boxes,
                                       sigmas)
    n1, n2 = len(dt_p), len(gt_p)
    labeled = labeled_mask(gt_p, gt_visibility) if n2 else np.zeros((0, 0), bool)
    crowd = np.zeros(n2, bool) if gt_crowd is None else np.asarray(gt_crowd, bool).reshape(-1)
    ignore = crowd | ~labeled.any(axis=1)
    l1 = np.zeros(n1, np.int64) if dt_labels is None else np.asarray(dt_labels).reshape(-1)
    l2 = np.zeros(n2, np.int64) if gt_labels is None else np.asarray(gt_labels).reshape(-1)
    dt_area = gt_area = None
    if area_ranges is not None:
        # pycocotools' loadRes: a keypoint result's area is that of the box over all its points
        dt_area = result_areas(dt_p)
        gt_area = np.asarray(gt_areas, dtype=np.float64).reshape(-1)
    result = coco_evaluate(
        values, pair_offsets, dt_offsets, gt_offsets, dt_scores, l1, l2, gt_crowd=crowd, gt_ignore=ignore,
        iou_thresholds=iou_thresholds, max_dets=int(max_dets), categories=categories, dt_area=dt_area,
        gt_area=gt_area, area_ranges=area_ranges,
    )
    return result, values, pair_offsets


def result_areas(dt_points: np.ndarray) -> np.ndarray:
    """pycocotools' ``loadRes`` area of keypoint results: the box over all their points (0 without any).

    Example:
        >>> result_areas(np.array([[[0.0, 0.0], [4.0, 5.0]]])).tolist()
        [20.0]
    """
    dt_p = np.asarray(dt_points, dtype=np.float64)
    return np.nan_to_num(box_areas(extent_boxes(dt_p)), nan=0.0) if len(dt_p) else np.zeros(0)


def keypoint_stats(result: CocoEvalResult) -> dict[str, float]:
    """The numbers pycocotools' ``summarize`` prints for keypoints (:data:`KEYPOINT_STAT_NAMES`);
    with one area range (``area_ranges=None``), only AP, AP50, AP75, AR, AR50, AR75.

    Example:
        >>> gt = np.zeros((1, 17, 2)); r, _, _ = keypoint_evaluate(gt, [0, 1], [1.0], gt, [0, 1], [100.0])
        >>> round(keypoint_stats(r)["AP"], 6), keypoint_stats(r)["AR_large"]  # area 100: "small", no range
        (1.0, -1.0)
    """
    p, r = result.eval_precision[..., -1], result.eval_recall[..., -1]  # (T, R, K, A), (T, K, A)
    t50, t75 = result._threshold_index(0.5), result._threshold_index(0.75)
    out = {"AP": _mean_valid(p[..., 0]), "AP50": _mean_valid(p[t50][..., 0]), "AP75": _mean_valid(p[t75][..., 0]),
           "AR": _mean_valid(r[..., 0]), "AR50": _mean_valid(r[t50][..., 0]), "AR75": _mean_valid(r[t75][..., 0])}
    names = list(result.area_ranges)
    for name in ("medium", "large"):
        if name in names:
            a = names.index(name)
            out[f"AP_{name}"] = _mean_valid(p[..., a])
            out[f"AR_{name}"] = _mean_valid(r[..., a])
    return {k: out[k] for k in KEYPOINT_STAT_NAMES if k in out}
