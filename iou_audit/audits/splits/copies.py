"""Leaks that need pixels to confirm: the same scene shifted (stage moved, re-cropped) and mirrored
or rotated copies. Candidates come from hash searches (no all-pairs comparison); each candidate is
verified by a pixel correlation, so a hash collision alone never becomes a finding.

Loaders (``load(rows) -> arrays``) read only the candidate images' pixels.
"""
from __future__ import annotations

import numpy as np

from iou_audit.audits.splits.hashing import CENTER_WINDOW, DIHEDRAL, WINDOW_GRID, dihedral
from iou_audit.audits.splits.index import query_pairs
from iou_audit.audits.splits.leaks import LeakPairs, cross_split

# How two images relate under each symmetry, independent of which side is the copy.
RELATION = {"hflip": "mirrored left-right", "vflip": "mirrored top-bottom", "rot180": "rotated 180-degree",
            "transpose": "transposed", "antitranspose": "transposed", "rot90": "rotated 90-degree",
            "rot270": "rotated 90-degree"}


def _drop(lo, hi, n, exclude):
    """Mask of (lo, hi) pairs not in ``exclude``."""
    if exclude is None or not len(exclude):
        return np.ones(len(lo), dtype=bool)
    return ~np.isin(lo * n + hi, np.minimum(exclude.i, exclude.j) * n + np.maximum(exclude.i, exclude.j))


