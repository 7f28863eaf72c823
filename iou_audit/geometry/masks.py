"""Exact pixel IoU between FiftyOne-style cropped instance masks (each covering only its box).

Two such masks are compared by placing each in the frame as ``Detection.to_segmentation`` renders
it and counting pixels only inside the overlap of the two placed windows: no full-image canvas is
ever built, per-mask areas are counted once, and pairs whose windows do not overlap cost nothing.

Placement (``rounding="floor"``, the default, is FiftyOne's ``to_segmentation``): the relative
box is clamped to [0, 1], its corners are scaled by the frame size and truncated
(``x0 = int(W * x1)``, ``x1_px = int(W * x2)``); a mask whose shape differs from that window is
resized into it with OpenCV's default (bilinear) interpolation on its ``uint8`` values and then made
boolean (``!= 0``), as ``eta.core.image.render_instance_mask`` does. One deliberate difference:
pixel corners are first snapped to a 1e-6 px grid. ``int(640 * (1 / 640 + 7 / 640))`` is 7, not 8:
about 8% of pixel-aligned boxes hit this float artifact in FiftyOne and get their mask stretched by
one pixel; here they are placed where they belong. ``rounding="round"`` rounds corners half-to-even
instead: that is where FiftyOne's COCO importer cut the masks
(``mask[round(y):round(y + h), round(x):round(x + w)]``), so use it for COCO-imported masks (it
then reproduces pycocotools on the original annotations exactly; ``"floor"`` was off by up to 0.10
IoU on half the overlapping pairs of the COCO val2014 sample); it is also close to how
``fiftyone.utils.iou`` places masks.

Conventions: 0/0 IoU is 0; a degenerate box (zero or negative size, NaN, inf), an empty mask or a
missing one (``None``, as a LabelTable row without a mask holds) has IoU 0 with everything; crowd
IoU (intersection over the area of the *first* mask, as pycocotools does for crowd ground truth)
only for the columns flagged in ``crowd``.

Full-image masks (semantic IoU, Boundary IoU) live in ``dense_masks`` and are re-exported here.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from numba import njit

from iou_audit.geometry.dense_masks import boundary_iou, mask_to_boundary, semantic_iou

__all__ = [
    "ROUNDINGS", "mask_pixel_rects", "cropped_mask_iou", "batched_cropped_mask_iou",
    "semantic_iou", "boundary_iou", "mask_to_boundary",
]

ROUNDINGS = ("floor", "round")


@njit(cache=True, nogil=True)
def _rects_kernel(boxes, sizes, floor, rects, starts):
    """Pixel windows of relative xyxy boxes; degenerate boxes get an empty window."""
    starts[0] = 0
    for i in range(boxes.shape[0]):
        s = 0 if sizes.shape[0] == 1 else i
        w, h = sizes[s, 0], sizes[s, 1]
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        ok = (np.isfinite(x1) and np.isfinite(y1) and np.isfinite(x2) and np.isfinite(y2)
              and x2 > x1 and y2 > y1)
        if ok:
            corners = (min(max(x1, 0.0), 1.0) * w, min(max(y1, 0.0), 1.0) * h,
                       min(max(x2, 0.0), 1.0) * w, min(max(y2, 0.0), 1.0) * h)
            for k in range(4):
                # Relative coordinates carry float noise (7 / 640 * 640 may be 6.999...): a corner
                # is first snapped to a 1e-6 px grid, so floor and half-to-even rounding (Python's
                # round, which FiftyOne's COCO importer uses) see the pixel value that was meant.
                v = np.floor(corners[k] * 1e6 + 0.5) / 1e6
                v = np.floor(v) if floor else np.rint(v)
                rects[i, k] = np.int64(v)
        else:
            for k in range(4):
                rects[i, k] = 0
        starts[i + 1] = starts[i] + (rects[i, 2] - rects[i, 0]) * (rects[i, 3] - rects[i, 1])


def _pixel_rects(boxes, sizes, rounding):
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    bad = np.flatnonzero(~(np.isfinite(sizes) & (sizes > 0)).all(axis=1))
    if len(bad):
        where = "" if len(sizes) == 1 else f" for label rows {bad[:5].tolist()}"
        raise ValueError(
            f"frame_size must be positive finite (width, height) in pixels, got "
            f"{sizes[bad[:5]].tolist()}{where} (mask placement needs the image size)"
        )
    rects = np.empty((len(boxes), 4), np.int64)
    starts = np.empty(len(boxes) + 1, np.int64)
    _rects_kernel(boxes, sizes, rounding == "floor", rects, starts)
    return rects, starts


def mask_pixel_rects(
    boxes: np.ndarray, frame_sizes: np.ndarray, rounding: str = "floor"
) -> np.ndarray:
    """Integer pixel windows ``[x0, y0, x1, y1)`` for masks with relative ``xyxy`` boxes.

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
    b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.ascontiguousarray(frame_sizes, dtype=np.float64).reshape(-1, 2)
    if len(sizes) not in (1, len(b)):
        raise ValueError(f"frame_sizes has {len(sizes)} rows for {len(b)} boxes")
    return _pixel_rects(b, sizes, rounding)[0]


