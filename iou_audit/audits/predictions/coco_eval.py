"""COCO metrics of a prediction audit: the audit's class codes and areas handed to the one COCO
evaluator, :func:`iou_audit.matching.coco.coco_evaluate` (pycocotools ``COCOeval.evaluate`` +
``accumulate`` + ``summarize``, the 12 stats, all four area ranges and maxDets 1/10/100).

Areas: ground truth uses its ``area`` (COCO's annotation field), predictions their box or mask area
in pixels, as ``COCO.loadRes`` computes them.
"""
from __future__ import annotations

import numpy as np

from iou_audit.matching.coco import COCO_AREA_RANGES as AREA_RANGES
from iou_audit.matching.coco import COCO_MAX_DETS as MAX_DETS
from iou_audit.matching.coco import STAT_NAMES
from iou_audit.matching.coco import CocoEvalResult as CocoEvaluation
from iou_audit.matching.coco import coco_evaluate as _coco_evaluate

__all__ = ["AREA_RANGES", "MAX_DETS", "STAT_NAMES", "CocoEvaluation", "coco_evaluate"]


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
        classes: (K,) class names; the result's ``categories``.

    Example:
        One image, one ground truth, two predictions; the better-scored one overlaps 0.8, so it is a TP at 7 of the 10 thresholds:

        >>> ev = coco_evaluate(np.array([0.8, 0.0]), np.array([0, 2]), np.array([0, 2]), np.array([0, 1]),
        ...                    np.array([0, 0]), np.array([0]), np.array([0.9, 0.3]), np.array([False]),
        ...                    np.array([50.0, 50.0]), np.array([50.0]), np.array(["cat"]))
        >>> ev.stats[:3].round(3)
        array([0.7, 1. , 1. ])
    """
    classes = np.asarray(classes, object)
    ev = _coco_evaluate(
        values, pair_offsets, pred_offsets, gt_offsets, scores, np.asarray(pred_codes, np.int64),
        np.asarray(gt_codes, np.int64), gt_crowd=np.asarray(gt_crowd, bool), max_dets=MAX_DETS,
        categories=np.arange(len(classes)), dt_area=pred_area, gt_area=gt_area, area_ranges=AREA_RANGES,
    )
    ev.categories = classes
    return ev
