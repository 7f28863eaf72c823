"""Full-image masks: per-class semantic IoU / mIoU and Boundary IoU (Cheng et al., CVPR 2021).

Both take whole-frame 2-D arrays (semantic: an integer class per pixel; boundary: binary masks).
Conventions as in the rest of ``iou_audit.geometry``: a 0/0 IoU is 0, never NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def semantic_iou(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    classes: Sequence[int] | None = None,
    ignore_index: int | None = None,
) -> dict:
    """Per-class IoU and mIoU of two full-image semantic masks (integer class per pixel).

    One confusion matrix from a single ``np.bincount``; pixels whose value is not in ``classes``
    count as "other" (they still add to the union of the class they are confused with), and pixels
    where the ground truth equals ``ignore_index`` are skipped.

    Args:
        gt_mask, pred_mask: 2-D integer arrays of the same shape.
        classes: class values to score; default: every value in either mask except ``ignore_index``.
        ignore_index: ground-truth value to leave out (e.g. 255 "void").

    Returns:
        dict with ``classes`` (K,), ``intersection`` and ``union`` (K,) pixel counts, ``iou`` (K,)
        (0 where the union is 0), ``present`` (K,) bool (union > 0), ``miou`` (mean IoU over present
        classes, 0 if none) and ``confusion`` (K+1, K+1) counts, rows ground truth, columns
        prediction, last row/column "other".

    Example:
        >>> r = semantic_iou(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]))
        >>> r["iou"].tolist(), round(r["miou"], 4)
        ([0.5, 0.6666666666666666], 0.5833)
    """
    gt = np.asarray(gt_mask)
    pred = np.asarray(pred_mask)
    if gt.shape != pred.shape:
        raise ValueError(f"gt_mask shape {gt.shape} != pred_mask shape {pred.shape}")
    for name, a in (("gt_mask", gt), ("pred_mask", pred)):
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"{name} must be a 2-D integer array, got {a.dtype} {a.shape}")
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = gt != ignore_index
        gt, pred = gt[keep], pred[keep]
    if classes is None:
        values = np.union1d(np.unique(gt), np.unique(pred))
        cls = values[values != ignore_index] if ignore_index is not None else values
    else:
        cls = np.asarray(classes, dtype=np.int64).reshape(-1)
        if len(np.unique(cls)) != len(cls):
            raise ValueError(f"classes has duplicates: {cls.tolist()}")
    k = len(cls)
    order = np.argsort(cls, kind="stable")
    sorted_cls = cls[order]

    def to_index(values: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(sorted_cls, values), 0, max(k - 1, 0))
        hit = (sorted_cls[pos] == values) if k else np.zeros(len(values), bool)
        return np.where(hit, order[pos] if k else 0, k)

    confusion = np.bincount(
        to_index(gt) * (k + 1) + to_index(pred), minlength=(k + 1) ** 2
    ).reshape(k + 1, k + 1)
    inter = np.diag(confusion)[:k]
    union = confusion.sum(axis=1)[:k] + confusion.sum(axis=0)[:k] - inter
    iou = np.divide(inter, union, out=np.zeros(k, np.float64), where=union > 0)
    present = union > 0
    miou = float(iou[present].mean()) if present.any() else 0.0
    return {"classes": cls, "intersection": inter, "union": union, "iou": iou,
            "present": present, "miou": miou, "confusion": confusion}


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Boundary band of a binary mask: the mask minus its erosion by ``d = round(ratio * diag)``.

    Follows ``mask_to_boundary`` of the Boundary IoU reference code (Cheng et al., CVPR 2021):
    ``d >= 1``; the image is padded with one background pixel so that a mask cut by the image border
    has a boundary there too; erosion is ``d`` iterations of a 3x3 square (a (2d+1)-square).

    Example:
        >>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True
        >>> mask_to_boundary(m, dilation_ratio=0.1).astype(int)[1:5, 1:5].tolist()
        [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]]
    """
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    m = (m != 0).astype(np.uint8)
    h, w = m.shape
    dilation = max(int(round(dilation_ratio * np.sqrt(h**2 + w**2))), 1)
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1 : h + 1, 1 : w + 1]
    return (m - eroded).astype(bool)


def boundary_iou(mask1: np.ndarray, mask2: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU (Cheng et al. 2021) of two full-image binary masks; 0 when both are empty.

    Example:
        >>> a = np.zeros((10, 10), bool); a[2:8, 2:8] = True
        >>> boundary_iou(a, a), boundary_iou(a, np.zeros_like(a))
        (1.0, 0.0)
    """
    a = np.asarray(mask1)
    b = np.asarray(mask2)
    if a.shape != b.shape:
        raise ValueError(f"mask1 shape {a.shape} != mask2 shape {b.shape}")
    ba = mask_to_boundary(a, dilation_ratio)
    bb = mask_to_boundary(b, dilation_ratio)
    union = np.count_nonzero(ba | bb)
    return float(np.count_nonzero(ba & bb) / union) if union else 0.0
