"""Boundary IoU (Cheng et al., CVPR'21) of matched mask pairs, so disagreement on large objects shows.

Mask IoU forgives a sloppy outline on a large object (the interior dominates); Boundary IoU
compares only the pixels within ``d`` of each contour, ``d = dilation_ratio x image diagonal``
(default 2%). Each pair is computed in a window around the two masks, padded by ``d + 1`` pixels
and clipped to the image, which gives the same boundary pixels as the full image (erosion only
looks ``d`` pixels away; at a clipped side the window edge is the image edge) at a fraction of
the cost. ``iou_audit.geometry.dense_masks.boundary_iou`` does the measuring.
"""
from __future__ import annotations

import numpy as np

from iou_audit.geometry.dense_masks import boundary_iou
from iou_audit.geometry.masks import mask_pixel_rects


def _place(mask, rect, window) -> np.ndarray:
    wx0, wy0, wx1, wy1 = window
    out = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    x0, y0, x1, y1 = rect
    if mask is None or x1 <= x0 or y1 <= y0:
        return out
    m = np.asarray(mask, np.uint8)  # as FiftyOne renders masks (and as the IoU kernels read them)
    if m.shape != (y1 - y0, x1 - x0):
        from iou_audit.geometry.masks import _resize_like_fiftyone

        m = _resize_like_fiftyone(m, int(x1 - x0), int(y1 - y0))
    out[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = m != 0
    return out


def pair_boundary_iou(mask_a, box_a, mask_b, box_b, frame: tuple[int, int], dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two FiftyOne-style cropped masks (relative xyxy boxes) in a ``(w, h)`` image.

    Example: a 20x20 square against the same square shifted by 2 px in a 100x100 image:
        >>> sq = np.ones((20, 20), bool)
        >>> round(pair_boundary_iou(sq, [.1, .1, .3, .3], sq, [.12, .1, .32, .3], (100, 100)), 4)
        0.5
    """
    w, h = frame
    d = max(int(round(dilation_ratio * np.hypot(w, h))), 1)
    rects = mask_pixel_rects(np.array([box_a, box_b], dtype=float), np.array([w, h]))
    window = (max(min(rects[:, 0]) - d - 1, 0), max(min(rects[:, 1]) - d - 1, 0),
              min(max(rects[:, 2]) + d + 1, w), min(max(rects[:, 3]) + d + 1, h))
    if window[2] <= window[0] or window[3] <= window[1]:
        return 0.0
    a, b = _place(mask_a, rects[0], window), _place(mask_b, rects[1], window)
    # boundary_iou derives d from the array's own diagonal: scale the ratio so it lands on our d.
    ratio = d / np.hypot(*a.shape)
    return boundary_iou(a, b, dilation_ratio=ratio)


def matched_boundary_iou(ta, tb, match_a: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Boundary IoU for every matched row of annotator a (NaN when unmatched or a mask is missing)."""
    out = np.full(len(match_a), np.nan)
    sample = np.repeat(np.arange(len(ta.offsets) - 1), np.diff(ta.offsets))
    for i in np.flatnonzero(match_a >= 0):
        j, s = match_a[i], sample[i]
        if ta.masks[i] is None or tb.masks[j] is None:
            continue  # matched by boxes: no outline to compare
        out[i] = pair_boundary_iou(ta.masks[i], ta.box[i], tb.masks[j], tb.box[j],
                                   (int(ta.width[s]), int(ta.height[s])), dilation_ratio)
    return out