def _resize_like_fiftyone(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``eta.core.image.resize``: cv2's default (bilinear) resize; an empty source gives zeros."""
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        return np.zeros((height, width), dtype=np.uint8)
    import cv2  # opencv-python-headless ships with fiftyone; only needed for mismatched masks

    if mask.dtype == np.bool_:  # cv2 resizes no bool; eta renders masks as uint8 first
        mask = mask.view(np.uint8)
    return cv2.resize(np.ascontiguousarray(mask), (width, height))


_FAST_DTYPES = {np.dtype(bool), np.dtype(np.uint8)}
_FAST_KINDS = {(np.dtype(bool), 2), (np.dtype(np.uint8), 2)}


def _concatenate(masks):
    """All masks raveled into one uint8 0/1 buffer (any nonzero value is foreground)."""
    if not masks:
        return np.zeros(0, np.uint8)
    buf = np.concatenate([m.ravel() for m in masks])
    if buf.dtype == np.bool_:
        return buf.view(np.uint8)
    # 0/255 (or other nonzero) uint8 masks: the kernels AND bytes, so make them 0/1 once here.
    return (buf != 0).view(np.uint8) if len(buf) and buf.max() > 1 else buf


_CHUNK_PIXELS = 1 << 21


def _flatten_masks(masks, rects, starts, name, first=0):
    """One uint8 0/1 buffer holding every mask rendered into its window (row-major)."""
    shapes = list(zip((rects[:, 3] - rects[:, 1]).tolist(), (rects[:, 2] - rects[:, 0]).tolist()))
    try:  # fast path: bool/uint8 arrays already of their window's shape (the common case)
        if [m.shape for m in masks] == shapes and {m.dtype for m in masks} <= _FAST_DTYPES:
            return _concatenate(masks)
    except AttributeError:
        pass
    buffer = np.zeros(int(starts[-1]), dtype=np.uint8)
    for i, (mask, (h, w)) in enumerate(zip(masks, shapes)):
        if h == 0 or w == 0 or mask is None:  # no window or no mask: an empty mask (IoU 0)
            continue
        m = np.asarray(mask)
        if m.ndim == 3 and m.shape[2] == 1:
            m = m[:, :, 0]
        if m.ndim != 2:
            raise ValueError(f"{name}[{first + i}] must be a 2-D mask, got shape {m.shape}")
        # np.asarray(..., uint8) is what eta's render_instance_mask does (floats truncate).
        m = np.asarray(m, dtype=np.uint8)
        if m.shape != (h, w):
            m = _resize_like_fiftyone(m, w, h)
        buffer[starts[i] : starts[i + 1]] = (m != 0).ravel()
    return buffer


@njit(cache=True, nogil=True)
def _areas(buf, starts):
    out = np.zeros(len(starts) - 1, np.int64)
    for i in range(len(starts) - 1):
        # Loop over a slice from 0: provably non-negative indices let LLVM vectorize (~30x).
        seg = buf[starts[i] : starts[i + 1]]
        total = 0
        for k in range(len(seg)):
            total += seg[k]
        out[i] = total
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _mask_iou_kernel(buf1, st1, r1, buf2, st2, r2, off1, off2, pair_off, crowd2, out):
    """IoU of each same-sample pair, counting shared pixels only inside the windows' overlap."""
    area1 = _areas(buf1, st1)
    area2 = _areas(buf2, st2)
    for s in range(len(off1) - 1):
        n2 = off2[s + 1] - off2[s]
        for i in range(off1[s], off1[s + 1]):
            ax0, ay0, ax1, ay1 = r1[i, 0], r1[i, 1], r1[i, 2], r1[i, 3]
            base = pair_off[s] + (i - off1[s]) * n2 - off2[s]
            for j in range(off2[s], off2[s + 1]):
                bx0, by0, bx1, by1 = r2[j, 0], r2[j, 1], r2[j, 2], r2[j, 3]
                ox0, ox1 = max(ax0, bx0), min(ax1, bx1)
                oy0, oy1 = max(ay0, by0), min(ay1, by1)
                inter = 0
                if ox1 > ox0 and oy1 > oy0 and area1[i] > 0 and area2[j] > 0:
                    width = ox1 - ox0
                    for y in range(oy0, oy1):
                        p = st1[i] + (y - ay0) * (ax1 - ax0) + (ox0 - ax0)
                        q = st2[j] + (y - by0) * (bx1 - bx0) + (ox0 - bx0)
                        # Row slices indexed from 0 vectorize; buf1[p + k] would not (numba's
                        # negative-index check on p + k blocks it, ~30x slower).
                        row1, row2 = buf1[p : p + width], buf2[q : q + width]
                        row = 0
                        for k in range(width):
                            row += row1[k] & row2[k]  # 0/1 bytes: AND counts
                        inter += row
                union = area1[i] if crowd2[j] else area1[i] + area2[j] - inter
                out[base + j] = inter / union if union > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _single_image_kernel(b1, b2, sizes, floor, shapes, buf, crowd2, out):
    """Fast path of :func:`cropped_mask_iou`: one compiled call; False if a mask needs resizing."""
    n1, n2 = b1.shape[0], b2.shape[0]
    r1, st1 = np.empty((n1, 4), np.int64), np.empty(n1 + 1, np.int64)
    r2, st2 = np.empty((n2, 4), np.int64), np.empty(n2 + 1, np.int64)
    _rects_kernel(b1, sizes, floor, r1, st1)
    _rects_kernel(b2, sizes, floor, r2, st2)
    for i in range(n1 + n2):
        r = r1[i] if i < n1 else r2[i - n1]
        if shapes[i, 0] != r[3] - r[1] or shapes[i, 1] != r[2] - r[0]:
            return False
    off1, off2 = np.array([0, n1], np.int64), np.array([0, n2], np.int64)
    pair_off = np.array([0, n1 * n2], np.int64)
    _mask_iou_kernel(buf[: st1[n1]], st1, r1, buf[st1[n1] :], st2, r2, off1, off2, pair_off,
                     crowd2, out)
    return True


def _check_offsets(offsets, n, name):
    off = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
    if len(off) < 1 or off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
        raise ValueError(
            f"{name} must start at 0, be non-decreasing and end at {n}, got {off.tolist()}"
        )
    return off


def _crowd_flags(crowd, n, name):
    if crowd is None:
        return np.zeros(n, np.bool_)
    flags = np.ascontiguousarray(crowd, dtype=np.bool_).reshape(-1)
    if len(flags) != n:
        raise ValueError(f"{name} has {len(flags)} entries for {n} masks")
    return flags


def _boxes(boxes, n, name):
    b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) != n:
        raise ValueError(f"{name}: got {n} masks for {len(b)} boxes")
    return b


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
    """Cropped-mask IoU of all same-sample pairs of two flattened tables (the batched layout).

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
    b1, b2 = _boxes(boxes1, len(masks1), "masks1"), _boxes(boxes2, len(masks2), "masks2")
    off1 = _check_offsets(offsets1, len(b1), "offsets1")
    off2 = _check_offsets(offsets2, len(b2), "offsets2")
    if len(off1) != len(off2):
        raise ValueError(f"offsets1 has {len(off1) - 1} samples, offsets2 has {len(off2) - 1}")
    n_samples = len(off1) - 1
    sizes = np.ascontiguousarray(frame_sizes, dtype=np.float64)
    if sizes.shape == (2,):
        sizes1 = sizes2 = sizes.reshape(1, 2)
    elif sizes.shape == (n_samples, 2):
        bad = np.flatnonzero(~(np.isfinite(sizes) & (sizes > 0)).all(axis=1))
        if len(bad):
            raise ValueError(
                f"frame_sizes must be positive finite (width, height) in pixels; samples "
                f"{bad[:5].tolist()} have {sizes[bad[:5]].tolist()} (mask placement needs them)"
            )
        sizes1 = np.repeat(sizes, np.diff(off1), axis=0)
        sizes2 = np.repeat(sizes, np.diff(off2), axis=0)
    else:
        raise ValueError(f"frame_sizes must be (2,) or ({n_samples}, 2), got {sizes.shape}")
    r1, st1 = _pixel_rects(b1, sizes1, rounding)
    r2, st2 = _pixel_rects(b2, sizes2, rounding)
    pair_off = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(np.diff(off1) * np.diff(off2), out=pair_off[1:])
    values = np.empty(int(pair_off[-1]), dtype=np.float64)
    flags = _crowd_flags(crowd2, len(b2), "crowd2")
    # Samples go through in chunks of about _CHUNK_PIXELS mask pixels, so the flattened masks stay
    # in cache (one buffer for a whole large batch ran 3x slower at 512 x 512).
    pixels = np.cumsum(st1[off1[1:]] - st1[off1[:-1]] + st2[off2[1:]] - st2[off2[:-1]])
    sa = 0
    while sa < n_samples:
        done = pixels[sa - 1] if sa else 0
        sb = max(int(np.searchsorted(pixels, done + _CHUNK_PIXELS, side="right")), sa + 1)
        i0, i1, j0, j1 = off1[sa], off1[sb], off2[sa], off2[sb]
        c_st1, c_st2 = st1[i0 : i1 + 1] - st1[i0], st2[j0 : j1 + 1] - st2[j0]
        buf1 = _flatten_masks(masks1[i0:i1], r1[i0:i1], c_st1, "masks1", first=i0)
        buf2 = _flatten_masks(masks2[j0:j1], r2[j0:j1], c_st2, "masks2", first=j0)
        _mask_iou_kernel(buf1, c_st1, r1[i0:i1], buf2, c_st2, r2[j0:j1], off1[sa : sb + 1] - i0,
                         off2[sa : sb + 1] - j0, pair_off[sa : sb + 1] - pair_off[sa],
                         flags[j0:j1], values[pair_off[sa] : pair_off[sb]])
        sa = sb
    return values, pair_off


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
        >>> cropped_mask_iou([full], [[0, 0, .5, .5]],
        ...                  [ring, full], [[0, 0, .5, .5], [.25, .25, .75, .75]], (4, 4)).round(4)
        array([[0.75  , 0.1429]])
        >>> cropped_mask_iou([full], [[0, 0, .5, .5]], [full], [[.25, .25, .75, .75]], (4, 4),
        ...                  crowd=[True]).tolist()
        [[0.25]]
    """
    n, m = len(masks1), len(masks2)
    b1, b2 = _boxes(boxes1, n, "masks1"), _boxes(boxes2, m, "masks2")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if len(frame_size) != 2 or not all(math.isfinite(v) and v > 0 for v in frame_size):
        raise ValueError(f"frame_size must be positive finite (width, height), got {frame_size!r}")
    sizes = np.array(frame_size, dtype=np.float64).reshape(1, 2)
    out = np.empty((n, m), dtype=np.float64)
    flags = _crowd_flags(crowd, m, "crowd")
    masks = [*masks1, *masks2]
    try:  # one compiled call when every mask is 2-D bool/uint8 and already of its window's shape
        if {(k.dtype, k.ndim) for k in masks} <= _FAST_KINDS:
            shapes = np.fromiter(itertools.chain.from_iterable([k.shape for k in masks]), np.int64)
            if _single_image_kernel(b1, b2, sizes, rounding == "floor", shapes.reshape(-1, 2),
                                    _concatenate(masks), flags, out.reshape(-1)):
                return out
    except AttributeError:  # None or non-array masks: the general path converts or names them
        pass
    r1, st1 = _pixel_rects(b1, sizes, rounding)
    r2, st2 = _pixel_rects(b2, sizes, rounding)
    buf1 = _flatten_masks(masks1, r1, st1, "masks1")
    buf2 = _flatten_masks(masks2, r2, st2, "masks2")
    off = np.array([[0, n], [0, m], [0, n * m]], dtype=np.int64)
    _mask_iou_kernel(buf1, st1, r1, buf2, st2, r2, off[0], off[1], off[2], flags, out.reshape(-1))
    return out
