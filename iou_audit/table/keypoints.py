"""Keypoints (``fo.Keypoints``) columns of a :class:`iou_audit.table.LabelTable`.

A ``fo.Keypoint`` holds ``points`` (a list of relative ``(x, y)``, NaN for a point that is not
there), optionally ``confidence`` (one value per point) and, when imported from COCO, ``visible``
(COCO's flag per point: 0 not labeled, 1 occluded, 2 visible). The table keeps them as
(L, K, 2) / (L, K) float64 arrays, K the most points any label of the read has; rows with fewer
points are padded with NaN and ``num_points`` says how many each label has.
"""
from __future__ import annotations

import numpy as np


def keypoint_columns(points: list, visible: list, confidence: list, where) -> tuple[np.ndarray, ...]:
    """``(points (L, K, 2), visibility (L, K), point_confidence (L, K), num_points (L,))``.

    ``points``/``visible``/``confidence`` are the raw per-label values (None when absent);
    visibility and confidence are NaN where a label does not give them. ``where(row)`` names a
    label for errors (a list whose length differs from the label's points, a point that is not
    two numbers).

    Example:
        >>> p, v, c, n = keypoint_columns([[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.5]]], [[2, 0], None],
        ...                               [None, [0.9]], str)
        >>> p.shape, v.tolist(), c.tolist(), n.tolist()
        ((2, 2, 2), [[2.0, 0.0], [nan, nan]], [[nan, nan], [0.9, nan]], [2, 1])
    """
    n_rows = len(points)
    num = np.fromiter((0 if p is None else len(p) for p in points), np.int64, n_rows)
    k = int(num.max(initial=0))
    pts = np.full((n_rows, k, 2), np.nan)
    vis = np.full((n_rows, k), np.nan)
    conf = np.full((n_rows, k), np.nan)
    for i, p in enumerate(points):
        if not num[i]:
            continue
        try:
            pts[i, : num[i]] = np.array([(np.nan, np.nan) if q is None else q for q in p], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"keypoints of {where(i)} must be a list of (x, y) numbers, got {p!r:.200}") from e
        for name, raw, out in (("visible", visible[i], vis), ("confidence", confidence[i], conf)):
            if raw is None:
                continue
            if isinstance(raw, (int, float)) and name == "visible":  # FiftyOne also allows one flag for all
                out[i, : num[i]] = raw
                continue
            try:
                values = np.array([np.nan if x is None else x for x in raw], dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name} of {where(i)} must be a list of numbers, got {raw!r:.200}") from e
            if len(values) != num[i]:
                raise ValueError(f"{name} of {where(i)} has {len(values)} values for {num[i]} points")
            out[i, : num[i]] = values
    return pts, vis, conf, num
