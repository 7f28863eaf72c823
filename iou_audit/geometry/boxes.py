"""Axis-aligned box overlap metrics (IoU, GIoU, DIoU, CIoU, intersection-over-smaller).

Conventions (pinned; every function here follows them):
- boxes are ``xyxy`` float arrays in continuous coordinates: a box ``[0, 0, 10, 10]`` has area 100
  (no "+1" pixel convention);
- a pair whose union is 0 (0/0) has IoU 0; a degenerate box (zero or negative width or height,
  NaN or inf coordinate) has IoU 0 (and GIoU/DIoU/CIoU -1) with every box, itself included; callers
  report degenerate boxes, these functions never raise on them and never return NaN;
- crowd IoU (intersection over the area of the *first* argument, the prediction, as pycocotools
  does for ``iscrowd`` ground truth) is used only for the columns flagged in ``crowd``.

Ranges: IoU and IOS in [0, 1]; GIoU and DIoU in [-1, 1]; CIoU in [-1.5, 1] (its aspect term
``alpha * v`` adds up to 0.5 below DIoU's floor for distant boxes of very different shape).

IoU and GIoU are invariant to scaling x and y independently, so relative coordinates give the same
values as pixels; DIoU and CIoU use distances and aspect ratios, so pass pixel coordinates for them.
"""
from __future__ import annotations

import numpy as np

from iou_audit.geometry._box_kernels import (
    _METRIC_CODES,
    _columns_kernel,
    _extent_kernel,
    _ios_kernel,
    _iou_kernel,
    _self_pair_counts,
    _self_pair_kernel,
    _single_image_kernel,
)

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

    One compiled call (the kernels of :func:`batched_box_iou` on a single image, so both give the
    same values bit for bit); measured 8.5-17x a numpy broadcast of the same formulas at 1,000 x
    1,000 (IoU 17x) and about 10x at every size down to 1 x 1 (one dispatch costs less than
    numpy's many small temporaries), so there is no small-input cutoff
    (``bench/bench_box_iou_single.py --sweep``).

    Example:
        >>> a = np.array([[0, 0, 10, 10]]); b = np.array([[5, 5, 15, 15], [0, 0, 20, 10]])
        >>> box_iou(a, b).round(6)
        array([[0.142857, 0.5     ]])
        >>> box_iou(a, b, metric="giou").round(6)
        array([[-0.079365,  0.5     ]])
        >>> box_iou(a, b, metric="ciou").round(6)
        array([[0.031746, 0.446752]])
        >>> box_iou(a, b, crowd=np.array([True, False])).round(6)  # 25 / area(a) = 0.25
        array([[0.25, 0.5 ]])
        >>> box_iou(a, np.array([[0, 0, 0, 5], [0, np.nan, 1, 1]]), metric="giou")  # degenerate
        array([[-1., -1.]])
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b1 = np.ascontiguousarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.ascontiguousarray(boxes2, dtype=np.float64).reshape(-1, 4)
    n, m = len(b1), len(b2)
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=np.float64)
    flags = np.zeros(m, dtype=np.bool_)
    if crowd is not None and metric == "iou":
        flags = np.ascontiguousarray(crowd, dtype=np.bool_).reshape(-1)
        if len(flags) != m:
            raise ValueError(f"crowd has {len(flags)} entries for {m} boxes2")
    out = np.empty((n, m), dtype=np.float64)  # every entry is written by the kernel
    _single_image_kernel(_METRIC_CODES[metric], b1, b2, flags, out.reshape(-1))
    return out


