"""Axis-aligned box overlap metrics (IoU, GIoU, DIoU, CIoU, intersection-over-smaller).

Conventions (pinned; every function here follows them):
- boxes are ``xyxy`` float arrays in continuous coordinates: a box ``[0, 0, 10, 10]`` has area 100
  (no "+1" pixel convention);
- a pair whose union is 0 (0/0) has IoU 0; a degenerate box (zero or negative width or height, NaN or
  inf coordinate) has IoU 0 (and GIoU/DIoU/CIoU -1) with every box, itself included; callers report
  degenerate boxes, these functions never raise on them and never return NaN;
- crowd IoU (intersection over the area of the *first* argument, the prediction, as pycocotools
  does for ``iscrowd`` ground truth) is used only for the columns flagged in ``crowd``.

IoU and GIoU are invariant to scaling x and y independently, so relative coordinates give the same
values as pixels; DIoU and CIoU use distances and aspect ratios, so pass pixel coordinates for them.
"""
from __future__ import annotations

import numpy as np

METRICS = ("iou", "giou", "diou", "ciou", "ios")


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boolean mask of boxes with finite coordinates and positive width and height.

    Example:
        >>> valid_boxes(np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, np.nan, 1, 1]]))
        array([ True, False, False])
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        return np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Convert ``[x, y, w, h]`` (FiftyOne's bounding_box) to ``[x1, y1, x2, y2]``.

    Example:
        >>> xywh_to_xyxy(np.array([[0.1, 0.2, 0.3, 0.4]]))
        array([[0.1, 0.2, 0.4, 0.6]])
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 2:] += b[:, :2]
    return b


def box_iou(
    boxes1: np.ndarray,
    boxes2: np.ndarray,
    metric: str = "iou",
    crowd: np.ndarray | None = None,
) -> np.ndarray:
    """Pairwise overlap between two sets of ``xyxy`` boxes of one image.

    Args:
        boxes1: (N, 4) boxes (predictions when ``crowd`` is used).
        boxes2: (M, 4) boxes (ground truth when ``crowd`` is used).
        metric: ``"iou"``, ``"giou"``, ``"diou"``, ``"ciou"`` or ``"ios"`` (intersection over the
            smaller area).
        crowd: optional (M,) bool; for those columns IoU is ``inter / area(boxes1)`` (COCO crowd).
            Only used with ``metric="iou"``.

    Returns:
        (N, M) float64.

    Example:
        >>> a = np.array([[0, 0, 10, 10]]); b = np.array([[5, 5, 15, 15], [0, 0, 20, 10]])
        >>> box_iou(a, b).round(6)
        array([[0.142857, 0.5     ]])
        >>> box_iou(a, b, metric="giou").round(6)
        array([[-0.079365,  0.5     ]])
        >>> box_iou(a, b, metric="ciou").round(6)
        array([[0.031746, 0.446752]])
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    n, m = len(b1), len(b2)
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=np.float64)
    ok = valid_boxes(b1)[:, None] & valid_boxes(b2)[None, :]
    # Degenerate boxes are replaced by a unit box so the arithmetic below stays finite;
    # their results are overwritten at the end.
    b1 = np.where(valid_boxes(b1)[:, None], b1, [0.0, 0.0, 1.0, 1.0])
    b2 = np.where(valid_boxes(b2)[:, None], b2, [0.0, 0.0, 1.0, 1.0])
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
            if len(crowd) != m:
                raise ValueError(f"crowd has {len(crowd)} entries for {m} boxes2")
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
            # alpha = v / (1 - iou + v); 0/0 (identical aspect and iou == 1) -> 0
            denom = 1.0 - iou + v
            alpha = np.divide(v, denom, out=np.zeros_like(v), where=denom > 0)
            out = out - alpha * v
    return np.where(ok, out, -1.0)
