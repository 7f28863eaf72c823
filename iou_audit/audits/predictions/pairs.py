"""Prediction x ground-truth pairs of every sample, flattened (rows = predictions, columns = labels).

Everything downstream (matching, error types, metrics) works on the flat pair arrays of the batched
layout (docs/ARCHITECTURE.md): ``values[pair_offsets[s]:pair_offsets[s + 1]].reshape(n_pred_s, n_gt_s)``
is sample ``s``'s IoU block. ``iou_audit.overlaps.pair_rows`` gives, for every flat pair, its global
prediction and ground-truth row so that per-label reductions are single ``np.maximum.at`` calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.overlaps import overlaps

IOU_TYPES = ("bbox", "segm")


def prediction_pair_ious(pred, gt, iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """IoU of every same-sample (prediction, ground truth) pair, crowd-aware, as ``(values, pair_offsets)``.

    ``iou_type="bbox"`` compares boxes; ``"segm"`` compares the cropped instance masks (both tables
    need ``masks`` and image sizes). Crowd ground truth uses intersection over the prediction's area,
    as pycocotools does.

    Example:
        >>> from types import SimpleNamespace as T
        >>> p = T(box=np.array([[0, 0, .5, .5]]), offsets=np.array([0, 1]))
        >>> g = T(box=np.array([[0, 0, .5, 1.]]), offsets=np.array([0, 1]), iscrowd=np.array([False]))
        >>> prediction_pair_ious(p, g)[0]
        array([0.5])
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    iou_type = {"bbox": "boxes", "segm": "masks"}[iou_type]
    if len(pred.offsets) != len(gt.offsets):
        raise ValueError(
            f"prediction table has {len(pred.offsets) - 1} samples, ground truth {len(gt.offsets) - 1}"
        )
    crowd = np.asarray(gt.iscrowd, dtype=bool)
    # a label without a mask is an empty segmentation (IoU 0), as in COCO
    return overlaps(pred, gt, iou_type, "iou", crowd_b=crowd, missing_mask="empty")


def shared_class_codes(labels1: np.ndarray, labels2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer codes of two label arrays over their joint sorted class list.

    Example:
        >>> shared_class_codes(np.array(["dog", "cat"]), np.array(["cat"]))
        (array([1, 0]), array([0]), array(['cat', 'dog'], dtype=object))
    """
    l1 = np.asarray(labels1, dtype=object).reshape(-1)
    l2 = np.asarray(labels2, dtype=object).reshape(-1)
    classes, codes = np.unique(np.concatenate([l1, l2]).astype(str), return_inverse=True)
    codes = codes.astype(np.int64).reshape(-1)
    return codes[: len(l1)], codes[len(l1):], classes.astype(object)


@dataclass(frozen=True)
class PredictionPairs:
    """Every same-sample (prediction, label) pair of the audited samples and what each side brings:
    the one argument of the error, TIDE and confusion computations (instead of ten arrays).

    ``values``/``pair_offsets``: the IoU blocks (batched layout); ``*_offsets``: per-sample rows;
    ``*_codes``: class codes over the joint class list; ``scores``: prediction confidences (NaN = 1);
    ``gt_crowd``: crowd labels; ``*_boxes``: relative ``xyxy`` boxes.
    """

    values: np.ndarray
    pair_offsets: np.ndarray
    pred_offsets: np.ndarray
    gt_offsets: np.ndarray
    pred_codes: np.ndarray
    gt_codes: np.ndarray
    scores: np.ndarray
    gt_crowd: np.ndarray
    pred_boxes: np.ndarray | None = None
    gt_boxes: np.ndarray | None = None


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching of predictions to labels (``iou_audit.matching.batched_match``):
    ``match1``/``iou1`` per prediction (label row, -1), ``match2`` per label, ``ignored1`` for
    predictions matched to crowd regions."""

    match1: np.ndarray
    iou1: np.ndarray
    match2: np.ndarray
    ignored1: np.ndarray
