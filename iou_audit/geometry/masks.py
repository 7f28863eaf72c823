"""Mask IoU: FiftyOne-style cropped instance masks, full-image semantic masks, Boundary IoU.

Instance masks are stored the way FiftyOne stores ``Detection.mask``: a 2-D array covering only the
object's box. Two such masks are compared by placing each in the frame exactly as
``Detection.to_segmentation`` renders it (see :func:`mask_pixel_rects` and :func:`render_cropped_masks`)
and counting pixels only inside the overlap of the two placed windows: no full-image canvas is ever
built, per-mask areas are counted once, and pairs whose windows do not overlap cost nothing.

Placement rule (``rounding="floor"``, the default, is FiftyOne's ``to_segmentation``): the relative box
is clamped to [0, 1], its corners are scaled by the frame size and truncated to integers
(``x0 = int(W * x1)``, ``x1_px = int(W * x2)``); a mask whose shape differs from that window is resized
into it with OpenCV's default bilinear interpolation on ``uint8`` values and then made boolean
(``!= 0``), as ``eta.core.image.render_instance_mask`` does. One deliberate difference: corners within
1e-6 px *below* an integer are snapped up to it. ``int(640 * (1 / 640 + 7 / 640))`` is 7, not 8: about
8% of pixel-aligned boxes hit this float artifact in FiftyOne and get their mask stretched by one pixel;
here they are placed where they belong. ``rounding="round"`` rounds corners to the nearest integer
instead, which is how FiftyOne's COCO importer crops masks (``mask[round(y):round(y + h), ...]``) and
how ``fiftyone.utils.iou`` places them.

Conventions: 0/0 IoU is 0; a degenerate box (zero or negative size, NaN, inf) or an empty mask has
IoU 0 with everything; crowd IoU (intersection over the area of the *first* mask) only for the
columns flagged in ``crowd``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

from iou_audit.geometry.boxes import valid_boxes

ROUNDINGS = ("floor", "round")
# Corners this close below an integer (in pixels) are float artifacts of relative coordinates.
_SNAP_PX = 1e-6


def mask_pixel_rects(
    boxes: np.ndarray, frame_sizes: np.ndarray, rounding: str = "floor"
) -> np.ndarray:
    """Integer pixel windows ``[x0, y0, x1, y1)`` in which masks with relative ``xyxy`` boxes are drawn.

    Args:
        boxes: (L, 4) relative ``xyxy``.
        frame_sizes: (2,) ``(width, height)`` for all rows, or (L, 2) one per row.
        rounding: ``"floor"`` (``Detection.to_segmentation``) or ``"round"`` (COCO importer).

    Returns:
        (L, 4) int64; degenerate boxes get an empty window ``[0, 0, 0, 0]``.

    Example:
        >>> mask_pixel_rects(np.array([[0.1, 0.25, 0.5, 0.75]]), np.array([10, 4]))
        array([[1, 1, 5, 3]])
        >>> mask_pixel_rects(np.array([[1 / 640, 0, 1 / 640 + 7 / 640, 1]]), np.array([640, 1]))
        array([[1, 0, 8, 1]])
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.broadcast_to(np.asarray(frame_sizes, dtype=np.float64).reshape(-1, 2), (len(b), 2))
    if not (np.isfinite(size).all() and (size > 0).all()):
        raise ValueError(f"frame_size must be positive finite (width, height), got {frame_sizes!r}")
    ok = valid_boxes(b)
    clamped = np.clip(np.where(ok[:, None], b, 0.0), 0.0, 1.0)
    px = clamped * np.concatenate([size, size], axis=1)
    if rounding == "floor":
        rects = np.floor(px + _SNAP_PX)
    else:
        rects = np.rint(px)
    rects = rects.astype(np.int64)
    rects[~ok] = 0
    return rects


