"""Pixel-level products of two or more label maps of one image: regions of disagreement and the
pixel-wise majority consensus (numpy and OpenCV, no database)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from iou_audit.geometry.dense_masks import boundary_iou


def disagreement_regions(a: np.ndarray, b: np.ndarray, min_pixels: int) -> list[dict]:
    """Connected components (8-connected, OpenCV's ``connectedComponentsWithStats``) of the pixels
    where ``a != b`` with at least ``min_pixels`` pixels, in raster order of their first pixel.

    Returns one dict per region: ``box`` (relative ``[x, y, w, h]`` as FiftyOne stores it), ``mask``
    (bool crop of the region inside its box), ``pixels``, and ``value_a``/``value_b``, the most
    frequent pair of values inside it (ties: the smallest pair).

    Example:
        >>> a = np.zeros((4, 6), int); b = a.copy(); b[1:3, 1:4] = 5; b[0, 5] = 5
        >>> r = disagreement_regions(a, b, 2)
        >>> len(r), r[0]["pixels"], r[0]["box"], (r[0]["value_a"], r[0]["value_b"])
        (1, 6, [0.16666666666666666, 0.25, 0.5, 0.5], (0, 5))
    """
    import cv2

    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} != {b.shape}")
    diff = a != b
    if not diff.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(diff.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    area = stats[:, cv2.CC_STAT_AREA]
    kept = np.flatnonzero(area[1:] >= min_pixels) + 1  # label 0: where the maps agree
    if not len(kept):
        return []
    h, w = a.shape
    left, top = stats[kept, cv2.CC_STAT_LEFT], stats[kept, cv2.CC_STAT_TOP]
    width, height = stats[kept, cv2.CC_STAT_WIDTH], stats[kept, cv2.CC_STAT_HEIGHT]
    # raster order of each region's first pixel (its leftmost pixel on its top row)
    first = [int(t) * w + int(x) + int(np.argmax(labels[t, x:x + ww] == i))
             for i, t, x, ww in zip(kept.tolist(), top.tolist(), left.tolist(), width.tolist())]
    order = np.argsort(first, kind="stable")
    top_pairs = _most_frequent_pairs(a[diff], b[diff], labels[diff], kept)
    out = []
    for j in order.tolist():
        i, x, y, ww, hh = int(kept[j]), int(left[j]), int(top[j]), int(width[j]), int(height[j])
        out.append({"box": [x / w, y / h, ww / w, hh / h], "mask": labels[y:y + hh, x:x + ww] == i,
                    "pixels": int(area[i]), "value_a": top_pairs[j][0], "value_b": top_pairs[j][1]})
    return out


def _most_frequent_pairs(va: np.ndarray, vb: np.ndarray, region: np.ndarray, kept: np.ndarray
                         ) -> list[tuple[int, int]]:
    """Per region in ``kept``, the most frequent ``(value_a, value_b)`` of its pixels (ties: the
    smallest pair), from the disagreeing pixels' values and region labels."""
    if all(x.dtype.kind == "u" and x.dtype.itemsize <= 2 for x in (va, vb)):  # label maps: a lookup table
        size = max(int(va.max()), int(vb.max())) + 1
        values = np.flatnonzero(np.bincount(va, minlength=size) + np.bincount(vb, minlength=size))
        lut = np.zeros(size, np.int64)
        lut[values] = np.arange(len(values))
        ia, ib = lut[va], lut[vb]
    else:
        values, inverse = np.unique(np.concatenate([va, vb]), return_inverse=True)
        ia, ib = inverse[:len(va)], inverse[len(va):]
    slot = np.full(int(region.max()) + 1, -1, np.int64)
    slot[kept] = np.arange(len(kept))
    r = slot[region]
    sel = r >= 0
    v = len(values)
    code = (r[sel] * v + ia[sel]) * v + ib[sel]  # in (region, a, b) order: the first maximum is the smallest pair
    if len(kept) * v * v <= 1 << 22:
        best = np.bincount(code, minlength=len(kept) * v * v).reshape(len(kept), v * v).argmax(axis=1)
    else:
        codes, counts = np.unique(code, return_counts=True)
        pick = np.lexsort((codes, -counts, codes // (v * v)))  # per region: most pixels, then smallest pair
        reg = codes[pick] // (v * v)
        firsts = pick[np.r_[True, reg[1:] != reg[:-1]]]
        best = codes[firsts] % (v * v)
    return [(int(values[c // v]), int(values[c % v])) for c in best.tolist()]


def majority_consensus(maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-wise majority of two or more equal-size label maps.

    Tie rule: among the values with the most votes at a pixel, the value of the *earliest* map in
    ``maps`` wins (so with two maps that disagree, the first map's value is kept, and the returned
    ``support`` is 1 there). Returns ``(consensus, support)``, support = votes of the chosen value.

    Example:
        >>> c, s = majority_consensus([np.array([[1, 2, 3]]), np.array([[1, 5, 4]]), np.array([[0, 5, 9]])])
        >>> c.tolist(), s.tolist()
        ([[1, 5, 3]], [[2, 2, 1]])
    """
    if len(maps) == 2 and np.shape(maps[0]) == np.shape(maps[1]) and np.ndim(maps[0]) == 2:
        # two maps: the first wins every tie, so it is the consensus; support 2 where they agree
        first, second = np.asarray(maps[0]), np.asarray(maps[1])
        return first.astype(np.result_type(first, second)), 1 + (first == second).astype(np.int32)
    stack = np.stack([np.asarray(m) for m in maps])
    if stack.ndim != 3:
        raise ValueError(f"maps must be equal-size 2-D arrays, got stacked shape {stack.shape}")
    votes = np.zeros(stack.shape, np.int32)
    for i in range(len(stack)):
        votes += stack == stack[i][None]  # votes[j] = how many maps agree with map j's value
    winner = np.argmax(votes, axis=0)  # first maximum: the earliest map among the tied values
    rows = winner[None]
    return np.take_along_axis(stack, rows, 0)[0], np.take_along_axis(votes, rows, 0)[0]


def class_boundary_iou(a: np.ndarray, b: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Mean over the values present in either map of the Boundary IoU of their binary masks
    (:func:`iou_audit.geometry.dense_masks.boundary_iou`); NaN for empty maps.

    Example:
        >>> a = np.zeros((10, 10), int); a[2:8, 2:8] = 1
        >>> class_boundary_iou(a, a), class_boundary_iou(a, np.zeros_like(a)) < 1
        (1.0, True)
    """
    values = np.union1d(np.unique(a), np.unique(b))
    if not len(values):
        return float("nan")
    return float(np.mean([boundary_iou(a == v, b == v, dilation_ratio) for v in values]))
