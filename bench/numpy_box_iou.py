"""The numpy broadcast baseline the box benches compare against (not used by the library).

``numpy_box_iou`` is ``iou_audit.geometry.boxes.box_iou`` as it was before it called the compiled
kernels: the same conventions, written as (N, M) numpy broadcasts with one temporary per step.
``torchvision_style_iou`` is torchvision's ``box_iou`` formula (``_box_inter_union``) in numpy.
"""
from __future__ import annotations

import numpy as np

METRICS = ("iou", "giou", "diou", "ciou", "ios")


def _valid(b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])


def numpy_box_iou(
    boxes1: np.ndarray,
    boxes2: np.ndarray,
    metric: str = "iou",
    crowd: np.ndarray | None = None,
) -> np.ndarray:
    """(N, M) IoU / GIoU / DIoU / CIoU / IOS by numpy broadcasting; degenerate boxes give 0 / -1.

    Example:
        >>> numpy_box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])).round(6)
        array([[0.142857]])
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    n, m = len(b1), len(b2)
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=np.float64)
    ok = _valid(b1)[:, None] & _valid(b2)[None, :]
    # Degenerate boxes are replaced by a unit box so the arithmetic below stays finite;
    # their results are overwritten at the end.
    b1 = np.where(_valid(b1)[:, None], b1, [0.0, 0.0, 1.0, 1.0])
    b2 = np.where(_valid(b2)[:, None], b2, [0.0, 0.0, 1.0, 1.0])
    x1, y1, x2, y2 = (b1[:, i, None] for i in range(4))
    u1, v1, u2, v2 = (b2[None, :, i] for i in range(4))
    a1 = (x2 - x1) * (y2 - y1)
    a2 = (u2 - u1) * (v2 - v1)
    iw = np.clip(np.minimum(x2, u2) - np.maximum(x1, u1), 0.0, None)
    ih = np.clip(np.minimum(y2, v2) - np.maximum(y1, v1), 0.0, None)
    inter = iw * ih
    if metric == "ios":
        out = inter / np.minimum(a1, a2)
        return np.where(ok, out, 0.0)
    union = a1 + a2 - inter
    iou = inter / union
    if metric == "iou":
        if crowd is not None:
            crowd = np.asarray(crowd, dtype=bool).reshape(-1)
            iou = np.where(crowd[None, :], inter / a1, iou)
        return np.where(ok, iou, 0.0)
    cw = np.maximum(x2, u2) - np.minimum(x1, u1)
    ch = np.maximum(y2, v2) - np.minimum(y1, v1)
    if metric == "giou":
        hull = cw * ch
        out = iou - (hull - union) / hull
    else:
        diag2 = cw**2 + ch**2
        dist2 = ((x1 + x2 - u1 - u2) ** 2 + (y1 + y2 - v1 - v2) ** 2) / 4.0
        out = iou - dist2 / diag2
        if metric == "ciou":
            v = (4.0 / np.pi**2) * (
                np.arctan((u2 - u1) / (v2 - v1)) - np.arctan((x2 - x1) / (y2 - y1))
            ) ** 2
            denom = 1.0 - iou + v
            alpha = np.divide(v, denom, out=np.zeros_like(v), where=denom > 0)
            out = out - alpha * v
    return np.where(ok, out, -1.0)


def torchvision_style_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """torchvision.ops.box_iou's formula in numpy (no degenerate-box handling).

    Example:
        >>> torchvision_style_iou(np.array([[0., 0, 10, 10]]), np.array([[5., 5, 15, 15]])).round(6)
        array([[0.142857]])
    """
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)