def render_cropped_masks(
    masks: Sequence[np.ndarray], rects: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten masks into one ``uint8`` 0/1 buffer, each resized to its pixel window as FiftyOne does.

    Args:
        masks: L 2-D arrays (bool or numbers; nonzero after ``uint8`` conversion is foreground).
        rects: (L, 4) windows from :func:`mask_pixel_rects`.

    Returns:
        ``(buffer, starts, areas)``: mask ``i`` is ``buffer[starts[i]:starts[i + 1]]`` reshaped to
        ``(y1 - y0, x1 - x0)``; ``areas`` (L,) int64 foreground pixel counts.

    Example:
        >>> buf, starts, areas = render_cropped_masks([np.ones((2, 2), bool)], np.array([[0, 0, 2, 3]]))
        >>> buf.reshape(3, 2).tolist(), starts.tolist(), areas.tolist()
        ([[1, 1], [1, 1], [1, 1]], [0, 6], [6])
    """
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    if len(masks) != len(rects):
        raise ValueError(f"got {len(masks)} masks for {len(rects)} boxes")
    heights = rects[:, 3] - rects[:, 1]
    widths = rects[:, 2] - rects[:, 0]
    starts = np.zeros(len(rects) + 1, dtype=np.int64)
    np.cumsum(heights * widths, out=starts[1:])
    buffer = np.zeros(int(starts[-1]), dtype=np.uint8)
    for i, mask in enumerate(masks):
        h, w = int(heights[i]), int(widths[i])
        if h == 0 or w == 0:
            continue
        if mask is None:
            raise ValueError(f"mask {i} is None")
        # np.asarray(..., uint8) is what eta's render_instance_mask does (floats truncate, bools -> 0/1).
        m = np.asarray(mask)
        if m.ndim == 3 and m.shape[2] == 1:
            m = m[:, :, 0]
        if m.ndim != 2:
            raise ValueError(f"mask {i} must be 2-D, got shape {m.shape}")
        m = np.asarray(m, dtype=np.uint8)
        if m.shape != (h, w):
            m = _resize_like_fiftyone(m, w, h)
        buffer[starts[i] : starts[i + 1]] = (m != 0).ravel()
    cumulative = np.concatenate([[0], np.cumsum(buffer, dtype=np.int64)])
    areas = cumulative[starts[1:]] - cumulative[starts[:-1]]
    return buffer, starts, areas


def _resize_like_fiftyone(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``eta.core.image.resize``: cv2's default (bilinear) resize; an empty source gives zeros."""
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        return np.zeros((height, width), dtype=np.uint8)
    import cv2  # opencv-python-headless ships with fiftyone; only needed for mismatched masks

    return cv2.resize(mask, (width, height))


@njit(cache=True, nogil=True)
def _overlap_counts(buf1, starts1, rects1, buf2, starts2, rects2, off1, off2, pair_off, out):
    """Foreground pixels shared by each same-sample pair, counted inside the windows' overlap only."""
    for s in range(len(off1) - 1):
        n2 = off2[s + 1] - off2[s]
        for i in range(off1[s], off1[s + 1]):
            ax0, ay0, ax1, ay1 = rects1[i, 0], rects1[i, 1], rects1[i, 2], rects1[i, 3]
            aw = ax1 - ax0
            base = pair_off[s] + (i - off1[s]) * n2
            for j in range(off2[s], off2[s + 1]):
                bx0, by0, bx1, by1 = rects2[j, 0], rects2[j, 1], rects2[j, 2], rects2[j, 3]
                ox0 = max(ax0, bx0)
                ox1 = min(ax1, bx1)
                oy0 = max(ay0, by0)
                oy1 = min(ay1, by1)
                count = 0
                if ox1 > ox0 and oy1 > oy0:
                    bw = bx1 - bx0
                    width = ox1 - ox0
                    for y in range(oy0, oy1):
                        p = starts1[i] + (y - ay0) * aw + (ox0 - ax0)
                        q = starts2[j] + (y - by0) * bw + (ox0 - bx0)
                        row = 0
                        for k in range(width):
                            row += buf1[p + k] & buf2[q + k]
                        count += row
                out[base + (j - off2[s])] = count


def _prepare(masks, boxes, frame_sizes, rounding, name):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(masks) != len(boxes):
        raise ValueError(f"{name}: got {len(masks)} masks for {len(boxes)} boxes")
    rects = mask_pixel_rects(boxes, frame_sizes, rounding)
    buf, starts, areas = render_cropped_masks(masks, rects)
    return buf, starts, rects, areas


def _iou_from_counts(inter, area1, area2, crowd):
    """IoU from intersections and areas; 0/0 -> 0; crowd columns use area1 as the union."""
    union = area1 + area2 - inter
    if crowd is not None:
        union = np.where(crowd, area1, union)
    return np.divide(inter, union, out=np.zeros(inter.shape, np.float64), where=union > 0)


def _check_offsets(offsets, n, name):
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if len(off) < 1 or off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
        raise ValueError(f"{name} must start at 0, be non-decreasing and end at {n}")
    return off


def batched_cropped_mask_iou(
    masks1: Sequence[np.ndarray],
    boxes1: np.ndarray,
    offsets1: np.ndarray,
    masks2: Sequence[np.ndarray],
    boxes2: np.ndarray,
    offsets2: np.ndarray,
    frame_sizes: np.ndarray,
    crowd2: np.ndarray | None = None,
    rounding: str = "floor",
) -> tuple[np.ndarray, np.ndarray]:
    """Cropped-mask IoU of all same-sample pairs of two flattened tables (ARCHITECTURE batched layout).

    Args:
        masks1, boxes1, offsets1: L1 cropped masks, (L1, 4) relative ``xyxy`` boxes and (S+1,)
            offsets: sample ``s`` owns rows ``offsets1[s]:offsets1[s + 1]``.
        masks2, boxes2, offsets2: the same for the second table (ground truth when crowd is used).
        frame_sizes: (S, 2) ``(width, height)`` of each sample in pixels, or (2,) for all.
        crowd2: optional (L2,) bool; flagged rows use intersection / area(mask1) (COCO crowd).
        rounding: see :func:`mask_pixel_rects`.

    Returns:
        ``(values, pair_offsets)``: sample ``s``'s (n1_s, n2_s) block is
        ``values[pair_offsets[s]:pair_offsets[s + 1]].reshape(n1_s, n2_s)``.

    Example:
        >>> sq = np.ones((2, 2), bool)
        >>> v, po = batched_cropped_mask_iou([sq, sq], [[0, 0, .5, .5], [0, 0, .5, .5]], [0, 1, 2],
        ...                                  [sq], [[.25, .25, .75, .75]], [0, 0, 1], [4, 4])
        >>> v.round(4).tolist(), po.tolist()
        ([0.1429], [0, 0, 1])
    """
    off1 = _check_offsets(offsets1, len(masks1), "offsets1")
    off2 = _check_offsets(offsets2, len(masks2), "offsets2")
    if len(off1) != len(off2):
        raise ValueError(f"offsets1 has {len(off1) - 1} samples, offsets2 has {len(off2) - 1}")
    n_samples = len(off1) - 1
    sizes = np.asarray(frame_sizes, dtype=np.float64)
    if sizes.shape == (2,):
        sizes = np.broadcast_to(sizes, (n_samples, 2))
    if sizes.shape != (n_samples, 2):
        raise ValueError(f"frame_sizes must be (2,) or ({n_samples}, 2), got {sizes.shape}")
    rows1 = np.repeat(np.arange(n_samples), np.diff(off1))
    rows2 = np.repeat(np.arange(n_samples), np.diff(off2))
    buf1, st1, r1, a1 = _prepare(masks1, boxes1, sizes[rows1], rounding, "masks1")
    buf2, st2, r2, a2 = _prepare(masks2, boxes2, sizes[rows2], rounding, "masks2")
    pair_off = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(np.diff(off1) * np.diff(off2), out=pair_off[1:])
    inter = np.empty(int(pair_off[-1]), dtype=np.int64)
    _overlap_counts(buf1, st1, r1, buf2, st2, r2, off1, off2, pair_off, inter)
    # Row/column index of every flat pair, to look up the two areas (and crowd) without a Python loop.
    n1, n2 = np.diff(off1), np.diff(off2)
    pair_sample = np.repeat(np.arange(n_samples), n1 * n2)
    local = np.arange(len(inter)) - pair_off[pair_sample]
    n2p = n2[pair_sample]
    gi = off1[pair_sample] + local // np.maximum(n2p, 1)
    gj = off2[pair_sample] + local % np.maximum(n2p, 1)
    crowd = None
    if crowd2 is not None:
        crowd2 = np.asarray(crowd2, dtype=bool).reshape(-1)
        if len(crowd2) != len(masks2):
            raise ValueError(f"crowd2 has {len(crowd2)} entries for {len(masks2)} masks2")
        crowd = crowd2[gj]
    return _iou_from_counts(inter, a1[gi], a2[gj], crowd), pair_off


def cropped_mask_iou(
    masks1: Sequence[np.ndarray],
    boxes1: np.ndarray,
    masks2: Sequence[np.ndarray],
    boxes2: np.ndarray,
    frame_size: tuple[int, int],
    crowd: np.ndarray | None = None,
    rounding: str = "floor",
) -> np.ndarray:
    """Exact pixel IoU between FiftyOne-style cropped instance masks of one image.

    Args:
        masks1: N 2-D masks, each covering its box (predictions when ``crowd`` is used).
        boxes1: (N, 4) relative ``xyxy`` boxes.
        masks2: M 2-D masks (ground truth when ``crowd`` is used).
        boxes2: (M, 4) relative ``xyxy`` boxes.
        frame_size: ``(width, height)`` of the image in pixels.
        crowd: optional (M,) bool; flagged columns use intersection / area(masks1[i]).
        rounding: ``"floor"`` (``Detection.to_segmentation``) or ``"round"`` (COCO importer).

    Returns:
        (N, M) float64.

    Example:
        >>> full = np.ones((2, 2), bool)
        >>> ring = np.array([[1, 1], [1, 0]], bool)
        >>> cropped_mask_iou([full], [[0, 0, .5, .5]], [ring, full], [[0, 0, .5, .5], [.25, .25, .75, .75]],
        ...                  (4, 4)).round(4)
        array([[0.75  , 0.1429]])
        >>> cropped_mask_iou([full], [[0, 0, .5, .5]], [full], [[.25, .25, .75, .75]], (4, 4),
        ...                  crowd=[True]).tolist()
        [[0.25]]
    """
    n, m = len(masks1), len(masks2)
    values, _ = batched_cropped_mask_iou(
        masks1, boxes1, [0, n], masks2, boxes2, [0, m], frame_size,
        crowd2=crowd, rounding=rounding,
    )
    return values.reshape(n, m)


def semantic_iou(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    classes: Sequence[int] | None = None,
    ignore_index: int | None = None,
) -> dict:
    """Per-class IoU and mIoU of two full-image semantic masks (integer class per pixel).

    One confusion matrix from a single ``np.bincount``; pixels whose value is not in ``classes``
    count as "other" (they still add to the union of the class they are confused with), and pixels
    where the ground truth equals ``ignore_index`` are skipped.

    Args:
        gt_mask, pred_mask: 2-D integer arrays of the same shape.
        classes: class values to score; default: every value in either mask except ``ignore_index``.
        ignore_index: ground-truth value to leave out (e.g. 255 "void").

    Returns:
        dict with ``classes`` (K,), ``intersection`` and ``union`` (K,) pixel counts, ``iou`` (K,)
        (0 where the union is 0), ``present`` (K,) bool (union > 0), ``miou`` (mean IoU over present
        classes, 0 if none) and ``confusion`` (K+1, K+1) counts, rows ground truth, columns
        prediction, last row/column "other".

    Example:
        >>> r = semantic_iou(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]))
        >>> r["iou"].tolist(), round(r["miou"], 4)
        ([0.5, 0.6666666666666666], 0.5833)
    """
    gt = np.asarray(gt_mask)
    pred = np.asarray(pred_mask)
    if gt.shape != pred.shape:
        raise ValueError(f"gt_mask shape {gt.shape} != pred_mask shape {pred.shape}")
    for name, a in (("gt_mask", gt), ("pred_mask", pred)):
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"{name} must be a 2-D integer array, got {a.dtype} {a.shape}")
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = gt != ignore_index
        gt, pred = gt[keep], pred[keep]
    if classes is None:
        values = np.union1d(np.unique(gt), np.unique(pred))
        cls = values[values != ignore_index] if ignore_index is not None else values
    else:
        cls = np.asarray(classes, dtype=np.int64).reshape(-1)
        if len(np.unique(cls)) != len(cls):
            raise ValueError(f"classes has duplicates: {cls.tolist()}")
    k = len(cls)
    order = np.argsort(cls, kind="stable")
    sorted_cls = cls[order]

    def to_index(values: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(sorted_cls, values), 0, max(k - 1, 0))
        hit = (sorted_cls[pos] == values) if k else np.zeros(len(values), bool)
        return np.where(hit, order[pos] if k else 0, k)

    confusion = np.bincount(
        to_index(gt) * (k + 1) + to_index(pred), minlength=(k + 1) ** 2
    ).reshape(k + 1, k + 1)
    inter = np.diag(confusion)[:k]
    union = confusion.sum(axis=1)[:k] + confusion.sum(axis=0)[:k] - inter
    iou = np.divide(inter, union, out=np.zeros(k, np.float64), where=union > 0)
    present = union > 0
    miou = float(iou[present].mean()) if present.any() else 0.0
    return {"classes": cls, "intersection": inter, "union": union, "iou": iou,
            "present": present, "miou": miou, "confusion": confusion}


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Boundary band of a binary mask: the mask minus its erosion by ``d = round(ratio * diagonal)``.

    Follows ``mask_to_boundary`` of the Boundary IoU reference code (Cheng et al., CVPR 2021):
    ``d >= 1``; the image is padded with one background pixel so that a mask cut by the image border
    has a boundary there too; erosion is ``d`` iterations of a 3x3 square (a (2d+1)-square).

    Example:
        >>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True
        >>> mask_to_boundary(m, dilation_ratio=0.1).astype(int)[1:5, 1:5].tolist()
        [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]]
    """
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    m = (m != 0).astype(np.uint8)
    h, w = m.shape
    dilation = max(int(round(dilation_ratio * np.sqrt(h**2 + w**2))), 1)
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1 : h + 1, 1 : w + 1]
    return (m - eroded).astype(bool)


def boundary_iou(mask1: np.ndarray, mask2: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU (Cheng et al. 2021) of two full-image binary masks; 0 when both are empty.

    Example:
        >>> a = np.zeros((10, 10), bool); a[2:8, 2:8] = True
        >>> boundary_iou(a, a), boundary_iou(a, np.zeros_like(a))
        (1.0, 0.0)
    """
    a = np.asarray(mask1)
    b = np.asarray(mask2)
    if a.shape != b.shape:
        raise ValueError(f"mask1 shape {a.shape} != mask2 shape {b.shape}")
    ba = mask_to_boundary(a, dilation_ratio)
    bb = mask_to_boundary(b, dilation_ratio)
    union = np.count_nonzero(ba | bb)
    return float(np.count_nonzero(ba & bb) / union) if union else 0.0
