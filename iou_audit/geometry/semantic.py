"""Semantic segmentation agreement on integer label maps: class confusion matrices and their scores.

Everything here is pure numpy. :func:`confusion_matrices` works on *class-index* maps (``0 .. K-1``
per pixel; mapping raw mask values or RGB colours to indices is :func:`class_indices`): one
``np.bincount`` over ``(n * K + a) * K + b`` gives the per-image confusion matrices of a whole batch
of equal-size maps at once. :func:`value_confusion_matrix` takes one pair of maps of raw pixel values
(any sizes, any values) and returns the matrix over the values present, which is what the audit
uses image by image. ``iou_audit.geometry.dense_masks.semantic_iou`` is the older single-pair
summary (0/0 IoU = 0, an "other" bucket for values outside ``classes``); the scores here use NaN
for classes absent from both maps instead, so that they drop out of means.

Conventions (the scores take a confusion matrix ``C`` with rows = first map / ground truth and
columns = second map / prediction, or a stack ``(..., K, K)`` of them):

- per-class IoU is ``C[c, c] / (row_c + col_c - C[c, c])``, NaN for a class absent from both maps;
- mIoU is the mean over the classes present in at least one of the two maps (absent-in-both classes
  are ignored, as in FiftyOne/mmseg's ``nanmean``); NaN when no pixel is counted;
- frequency-weighted IoU weighs each class's IoU by its share of the *first* map's pixels
  (Long et al., FCN, 2015): ``sum_c row_c * IoU_c / sum(C)``;
- pixel accuracy is ``trace(C) / sum(C)``;
- Krippendorff's alpha (nominal) treats each pixel as a unit and each map as a coder; with two
  coders the coincidence matrix is ``C + C.T``; alpha is
  ``1 - (n - 1) * (n - trace(O)) / (n^2 - sum_c n_c^2)`` with ``n_c`` the coincidence row sums.
  It is NaN when every pixel of both maps is one class (no expected disagreement).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

__all__ = [
    "class_indices", "confusion_matrices", "value_confusion_matrix", "class_iou", "mean_iou", "frequency_weighted_iou",
    "pixel_accuracy", "coincidence_matrix", "nominal_alpha", "pixel_alpha", "stack_value_confusions",
]


def class_indices(mask: np.ndarray, values: Sequence[int] | np.ndarray, name: str = "mask") -> np.ndarray:
    """Map raw pixel values (e.g. mask target ids, RGB colours as ``0xRRGGBB`` ints) to indices into
    ``values``; a value not in ``values`` is an error naming it.

    Example:
        >>> class_indices(np.array([[0, 7], [3, 7]]), [0, 3, 7]).tolist()
        [[0, 2], [1, 2]]
    """
    m = np.asarray(mask)
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(np.unique(v)) != len(v):
        raise ValueError(f"values has duplicates: {v.tolist()}")
    order = np.argsort(v, kind="stable")
    sv = v[order]
    flat = m.astype(np.int64, copy=False).ravel()
    pos = np.clip(np.searchsorted(sv, flat), 0, max(len(sv) - 1, 0))
    hit = sv[pos] == flat if len(sv) else np.zeros(len(flat), bool)
    if not hit.all():
        bad = np.unique(flat[~hit])[:10].tolist()
        raise ValueError(f"{name} has pixel values not among the {len(v)} class values: {bad}")
    return order[pos].reshape(m.shape)


def confusion_matrices(a: np.ndarray, b: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-map class confusion matrices of two stacks of class-index maps, in one bincount.

    Args:
        a, b: integer arrays of the same shape, ``(H, W)`` or ``(N, H, W)``, values in ``[0, K)``.
        num_classes: ``K``.

    Returns:
        ``(K, K)`` (for 2-D input) or ``(N, K, K)`` int64 counts, ``C[n, i, j]`` = pixels of map
        ``n`` that are class ``i`` in ``a`` and class ``j`` in ``b``.

    Example:
        >>> confusion_matrices(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]), 2).tolist()
        [[1, 1], [0, 2]]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} != {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"label maps must be (H, W) or (N, H, W), got shape {a.shape}")
    for name, x in (("a", a), ("b", b)):
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise ValueError(f"label map {name} must be integer, got {x.dtype}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= num_classes):
            raise ValueError(f"label map {name} has values outside [0, {num_classes}): "
                             f"min {int(x.min())}, max {int(x.max())}")
    k = int(num_classes)
    single = a.ndim == 2
    a3 = a[None] if single else a
    b3 = b[None] if single else b
    n = a3.shape[0]
    pixels = a3.shape[1] * a3.shape[2]
    key = b3.reshape(n, pixels).astype(np.int64)
    key += a3.reshape(n, pixels).astype(np.int64) * k
    key += (np.arange(n, dtype=np.int64) * (k * k))[:, None]
    out = np.bincount(key.ravel(), minlength=n * k * k).reshape(n, k, k)
    return out[0] if single else out


def value_confusion_matrix(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The confusion matrix of two maps of raw integer pixel values, over the values present in either.

    Returns ``(values, C)``: the sorted values present (int64) and ``C[i, j]`` = pixels that are
    ``values[i]`` in ``a`` and ``values[j]`` in ``b``. Unsigned maps of up to 16 bits (and bool)
    whose maxima give at most 65,536 cells are counted in one compiled pass into
    ``(max_a + 1) x (max_b + 1)`` cells (uint8 maps 8 pixels a word where both words are one value); other uint16 maps after a presence pass and a lookup
    table; other integer maps (e.g. RGB as ``0xRRGGBB``) through ``np.unique``. The compiled loops
    release the GIL, so threads count several images at once.

    Example:
        >>> values, c = value_confusion_matrix(np.array([[0, 0, 7]], np.uint8), np.array([[0, 7, 7]], np.uint8))
        >>> values.tolist(), c.tolist()
        ([0, 7], [[1, 1], [0, 1]])
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} != {b.shape}")
    for name, x in (("a", a), ("b", b)):
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise ValueError(f"label map {name} must be integer, got {x.dtype}")
    small = all(x.dtype == bool or (x.dtype.kind == "u" and x.dtype.itemsize <= 2) for x in (a, b))
    if small:
        a8 = (a.view(np.uint8) if a.dtype == bool else a).ravel()
        b8 = (b.view(np.uint8) if b.dtype == bool else b).ravel()
        if not a8.size:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.int64)
        ka, kb = int(a8.max()) + 1, int(b8.max()) + 1
        if ka * kb <= _DIRECT_CELLS:
            # values up to the maps' maxima: one pass into ka x kb cells (a table that stays in cache)
            full = np.zeros(ka * kb, np.int64)
            whole = a8.size - a8.size % 8
            if a8.dtype == b8.dtype == np.uint8 and a8.ctypes.data % 8 == 0 == b8.ctypes.data % 8:
                # 8 pixels a word; a word where both maps hold one value each is one count of 8
                _count_codes_by_word(a8[:whole].view(np.uint64), b8[:whole].view(np.uint64), kb, full)
                _count_codes(a8[whole:], b8[whole:], kb, full)
            else:
                _count_codes(a8, b8, kb, full)
            full = full.reshape(ka, kb)
            k = max(ka, kb)
            present = np.zeros(k, bool)
            present[:ka] = full.any(axis=1)
            present[:kb] |= full.any(axis=0)
            values = np.flatnonzero(present)
            ia, ib = values[values < ka], values[values < kb]
            out = np.zeros((len(values), len(values)), np.int64)
            out[np.ix_(np.searchsorted(values, ia), np.searchsorted(values, ib))] = full[np.ix_(ia, ib)]
            return values, out
        present = np.zeros(1 << (8 * max(a8.dtype.itemsize, b8.dtype.itemsize)), np.bool_)
        _mark_present(a8, present)
        _mark_present(b8, present)
        values = np.flatnonzero(present)
        lut = np.zeros(len(present), np.int64)
        lut[values] = np.arange(len(values))
        k = len(values)
        out = np.zeros(k * k, np.int64)
        _count_pairs(a8, b8, lut, k, out)
        return values, out.reshape(k, k)
    values, inverse = np.unique(np.concatenate([a.ravel(), b.ravel()]).astype(np.int64), return_inverse=True)
    ia, ib = inverse[: a.size], inverse[a.size:]
    k = len(values)
    return values.astype(np.int64), np.bincount(ia * k + ib, minlength=k * k).reshape(k, k)


_DIRECT_CELLS = 1 << 16  # value_confusion_matrix counts straight into (max_a + 1) x (max_b + 1) cells up to this


@njit(cache=True, nogil=True)
def _count_codes(a, b, kb, out):  # pragma: no cover - compiled; tested against pixel counting
    for i in range(a.size):
        out[a[i] * kb + b[i]] += 1


@njit(cache=True, nogil=True)
def _count_codes_by_word(a64, b64, kb, out):  # pragma: no cover - compiled; tested against pixel counting
    ones = np.uint64(0x0101010101010101)
    low = np.uint64(0xFF)
    k = np.uint64(kb)
    for i in range(a64.size):
        wa, wb = a64[i], b64[i]
        va, vb = wa & low, wb & low
        if wa == va * ones and wb == vb * ones:  # label maps are mostly runs: 8 equal pixels
            out[np.intp(va * k + vb)] += 8
        else:
            for byte in range(8):
                shift = np.uint64(8 * byte)
                out[np.intp(((wa >> shift) & low) * k + ((wb >> shift) & low))] += 1


@njit(cache=True, nogil=True)
def _count_pairs(a, b, lut, k, out):  # pragma: no cover - compiled; tested against pixel counting
    for i in range(a.size):
        out[lut[a[i]] * k + lut[b[i]]] += 1


@njit(cache=True, nogil=True)
def _mark_present(a, present):  # pragma: no cover - compiled
    for i in range(a.size):
        present[a[i]] = True


def _parts(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.asarray(conf, dtype=np.float64)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"a confusion matrix must be (..., K, K), got shape {c.shape}")
    inter = np.diagonal(c, axis1=-2, axis2=-1)
    return c, inter, c.sum(axis=-1) + c.sum(axis=-2) - inter


def class_iou(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU ``(..., K)`` of confusion matrices ``(..., K, K)``; NaN where a class is in neither map.

    Example:
        >>> class_iou(np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]])).tolist()
        [0.5, 0.6666666666666666, nan]
    """
    _, inter, union = _parts(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> np.ndarray | float:
    """mIoU over the classes present in either map (NaN if none); ``(...)`` for a stack.

    Example:
        >>> round(float(mean_iou(np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]]))), 4)
        0.5833
    """
    iou = class_iou(conf)
    present = np.isfinite(iou)
    n = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, np.where(present, iou, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def frequency_weighted_iou(conf: np.ndarray) -> np.ndarray | float:
    """Frequency-weighted IoU: class IoUs weighted by the first map's class frequencies.

    Example:
        >>> float(frequency_weighted_iou(np.array([[1, 1], [0, 2]])))   # (2 * 0.5 + 2 * 2/3) / 4
        0.5833333333333333
    """
    c, _, _ = _parts(conf)
    iou = np.nan_to_num(class_iou(conf), nan=0.0)
    rows = c.sum(axis=-1)
    total = rows.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, (rows * iou).sum(axis=-1) / np.where(total > 0, total, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def pixel_accuracy(conf: np.ndarray) -> np.ndarray | float:
    """Share of pixels on which the two maps agree, ``trace(C) / sum(C)`` (NaN for no pixels).

    Example:
        >>> float(pixel_accuracy(np.array([[1, 1], [0, 2]])))
        0.75
    """
    c, inter, _ = _parts(conf)
    total = c.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, inter.sum(axis=-1) / np.where(total > 0, total, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def coincidence_matrix(pair_confusions: Sequence[np.ndarray], num_coders: int) -> np.ndarray:
    """Krippendorff's coincidence matrix of pixels from the confusion matrices of every coder pair.

    ``pair_confusions``: one ``(K, K)`` matrix per unordered pair of coders (``m (m - 1) / 2`` of
    them for ``m = num_coders``), each pixel labeled by every coder. Each unit has ``m`` pairable
    values and contributes ``1 / (m - 1)`` per ordered pair, so ``O = sum_pairs (C + C.T) / (m - 1)``.

    Example:
        >>> coincidence_matrix([np.array([[1, 1], [0, 2]])], 2).tolist()
        [[2.0, 1.0], [1.0, 4.0]]
    """
    if num_coders < 2:
        raise ValueError(f"alpha needs two or more coders, got {num_coders}")
    if len(pair_confusions) != num_coders * (num_coders - 1) // 2:
        raise ValueError(f"{num_coders} coders need {num_coders * (num_coders - 1) // 2} pair matrices, "
                         f"got {len(pair_confusions)}")
    total = sum(np.asarray(c, dtype=np.float64) for c in pair_confusions)
    return (total + np.swapaxes(total, -1, -2)) / (num_coders - 1)


def nominal_alpha(coincidence: np.ndarray) -> np.ndarray | float:
    """Krippendorff's alpha (nominal) from a coincidence matrix ``(K, K)`` (or a stack ``(..., K, K)``
    of them: one alpha each); NaN without expected disagreement.

    Example:
        >>> round(nominal_alpha(np.array([[2.0, 1.0], [1.0, 4.0]])), 4)   # 1 - 7 * 2 / (64 - 34)
        0.5333
    """
    o = np.asarray(coincidence, dtype=np.float64)
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    expected = n * n - (n_c * n_c).sum(axis=-1)
    trace = np.trace(o, axis1=-2, axis2=-1)
    ok = (n > 1) & (expected > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ok, 1.0 - (n - 1) * (n - trace) / np.where(ok, expected, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def stack_value_confusions(per_image: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Stack images' per-pair ``(values, C)`` (:func:`value_confusion_matrix`, each over its own
    values) into one array, each image over the sorted union of its pairs' values, padded.

    Args:
        per_image: ``N`` images, each a list of ``P`` (one per field pair) ``(values, C)``.

    Returns:
        ``(values, stack)``: ``values`` ``(N, V)`` int64, image ``n``'s sorted values then -1 (padding);
        ``stack`` ``(P, N, V, V)`` int64, pair ``p``'s confusion matrix of image ``n`` over
        ``values[n]`` (zero rows and columns for the padding: classes absent from both maps, which
        every score here ignores). ``V`` is the most values of an image, so memory is ``P N V^2``.

    Example:
        >>> v, s = stack_value_confusions([[(np.array([0, 7]), np.array([[1, 1], [0, 2]]))],
        ...                                [(np.array([3]), np.array([[4]]))]])
        >>> v.tolist(), s[0, 1].tolist()
        ([[0, 7], [3, -1]], [[4, 0], [0, 0]])
    """
    n = len(per_image)
    n_pairs = len(per_image[0]) if n else 0
    unions = [vc[0][0] if len(vc) == 1 else np.unique(np.concatenate([v for v, _ in vc])) for vc in per_image]
    width = max((len(u) for u in unions), default=0)
    values = np.full((n, width), -1, np.int64)
    stack = np.zeros((n_pairs, n, width, width), np.int64)
    for i, (union, vc) in enumerate(zip(unions, per_image)):
        values[i, :len(union)] = union
        for p, (v, c) in enumerate(vc):
            if len(v) == len(union):  # the pair has every value of the image: same order
                stack[p, i, :len(v), :len(v)] = c
            else:
                g = np.searchsorted(union, v)
                stack[p, i][np.ix_(g, g)] = c
    return values, stack


def pixel_alpha(confusion: np.ndarray) -> float:
    """Nominal alpha over pixels of two coders from their confusion matrix (summed over a stack).

    Example:
        >>> round(pixel_alpha(np.array([[1, 1], [0, 2]])), 4)
        0.5333
    """
    c = np.asarray(confusion)
    if c.ndim == 3:
        c = c.sum(axis=0)
    return float(nominal_alpha(coincidence_matrix([c], 2)))