# Batched layout: boxes of many images flattened with per-image offsets (docs/ARCHITECTURE.md).
# One compiled pass over all same-image pairs (geometry/_box_kernels.py) replaces a Python loop
# of per-image box_iou calls.
def _check_offsets(offsets: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if len(off) == 0 or off[0] != 0 or off[-1] != n_rows or np.any(np.diff(off) < 0):
        raise ValueError(
            f"{name} must be non-decreasing, start at 0 and end at the number of boxes ({n_rows}); "
            f"got {len(off)} values starting {off[:3].tolist()} ending {off[-3:].tolist()}"
        )
    return off


def _box_columns(
    boxes: np.ndarray, offsets: np.ndarray, metric: str, sizes: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """Seven contiguous (L,) columns x1, y1, x2, y2, area, arctan(w/h), valid for the kernels.

    Degenerate boxes become the empty box at the origin: it intersects nothing and has area 0,
    so IoU, crowd IoU and IOS come out exactly 0 without a per-pair validity test, and no NaN or
    inf enters the arithmetic (GIoU/DIoU/CIoU check the valid flag and give -1). With ``sizes``
    and a distance metric, boxes are scaled to pixels of their own image first. Built in one
    compiled pass: numpy's temporaries here cost as much as the pair kernel itself.
    """
    b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale = sizes is not None and metric in ("diou", "ciou")
    sz = np.ones((len(offsets) - 1, 2))
    if scale:
        sz = np.ascontiguousarray(sizes, dtype=np.float64).reshape(-1, 2)
        if len(sz) != len(offsets) - 1:
            raise ValueError(f"sizes has {len(sz)} rows for {len(offsets) - 1} images")
        bad = np.flatnonzero(~(np.isfinite(sz).all(axis=1) & (sz > 0).all(axis=1)))
        if len(bad):
            raise ValueError(
                f"sizes (width, height) must be finite and positive; images {bad[:5].tolist()} "
                f"have {sz[bad[:5]].tolist()} (pass sizes=None to use the given coordinates)"
            )
    cols = np.empty((7, len(b)), dtype=np.float64)
    _columns_kernel(b, offsets, sz, scale, metric == "ciou", cols)
    return tuple(cols)


def batched_pair_rows(
    offsets1: np.ndarray, n_rows1: int, offsets2: np.ndarray, n_rows2: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global row indices of every same-image pair, in the order of the batched layout.

    Returns ``(pair_offsets, rows1, rows2)``: pair ``p`` of image ``s`` (``pair_offsets[s] <= p
    < pair_offsets[s+1]``) is ``(rows1[p], rows2[p])``, row-major within the image's block.

    Example:
        >>> batched_pair_rows(np.array([0, 2, 3]), 3, np.array([0, 1, 3]), 3)
        (array([0, 2, 4]), array([0, 1, 2, 2]), array([0, 0, 1, 2]))
    """
    off1 = _check_offsets(offsets1, n_rows1, "offsets1")
    off2 = _check_offsets(offsets2, n_rows2, "offsets2")
    if len(off1) != len(off2):
        raise ValueError(f"offsets1 has {len(off1) - 1} images but offsets2 has {len(off2) - 1}")
    n2 = np.diff(off2)
    counts = np.diff(off1) * n2
    pair_offsets = np.zeros(len(off1), dtype=np.int64)
    np.cumsum(counts, out=pair_offsets[1:])
    image = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(pair_offsets[-1]) - pair_offsets[image]
    return pair_offsets, off1[image] + local // n2[image], off2[image] + local % n2[image]


def batched_box_iou(
    boxes1: np.ndarray,
    offsets1: np.ndarray,
    boxes2: np.ndarray,
    offsets2: np.ndarray,
    metric: str = "iou",
    crowd2: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Overlap of every same-image pair between two flattened box tables.

    Image ``s`` owns rows ``offsets1[s]:offsets1[s+1]`` of ``boxes1`` and likewise for ``boxes2``;
    its (n1_s, n2_s) block, equal to ``box_iou(boxes1[s rows], boxes2[s rows], metric, crowd)``,
    is ``values[pair_offsets[s]:pair_offsets[s+1]].reshape(n1_s, n2_s)``.

    Args:
        boxes1, boxes2: (L1, 4), (L2, 4) ``xyxy`` boxes (predictions first when crowd is used).
        offsets1, offsets2: (S+1,) int offsets of each image's rows.
        metric: one of ``"iou"``, ``"giou"``, ``"diou"``, ``"ciou"``, ``"ios"``.
        crowd2: optional (L2,) bool; crowd columns get ``inter / area(box1)`` (``metric="iou"``).
        sizes: optional (S, 2) image (width, height) in pixels. DIoU and CIoU depend on the
            coordinate frame, so relative boxes are scaled to pixels with it; IoU, GIoU and IOS
            are scale invariant and ignore it. Without it, values are in the given coordinates.

    Returns:
        ``(values, pair_offsets)``: float64 (sum n1_s * n2_s,) and int64 (S+1,).

    Example:
        >>> b1 = np.array([[0, 0, 10, 10], [0, 0, 5, 5]]); off1 = np.array([0, 1, 2])
        >>> b2 = np.array([[0, 0, 20, 10], [5, 5, 15, 15], [0, 0, 5, 5]])
        >>> off2 = np.array([0, 2, 3])
        >>> values, pair_offsets = batched_box_iou(b1, off1, b2, off2)
        >>> values.round(6), pair_offsets
        (array([0.5     , 0.142857, 1.      ]), array([0, 2, 3]))
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b1 = np.ascontiguousarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.ascontiguousarray(boxes2, dtype=np.float64).reshape(-1, 4)
    off1 = _check_offsets(offsets1, len(b1), "offsets1")
    off2 = _check_offsets(offsets2, len(b2), "offsets2")
    if len(off1) != len(off2):
        raise ValueError(f"offsets1 has {len(off1) - 1} images but offsets2 has {len(off2) - 1}")
    if crowd2 is None or metric != "iou":
        crowd = np.zeros(len(b2), dtype=np.bool_)
    else:
        crowd = np.ascontiguousarray(crowd2, dtype=np.bool_).reshape(-1)
        if len(crowd) != len(b2):
            raise ValueError(f"crowd2 has {len(crowd)} entries for {len(b2)} boxes2")
    pair_offsets = np.zeros(len(off1), dtype=np.int64)
    np.cumsum(np.diff(off1) * np.diff(off2), out=pair_offsets[1:])
    values = np.empty(pair_offsets[-1], dtype=np.float64)
    if metric in ("iou", "ios"):
        scratch = np.empty((5, int(np.diff(off2).max(initial=0))), dtype=np.float64)
        if metric == "iou":
            _iou_kernel(b1, b2, crowd, off1, off2, pair_offsets, *scratch, values)
        else:
            _ios_kernel(b1, b2, off1, off2, pair_offsets, *scratch, values)
    else:
        c1 = _box_columns(b1, off1, metric, sizes)
        c2 = _box_columns(b2, off2, metric, sizes)
        _extent_kernel(_METRIC_CODES[metric], c1, c2, off1, off2, pair_offsets, values)
    return values, pair_offsets


def batched_self_pairs(
    boxes: np.ndarray,
    offsets: np.ndarray,
    metric: str = "iou",
    labels: np.ndarray | None = None,
    same_label_only: bool = False,
    sizes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlap of every pair ``i < j`` of boxes of the same image in one flattened table.

    For duplicate detection and agreement within one label field. Rows are global row indices
    into ``boxes``, ordered by image, then ``i``, then ``j``.

    Args:
        boxes: (L, 4) ``xyxy`` boxes; offsets: (S+1,) per-image offsets.
        metric: as in :func:`box_iou` (crowd is not used here).
        labels: (L,) class labels (any comparable dtype); with ``same_label_only=True`` only
            pairs with equal labels are returned.
        sizes: (S, 2) (width, height) pixels for DIoU/CIoU, as in :func:`batched_box_iou`.

    Returns:
        ``(rows_i, rows_j, values)``: int64, int64, float64, one entry per pair.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60], [0, 0, 1, 1]])
        >>> batched_self_pairs(b, np.array([0, 3, 4]), labels=np.array(["a", "a", "b", "a"]),
        ...                    same_label_only=True)
        (array([0]), array([1]), array([0.5]))
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    off = _check_offsets(offsets, len(b), "offsets")
    if same_label_only:
        if labels is None:
            raise ValueError("same_label_only=True needs labels")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(b):
            raise ValueError(f"labels has {len(labels)} entries for {len(b)} boxes")
        try:
            codes = np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)
        except TypeError:  # unorderable mix (e.g. str and None): equality is all that matters
            index: dict = {}
            codes = np.array([index.setdefault(v, len(index)) for v in labels], dtype=np.int64)
        counts = _self_pair_counts(off, codes)
    else:
        codes = np.zeros(len(b), dtype=np.int64)
        n = np.diff(off)
        counts = n * (n - 1) // 2
    starts = np.zeros(len(off), dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    rows_i = np.empty(starts[-1], dtype=np.int64)
    rows_j = np.empty(starts[-1], dtype=np.int64)
    values = np.empty(starts[-1], dtype=np.float64)
    cols = _box_columns(b, off, metric, sizes)
    _self_pair_kernel(_METRIC_CODES[metric], cols, codes, off, starts, rows_i, rows_j, values)
    return rows_i, rows_j, values
