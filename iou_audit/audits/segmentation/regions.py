"""Pixel-level products of two or more label maps of one image: regions of disagreement and the
pixel-wise majority consensus (pure numpy/scipy, no database)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from iou_audit.geometry.dense_masks import boundary_iou


def disagreement_regions(a: np.ndarray, b: np.ndarray, min_pixels: int) -> list[dict]:
    """Connected components (8-connected, ``scipy.ndimage.label``) of the pixels where ``a != b``
    with at least ``min_pixels`` pixels.

    Returns one dict per region: ``box`` (relative ``[x, y, w, h]`` as FiftyOne stores it), ``mask``
    (bool crop of the region inside its box), ``pixels``, and ``value_a``/``value_b``, the most
    frequent pair of values inside it (ties: the smallest pair).

    Example:
        >>> a = np.zeros((4, 6), int); b = a.copy(); b[1:3, 1:4] = 5; b[0, 5] = 5
        >>> r = disagreement_regions(a, b, 2)
        >>> len(r), r[0]["pixels"], r[0]["box"], (r[0]["value_a"], r[0]["value_b"])
        (1, 6, [0.16666666666666666, 0.25, 0.5, 0.5], (0, 5))
    """
    from scipy import ndimage

    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} != {b.shape}")
    diff = a != b
    if not diff.any():
        return []
    labels, n = ndimage.label(diff, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    h, w = a.shape
    out = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or sizes[i] < min_pixels:
            continue
        crop = labels[sl] == i
        va, vb = a[sl][crop], b[sl][crop]
        pairs, counts = np.unique(np.stack([va, vb], axis=1), axis=0, return_counts=True)
        top = pairs[int(np.argmax(counts))]
        ys, xs = sl
        out.append({"box": [xs.start / w, ys.start / h, (xs.stop - xs.start) / w, (ys.stop - ys.start) / h],
                    "mask": crop, "pixels": int(sizes[i]), "value_a": int(top[0]), "value_b": int(top[1])})
    return out


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
