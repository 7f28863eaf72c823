"""Compiled (numba) kernels behind ``geometry.boxes.batched_box_iou`` and ``batched_self_pairs``.

Private: call the functions in ``geometry.boxes``, which validate input and allocate outputs.
Kernels run with ``error_model="numpy"`` (Python's ZeroDivisionError checks block SIMD; measured
2.5-3.5x) and guard every division explicitly; they write into arrays allocated by numpy, which
was measured to be cheaper than allocating inside compiled code.
"""
from __future__ import annotations

import numpy as np
from numba import njit

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
        any_crowd = False
        for k in range(m):
            any_crowd |= cc[k]
        p = pair_offsets[s]
        for i in range(off1[s], off1[s + 1]):
            bx1, by1, bx2, by2, ba = _load_box(b1, i)
            o = out[p : p + m]
            if any_crowd:
                for k in range(m):
                    iw = min(bx2, uu2[k]) - max(bx1, uu1[k])
                    ih = min(by2, vv2[k]) - max(by1, vv1[k])
                    inter = (iw if iw > 0.0 else 0.0) * (ih if ih > 0.0 else 0.0)
                    # COCO crowd: intersection over the first box's area
                    denom = ba if cc[k] else ba + aa[k] - inter
                    o[k] = inter / denom if denom > 0.0 else 0.0
            else:  # the same formula without the crowd column (measured 3.0 -> 1.6 ns per pair)
                for k in range(m):
                    iw = min(bx2, uu2[k]) - max(bx1, uu1[k])
                    ih = min(by2, vv2[k]) - max(by1, vv1[k])
                    inter = (iw if iw > 0.0 else 0.0) * (ih if ih > 0.0 else 0.0)
                    denom = ba + aa[k] - inter
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
    # GIoU / DIoU / CIoU: c1, c2 are the 7-column tuples of _box_columns; slice-local indices
    # as in the IoU kernels (GIoU measured 6.1 -> 2.7 ns per pair with them)
    x1, y1, x2, y2, a1, t1, ok1 = c1
    for s in range(len(off1) - 1):
        j0, j1 = off2[s], off2[s + 1]
        u1, v1, u2, v2 = c2[0][j0:j1], c2[1][j0:j1], c2[2][j0:j1], c2[3][j0:j1]
        a2, t2, ok2 = c2[4][j0:j1], c2[5][j0:j1], c2[6][j0:j1]
        p = pair_offsets[s]
        for i in range(off1[s], off1[s + 1]):
            bx1, by1, bx2, by2, ba, bt, bok = x1[i], y1[i], x2[i], y2[i], a1[i], t1[i], ok1[i]
            o = out[p : p + j1 - j0]
            # one loop per metric with the mode as a constant: the inlined _pair_metric then has
            # no metric branches left in the loop body
            if mode == 2:
                for k in range(j1 - j0):
                    o[k] = _pair_metric(
                        2, bx1, by1, bx2, by2, ba, bt, u1[k], v1[k], u2[k], v2[k], a2[k], t2[k],
                        False, bok * ok2[k] > 0.0,
                    )
            elif mode == 3:
                for k in range(j1 - j0):
                    o[k] = _pair_metric(
                        3, bx1, by1, bx2, by2, ba, bt, u1[k], v1[k], u2[k], v2[k], a2[k], t2[k],
                        False, bok * ok2[k] > 0.0,
                    )
            elif mode == 4:
                for k in range(j1 - j0):
                    o[k] = _pair_metric(
                        4, bx1, by1, bx2, by2, ba, bt, u1[k], v1[k], u2[k], v2[k], a2[k], t2[k],
                        False, bok * ok2[k] > 0.0,
                    )
            else:
                for k in range(j1 - j0):
                    o[k] = _pair_metric(
                        mode, bx1, by1, bx2, by2, ba, bt, u1[k], v1[k], u2[k], v2[k], a2[k],
                        t2[k], False, bok * ok2[k] > 0.0,
                    )
            p += j1 - j0


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


# One image, one call (``geometry.boxes.box_iou``): the batched kernels above with the image's
# offsets, scratch and columns built here, so the Python side pays one dispatch for five arguments.
# The same kernels as the batched layout, so box_iou and batched_box_iou agree bit for bit.
@njit(cache=True, error_model="numpy")
def _single_image_kernel(mode, b1, b2, crowd2, out):
    n, m = b1.shape[0], b2.shape[0]
    off1 = np.array([0, n], dtype=np.int64)
    off2 = np.array([0, m], dtype=np.int64)
    pair_offsets = np.array([0, n * m], dtype=np.int64)
    if mode == 0 or mode == 1:
        scratch = np.empty((5, m), dtype=np.float64)
        su1, sv1, su2, sv2, sa = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
        if mode == 0:
            _iou_kernel(b1, b2, crowd2, off1, off2, pair_offsets, su1, sv1, su2, sv2, sa, out)
        else:
            _ios_kernel(b1, b2, off1, off2, pair_offsets, su1, sv1, su2, sv2, sa, out)
        return
    ones = np.ones((1, 2), dtype=np.float64)
    k1 = np.empty((7, n), dtype=np.float64)
    k2 = np.empty((7, m), dtype=np.float64)
    _columns_kernel(b1, off1, ones, False, mode == 4, k1)
    _columns_kernel(b2, off2, ones, False, mode == 4, k2)
    c1 = (k1[0], k1[1], k1[2], k1[3], k1[4], k1[5], k1[6])
    c2 = (k2[0], k2[1], k2[2], k2[3], k2[4], k2[5], k2[6])
    _extent_kernel(mode, c1, c2, off1, off2, pair_offsets, out)
