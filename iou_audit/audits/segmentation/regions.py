"""Pixel-level products of two or more label maps of one image: regions of disagreement and the
pixel-wise majority consensus (numpy and OpenCV, no database)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

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
    # labels only (OpenCV's per-label statistics cost 4x the labelling on thousands of noise
    # specks); area, box and first pixel of every label in one compiled pass
    n, labels = cv2.connectedComponents(diff.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    area, box, first = _label_stats(labels, n)
    kept = np.flatnonzero(area[1:] >= min_pixels) + 1  # label 0: where the maps agree
    if not len(kept):
        return []
    h, w = a.shape
    kept = kept[np.argsort(first[kept], kind="stable")]  # raster order of each region's first pixel
    top_pairs = _region_top_pairs(a, b, labels, kept)
    if top_pairs is None:
        top_pairs = _most_frequent_pairs(a[diff], b[diff], labels[diff], kept)
    out = []
    for j, i in enumerate(kept.tolist()):
        y, x, y1, x1 = (int(v) for v in box[i])
        ww, hh = x1 - x + 1, y1 - y + 1
        out.append({"box": [x / w, y / h, ww / w, hh / h], "mask": labels[y:y + hh, x:x + ww] == i,
                    "pixels": int(area[i]), "value_a": top_pairs[j][0], "value_b": top_pairs[j][1]})
    return out


@njit(cache=True, nogil=True)
def _label_stats_loop(labels, area, box, first):  # pragma: no cover - compiled; tested against scipy
    h, w = labels.shape
    for y in range(h):
        for x in range(w):
            i = labels[y, x]
            if i == 0:
                continue
            if area[i] == 0:
                first[i] = y * w + x
                box[i, 0], box[i, 1], box[i, 2], box[i, 3] = y, x, y, x
            else:
                if x < box[i, 1]:
                    box[i, 1] = x
                if x > box[i, 3]:
                    box[i, 3] = x
                box[i, 2] = y
            area[i] += 1


def _label_stats(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label ``0 .. n-1`` of a label image: pixels, box ``(top, left, bottom, right)`` (inclusive)
    and the raster index of its first pixel (label 0 is skipped: zeros)."""
    area = np.zeros(n, np.int64)
    box = np.zeros((n, 4), np.int64)
    first = np.zeros(n, np.int64)
    _label_stats_loop(np.ascontiguousarray(labels), area, box, first)
    return area, box, first


@njit(cache=True, nogil=True)
def _pair_counts_loop(labels, a, b, lut, slot, v, counts):  # pragma: no cover - compiled; tested against counting
    for p in range(labels.size):
        r = slot[labels[p]]
        if r >= 0:
            counts[(r * v + lut[a[p]]) * v + lut[b[p]]] += 1


@njit(cache=True, nogil=True)
def _mark_diff_values(labels, a, b, present):  # pragma: no cover - compiled
    for p in range(labels.size):
        if labels[p] != 0:
            present[a[p]] = True
            present[b[p]] = True


_PAIR_CELLS = 1 << 22  # regions x values^2 counted in one table up to this


def _region_top_pairs(a: np.ndarray, b: np.ndarray, labels: np.ndarray, kept: np.ndarray
                      ) -> list[tuple[int, int]] | None:
    """:func:`_most_frequent_pairs` for unsigned maps of up to 16 bits in two compiled passes over
    the pixels (no gathers); None for other maps or too many cells (the caller falls back)."""
    if not all(x.dtype.kind == "u" and x.dtype.itemsize <= 2 for x in (a, b)):
        return None
    fa, fb, fl = a.reshape(-1), b.reshape(-1), labels.reshape(-1)
    if a.dtype != b.dtype:
        fa, fb = fa.astype(np.uint16), fb.astype(np.uint16)
    present = np.zeros(1 << (8 * fa.dtype.itemsize), np.bool_)
    _mark_diff_values(fl, fa, fb, present)
    values = np.flatnonzero(present)
    v = len(values)
    if len(kept) * v * v > _PAIR_CELLS:
        return None
    lut = np.zeros(len(present), np.int64)
    lut[values] = np.arange(v)
    slot = np.full(int(labels.max()) + 1, -1, np.int64)
    slot[kept] = np.arange(len(kept))
    counts = np.zeros(len(kept) * v * v, np.int64)
    _pair_counts_loop(fl, fa, fb, lut, slot, v, counts)
    best = counts.reshape(len(kept), v * v).argmax(axis=1)  # first maximum: the smallest pair
    return [(int(values[c // v]), int(values[c % v])) for c in best.tolist()]


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