def shifted_leaks(window_hashes: np.ndarray, split: np.ndarray, radius: int, min_correlation: float,
                  load_windows, exclude: LeakPairs | None = None) -> LeakPairs:
    """Pairs in different splits that show the same scene shifted (stage moved, re-cropped).

    Candidates: the centre-window pHash of one image within ``radius`` bits of any window pHash of
    the other (``query_pairs``: multi-index search, not all pairs). Verified with pixels: the
    Pearson correlation of the centre window with the best-aligned window of the other image
    (``load_windows(rows) -> (len(rows), 81, 1024)`` normalised windows) must reach
    ``min_correlation``. Pairs in ``exclude`` (already exact or near leaks) are left out.
    Score = that correlation.

    The window grid leaves up to 2.1 % of the side misaligned: scenes made of large structures
    (cells, objects) keep their correlation, fine textures lose it and may be missed.

    Example (two 144 x 144 views of one smooth random scene, the second moved by 11 and 7 pixels):
        >>> from scipy.ndimage import gaussian_filter
        >>> from iou_audit.audits.splits.hashing import normalised_windows, window_hashes_from_gray
        >>> scene = gaussian_filter(np.random.default_rng(0).uniform(0, 255, (200, 200)), 6)
        >>> thumbs = np.stack([scene[20:164, 20:164], scene[27:171, 31:175], scene[50:194, 0:144][::-1]])
        >>> p = shifted_leaks(window_hashes_from_gray(thumbs), np.array([0, 1, 1]), 8, 0.8,
        ...                   lambda rows: normalised_windows(thumbs[rows]))
        >>> p.i.tolist(), p.j.tolist(), bool(p.score[0] > 0.95)
        ([0], [1], True)
    """
    wh = np.asarray(window_hashes, np.uint64)
    n, k = wh.shape
    usable = np.flatnonzero(split >= 0)
    q, d, dist = query_pairs(wh[usable, CENTER_WINDOW], wh[usable].ravel(), radius)
    a, b = usable[q], usable[d // k]
    keep = cross_split(a, b, split)
    a, b, dist = a[keep], b[keep], dist[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    keep = _drop(lo, hi, n, exclude)
    lo, hi, key, dist = lo[keep], hi[keep], key[keep], dist[keep]
    key = np.unique(key)
    if not len(key):
        return LeakPairs.build([], [], [])
    best_dist = np.full(len(key), 64)
    np.minimum.at(best_dist, np.searchsorted(key, lo * n + hi), dist)
    i, j = key // n, key % n
    rows = np.unique(np.r_[i, j])
    windows = load_windows(rows)
    pos_i, pos_j = np.searchsorted(rows, i), np.searchsorted(rows, j)
    # centre of each side against every window of the other; keep the better direction
    corr_ij = np.einsum("pd,pkd->pk", windows[pos_i, CENTER_WINDOW], windows[pos_j])
    corr_ji = np.einsum("pd,pkd->pk", windows[pos_j, CENTER_WINDOW], windows[pos_i])
    best = np.maximum(corr_ij.max(axis=1), corr_ji.max(axis=1))
    at = np.where(corr_ij.max(axis=1) >= corr_ji.max(axis=1), corr_ij.argmax(axis=1), corr_ji.argmax(axis=1))
    ok = best >= min_correlation
    step = 100.0 * 2 / 48  # window grid step in % of the image side (WINDOW_STEP / pooled side)
    centre = WINDOW_GRID // 2
    detail = np.array([f"shifted view: window pHash distance {dd}/64 bits, aligned pixel correlation {c:.3f} "
                       f"at offset ({(w % WINDOW_GRID - centre) * step:+.0f}%, {(w // WINDOW_GRID - centre) * step:+.0f}%)"
                       for dd, c, w in zip(best_dist[ok].tolist(), best[ok].tolist(), at[ok].tolist())], dtype=object)
    return LeakPairs.build(i[ok], j[ok], np.clip(best[ok], 0.0, 1.0), detail=detail)


def transformed_leaks(transformed_hashes: np.ndarray, phash: np.ndarray, split: np.ndarray, radius: int,
                      min_correlation: float, load_thumbs, exclude: LeakPairs | None = None) -> LeakPairs:
    """Pairs in different splits where one image is a mirrored or rotated copy of the other.

    Candidates: a symmetry's pHash of image ``a`` (``transformed_hashes`` (S, 7), columns
    ``DIHEDRAL``) within ``radius`` bits of image ``b``'s pHash (``query_pairs``). Verified with
    pixels: the Pearson correlation of ``a`` transformed and ``b`` (``load_thumbs(rows) -> (n, k, k)``
    grayscale thumbnails) must reach ``min_correlation``. Score = that correlation.

    Example (image 1 is image 0 mirrored; image 2 is unrelated):
        >>> from iou_audit.audits.splits.hashing import dihedral_hashes, phash_from_gray
        >>> rng = np.random.default_rng(1)
        >>> a, c = rng.uniform(0, 255, (2, 32, 32))
        >>> thumbs = np.stack([a, a[:, ::-1], c])
        >>> p = transformed_leaks(dihedral_hashes(thumbs), phash_from_gray(thumbs), np.array([0, 1, 1]), 8, 0.9,
        ...                       lambda rows: thumbs[rows])
        >>> p.i.tolist(), p.j.tolist(), p.detail[0].split(":")[0]
        ([0], [1], 'mirrored left-right copy')
    """
    th = np.asarray(transformed_hashes, np.uint64)
    n, n_ops = th.shape
    usable = np.flatnonzero(split >= 0)
    q, d, dist = query_pairs(th[usable].ravel(), np.asarray(phash, np.uint64)[usable], radius)
    a, b, op = usable[q // n_ops], usable[d], q % n_ops
    keep = cross_split(a, b, split) & _drop(np.minimum(a, b), np.maximum(a, b), n, exclude)
    a, b, op, dist = a[keep], b[keep], op[keep], dist[keep]
    if not len(a):
        return LeakPairs.build([], [], [])
    rows = np.unique(np.r_[a, b])
    thumbs = np.asarray(load_thumbs(rows), dtype=np.float64)
    pos_a, pos_b = np.searchsorted(rows, a), np.searchsorted(rows, b)
    corr = np.zeros(len(a))
    for k, name in enumerate(DIHEDRAL):  # one vectorized pass per symmetry
        sel = np.flatnonzero(op == k)
        if len(sel):
            x = dihedral(thumbs[pos_a[sel]], name).reshape(len(sel), -1)
            y = thumbs[pos_b[sel]].reshape(len(sel), -1)
            x = x - x.mean(axis=1, keepdims=True)
            y = y - y.mean(axis=1, keepdims=True)
            den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
            corr[sel] = np.divide((x * y).sum(axis=1), den, out=np.zeros(len(sel)), where=den > 0)
    ok = corr >= min_correlation
    # one finding per pair: the symmetry with the highest correlation
    lo, hi = np.minimum(a, b)[ok], np.maximum(a, b)[ok]
    order = np.lexsort((-corr[ok], hi, lo))
    lo, hi, c, o, dd = lo[order], hi[order], corr[ok][order], op[ok][order], dist[ok][order]
    first = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])] if len(lo) else np.zeros(0, bool)
    detail = np.array([f"{RELATION[DIHEDRAL[k]]} copy: pHash distance {x}/64 bits, pixel correlation {r:.3f}"
                       for k, x, r in zip(o[first].tolist(), dd[first].tolist(), c[first].tolist())], dtype=object)
    return LeakPairs.build(lo[first], hi[first], np.clip(c[first], 0.0, 1.0), detail=detail)
