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
from numba import njit

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


# ----------------------------------------------------------------------------------------------
# Batched layout: boxes of many images flattened with per-image offsets (docs/ARCHITECTURE.md).
# One compiled pass over all same-image pairs replaces a Python loop of per-image box_iou calls.
# The kernels run with error_model="numpy" (Python's ZeroDivisionError checks block SIMD) and
# guard every division explicitly; outputs are allocated by numpy, which was measured to be
# cheaper than allocating inside the compiled function.
# ----------------------------------------------------------------------------------------------
_METRIC_CODES = {"iou": 0, "ios": 1, "giou": 2, "diou": 3, "ciou": 4}
_FOUR_OVER_PI2 = 4.0 / np.pi**2


@njit(cache=True, error_model="numpy", inline="always")
def _pair_metric(mode, bx1, by1, bx2, by2, ba, bt, u1, v1, u2, v2, a2, t2, crowd, ok):
    """One pair's value; ``ba``/``a2`` areas, ``bt``/``t2`` arctan(w/h), ``ok`` both valid."""
    iw = max(min(bx2, u2) - max(bx1, u1), 0.0)
    ih = max(min(by2, v2) - max(by1, v1), 0.0)
    inter = iw * ih
    if mode == 1:  # intersection over the smaller box
        small = min(ba, a2)
        return inter / small if ok and small > 0.0 else 0.0
    union = ba + a2 - inter
    if mode == 0:
        denom = ba if crowd else union  # COCO crowd: intersection over the first box's area
        # degenerate boxes are empty (area 0, no overlap), so ``ok`` only restates the convention
        return inter / denom if ok and denom > 0.0 else 0.0
    iou = inter / union if union > 0.0 else 0.0
    cw = max(bx2, u2) - min(bx1, u1)
    ch = max(by2, v2) - min(by1, v1)
    if mode == 2:
        hull = cw * ch
        val = iou - (hull - union) / hull if hull > 0.0 else iou
    else:
        diag2 = cw * cw + ch * ch
        dx = bx1 + bx2 - u1 - u2
        dy = by1 + by2 - v1 - v2
        dist2 = (dx * dx + dy * dy) / 4.0
        val = iou - dist2 / diag2 if diag2 > 0.0 else iou
        if mode == 4:
            dt = t2 - bt
            v = _FOUR_OVER_PI2 * dt * dt
            denom = 1.0 - iou + v
            alpha = v / denom if denom > 0.0 else 0.0
            val = val - alpha * v
    return val if ok else -1.0


@njit(cache=True, error_model="numpy", inline="always")
def _load_box(b, r):
    """Row ``r`` as (x1, y1, x2, y2, area); a degenerate box (same test as valid_boxes) becomes
    the empty box at the origin, which intersects nothing, so its IoU/IOS come out exactly 0."""
    x1, y1, x2, y2 = b[r, 0], b[r, 1], b[r, 2], b[r, 3]
    ok = (
        np.isfinite(x1) and np.isfinite(y1) and np.isfinite(x2) and np.isfinite(y2)
        and x2 > x1 and y2 > y1
    )
    if not ok:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


# IoU and IOS, the hot paths: per image, the boxes2 block is sanitized once into small scratch
# columns and every box1 runs over them with slice-local indices. Measured here: global indices
# defeated LLVM's vectorizer (9 vs 1 ns per pair), and building full-size columns with numpy
# first cost more than the pair loop itself.
@njit(cache=True, error_model="numpy", inline="always")
def _load_block(b, j0, m, su1, sv1, su2, sv2, sa):
    for k in range(m):
        su1[k], sv1[k], su2[k], sv2[k], sa[k] = _load_box(b, j0 + k)
    return su1[:m], sv1[:m], su2[:m], sv2[:m], sa[:m]


# Two kernels, not one with an ``if ios`` inside: that branch alone doubled the time per pair.
@njit(cache=True, error_model="numpy")
def _iou_kernel(b1, b2, crowd2, off1, off2, pair_offsets, su1, sv1, su2, sv2, sa, out):
    for s in range(len(off1) - 1):
        j0, m = off2[s], off2[s + 1] - off2[s]
        uu1, vv1, uu2, vv2, aa = _load_block(b2, j0, m, su1, sv1, su2, sv2, sa)
        cc = crowd2[j0 : j0 + m]
        p = pair_offsets[s]
        for i in range(off1[s], off1[s + 1]):
            bx1, by1, bx2, by2, ba = _load_box(b1, i)
            o = out[p : p + m]
            for k in range(m):
                iw = min(bx2, uu2[k]) - max(bx1, uu1[k])
                ih = min(by2, vv2[k]) - max(by1, vv1[k])
                inter = (iw if iw > 0.0 else 0.0) * (ih if ih > 0.0 else 0.0)
                # COCO crowd: intersection over the first box's area
                denom = ba if cc[k] else ba + aa[k] - inter
                o[k] = inter / denom if denom > 0.0 else 0.0
            p += m


