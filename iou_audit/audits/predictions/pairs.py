"""Prediction x ground-truth pairs of every sample, flattened (rows = predictions, columns = labels).

Everything downstream (matching, error types, metrics) works on the flat pair arrays of the batched
layout (docs/ARCHITECTURE.md): ``values[pair_offsets[s]:pair_offsets[s + 1]].reshape(n_pred_s, n_gt_s)``
is sample ``s``'s IoU block. :func:`pair_rows` gives, for every flat pair, its global prediction and
ground-truth row so that per-label reductions are single ``np.maximum.at`` calls, not sample loops.
"""
from __future__ import annotations

import numpy as np

from iou_audit.geometry.boxes import batched_box_iou
from iou_audit.geometry.masks import batched_cropped_mask_iou

IOU_TYPES = ("bbox", "segm")


def pair_rows(offsets1: np.ndarray, offsets2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global row of side 1 and side 2 of every flat same-sample pair, in ``values`` order.

    Example:
        >>> pair_rows(np.array([0, 2, 3]), np.array([0, 1, 3]))
        (array([0, 1, 2, 2]), array([0, 0, 1, 2]))
    """
    off1 = np.asarray(offsets1, dtype=np.int64)
    off2 = np.asarray(offsets2, dtype=np.int64)
    n1, n2 = np.diff(off1), np.diff(off2)
    sizes = n1 * n2
    total = int(sizes.sum())
    pair_sample = np.repeat(np.arange(len(n1)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, np.int64)
    local = np.arange(total, dtype=np.int64) - starts[pair_sample]
    width = np.maximum(n2[pair_sample], 1)
    rows1 = off1[:-1][pair_sample] + local // width
    rows2 = off2[:-1][pair_sample] + local % width
    return rows1.astype(np.int64), rows2.astype(np.int64)


def frame_sizes(table) -> np.ndarray:
    """(S, 2) ``(width, height)`` in pixels of a table's samples; raises naming a sample without one."""
    sizes = np.stack([np.asarray(table.width, float), np.asarray(table.height, float)], axis=1)
    bad = ~(np.isfinite(sizes).all(axis=1) & (sizes > 0).all(axis=1))
    if bad.any():
        sid = table.sample_ids[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"field {table.field!r}: sample {sid} has no image size; mask IoU needs it "
            "(compute metadata first)"
        )
    return sizes


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
    if len(pred.offsets) != len(gt.offsets):
        raise ValueError(
            f"prediction table has {len(pred.offsets) - 1} samples, ground truth {len(gt.offsets) - 1}"
        )
    crowd = np.asarray(gt.iscrowd, dtype=bool)
    if iou_type == "bbox":
        return batched_box_iou(pred.box, pred.offsets, gt.box, gt.offsets, crowd2=crowd)
    for t in (pred, gt):
        if t.masks is None:
            raise ValueError(f"iou_type='segm' needs instance masks in field {t.field!r}")
    return batched_cropped_mask_iou(
        pred.masks, pred.box, pred.offsets, gt.masks, gt.box, gt.offsets, frame_sizes(gt), crowd2=crowd
    )


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