@njit(cache=True, error_model="numpy")
def _ios_kernel(b1, b2, off1, off2, pair_offsets, su1, sv1, su2, sv2, sa, out):
    for s in range(len(off1) - 1):
        j0, m = off2[s], off2[s + 1] - off2[s]
        uu1, vv1, uu2, vv2, aa = _load_block(b2, j0, m, su1, sv1, su2, sv2, sa)
        p = pair_offsets[s]
        for i in range(off1[s], off1[s + 1]):
            bx1, by1, bx2, by2, ba = _load_box(b1, i)
            o = out[p : p + m]
            for k in range(m):
                iw = min(bx2, uu2[k]) - max(bx1, uu1[k])
                ih = min(by2, vv2[k]) - max(by1, vv1[k])
                inter = (iw if iw > 0.0 else 0.0) * (ih if ih > 0.0 else 0.0)
                small = min(ba, aa[k])
                o[k] = inter / small if small > 0.0 else 0.0
            p += m


@njit(cache=True, error_model="numpy")
def _extent_kernel(mode, c1, c2, off1, off2, pair_offsets, out):
    # GIoU / DIoU / CIoU: c1, c2 are the 7-column tuples of _box_columns
    x1, y1, x2, y2, a1, t1, ok1 = c1
    u1, v1, u2, v2, a2, t2, ok2 = c2
    for s in range(len(off1) - 1):
        p = pair_offsets[s]
        for i in range(off1[s], off1[s + 1]):
            for j in range(off2[s], off2[s + 1]):
                out[p] = _pair_metric(
                    mode, x1[i], y1[i], x2[i], y2[i], a1[i], t1[i], u1[j], v1[j], u2[j], v2[j],
                    a2[j], t2[j], False, ok1[i] * ok2[j] > 0.0,
                )
                p += 1


@njit(cache=True)
def _self_pair_counts(offsets, codes):
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    for s in range(len(offsets) - 1):
        c = 0
        for i in range(offsets[s], offsets[s + 1]):
            for j in range(i + 1, offsets[s + 1]):
                if codes[i] == codes[j]:
                    c += 1
        counts[s] = c
    return counts


@njit(cache=True, error_model="numpy")
def _self_pair_kernel(mode, c, codes, offsets, starts, rows_i, rows_j, out):
    x1, y1, x2, y2, a, t, ok = c
    for s in range(len(offsets) - 1):
        p = starts[s]
        for i in range(offsets[s], offsets[s + 1]):
            for j in range(i + 1, offsets[s + 1]):
                if codes[i] != codes[j]:
                    continue
                rows_i[p] = i
                rows_j[p] = j
                out[p] = _pair_metric(
                    mode, x1[i], y1[i], x2[i], y2[i], a[i], t[i], x1[j], y1[j], x2[j], y2[j],
                    a[j], t[j], False, ok[i] * ok[j] > 0.0,
                )
                p += 1


def _check_offsets(offsets: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if len(off) == 0 or off[0] != 0 or off[-1] != n_rows or np.any(np.diff(off) < 0):
        raise ValueError(
            f"{name} must be non-decreasing, start at 0 and end at the number of boxes ({n_rows}); "
            f"got {len(off)} values starting {off[:3].tolist()} ending {off[-3:].tolist()}"
        )
    return off


@njit(cache=True, error_model="numpy")
def _columns_kernel(b, offsets, sizes, scale, want_atan, cols):
    for s in range(len(offsets) - 1):
        sw = sizes[s, 0] if scale else 1.0
        sh = sizes[s, 1] if scale else 1.0
        for r in range(offsets[s], offsets[s + 1]):
            x1, y1, x2, y2 = b[r, 0] * sw, b[r, 1] * sh, b[r, 2] * sw, b[r, 3] * sh
            # same test as valid_boxes: finite coordinates, positive width and height
            ok = (
                np.isfinite(x1) and np.isfinite(y1) and np.isfinite(x2) and np.isfinite(y2)
                and x2 > x1 and y2 > y1
            )
            if not ok:
                x1 = y1 = x2 = y2 = 0.0
            w, h = x2 - x1, y2 - y1
            cols[0, r], cols[1, r], cols[2, r], cols[3, r] = x1, y1, x2, y2
            cols[4, r] = w * h
            cols[5, r] = np.arctan(w / h) if ok and want_atan else 0.0
            cols[6, r] = 1.0 if ok else 0.0


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
        >>> b2 = np.array([[0, 0, 20, 10], [5, 5, 15, 15], [0, 0, 5, 5]]); off2 = np.array([0, 2, 3])
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
        codes = np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)
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
