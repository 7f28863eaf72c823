"""Leak detection on arrays: pairs of samples in different splits that are the same image (bytes or
path), the same picture (perceptual hash, embeddings), the same annotation, or the same group.

Every function takes per-sample arrays (position ``s`` = sample ``s``) plus ``split`` (S,) int codes
(``-1`` = no split: never part of a leak) and returns a :class:`LeakPairs` of sample positions
``(i, j)`` with ``split[i] != split[j]``; ``audit`` turns them into findings.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from iou_audit.audits.splits.index import _ragged_arange, equal_pairs, near_pairs


@dataclass
class LeakPairs:
    """Leaked sample pairs (positions), one entry per pair.

    ``score`` in [0, 1] (higher = more certainly the same thing), ``iou`` (NaN when not a box
    comparison), ``detail`` (object array of strings).
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    iou: np.ndarray
    detail: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    @classmethod
    def build(cls, i, j, score, iou=None, detail=None) -> "LeakPairs":
        i = np.asarray(i, np.int64)
        n = len(i)
        return cls(i, np.asarray(j, np.int64), np.asarray(score, np.float64).reshape(n),
                   np.full(n, np.nan) if iou is None else np.asarray(iou, np.float64).reshape(n),
                   np.asarray(detail if detail is not None else [""] * n, dtype=object).reshape(n))

    def take(self, keep: np.ndarray) -> "LeakPairs":
        return LeakPairs(self.i[keep], self.j[keep], self.score[keep], self.iou[keep], self.detail[keep])


def cross_split(i: np.ndarray, j: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Mask of pairs whose two samples both have a split and the splits differ.

    >>> cross_split(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([0, 1, -1])).tolist()
    [True, False, False]
    """
    si, sj = split[i], split[j]
    return (si >= 0) & (sj >= 0) & (si != sj)


def exact_leaks(content_hash: np.ndarray, filepath: np.ndarray, split: np.ndarray) -> LeakPairs:
    """Pairs in different splits with the same file path or identical file bytes (equal content hash).

    >>> p = exact_leaks(np.array(["h1", "h1", "h2", "h2"], dtype=object),
    ...                 np.array(["a.jpg", "b.jpg", "c.jpg", "c.jpg"], dtype=object), np.array([0, 1, 0, 2]))
    >>> p.i.tolist(), p.j.tolist(), p.detail.tolist()
    ([0, 2], [1, 3], ['identical file bytes', 'same file path'])
    """
    by_path = equal_pairs(np.asarray(filepath, dtype=object))
    by_bytes = equal_pairs(np.asarray(content_hash, dtype=object))
    n = len(split)
    path_keys = by_path[0] * n + by_path[1]
    byte_keys = by_bytes[0] * n + by_bytes[1]
    keys = np.union1d(path_keys, byte_keys)
    i, j = keys // n, keys % n
    keep = cross_split(i, j, split)
    i, j, keys = i[keep], j[keep], keys[keep]
    same_path = np.isin(keys, path_keys)
    detail = np.where(same_path, "same file path", "identical file bytes").astype(object)
    return LeakPairs.build(i, j, np.ones(len(i)), detail=detail)


def near_leaks(phash: np.ndarray, split: np.ndarray, radius: int, exclude: LeakPairs | None = None) -> LeakPairs:
    """Pairs in different splits whose 64-bit perceptual hashes differ in at most ``radius`` bits,
    found with the multi-index hash search (no all-pairs comparison). Pairs in ``exclude`` (the
    exact leaks) are left out. Score = share of equal bits, ``1 - distance / 64``.

    >>> h = np.array([0, 0b111, 0b1111 << 40, 0], np.uint64)  # distances: 3, 4, 0 (same split)
    >>> p = near_leaks(h, np.array([0, 1, 1, 0]), radius=3)
    >>> p.i.tolist(), p.j.tolist(), p.detail.tolist()
    ([0, 1], [1, 3], ['pHash distance 3/64 bits', 'pHash distance 3/64 bits'])
    """
    i, j, dist = near_pairs(np.asarray(phash, np.uint64), radius)
    keep = cross_split(i, j, split)
    if exclude is not None and len(exclude):
        n = len(split)
        keep &= ~np.isin(i * n + j, np.minimum(exclude.i, exclude.j) * n + np.maximum(exclude.i, exclude.j))
    i, j, dist = i[keep], j[keep], dist[keep]
    detail = np.array([f"pHash distance {d}/64 bits" for d in dist.tolist()], dtype=object)
    return LeakPairs.build(i, j, 1.0 - dist / 64.0, detail=detail)


def embedding_leaks(embeddings: np.ndarray, split: np.ndarray, max_distance: float,
                    chunk_rows: int = 1024) -> LeakPairs:
    """Pairs in different splits whose embeddings have cosine distance <= ``max_distance``.

    Exhaustive (chunked matrix products): embeddings are optional and dense, hashing does not
    apply. A zero or non-finite vector never matches. Score = ``1 - distance`` clipped to [0, 1].

    >>> e = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0]])
    >>> p = embedding_leaks(e, np.array([0, 1, 1]), 0.01); p.i.tolist(), p.j.tolist()
    ([0], [1])
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(split):
        raise ValueError(f"embeddings must be (S, D) with S={len(split)} samples, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    usable = np.isfinite(norms) & (norms > 0) & (split >= 0)
    x = np.where(usable[:, None], x / np.where(usable, norms, 1.0)[:, None], 0.0)
    rows_i, rows_j, dists = [], [], []
    for lo in range(0, len(x), chunk_rows):
        dist = 1.0 - x[lo:lo + chunk_rows] @ x.T
        r, c = np.nonzero(dist <= max_distance)
        r = r + lo
        keep = (c > r) & usable[r] & usable[c] & (split[r] != split[c])
        rows_i.append(r[keep])
        rows_j.append(c[keep])
        dists.append(dist[r[keep] - lo, c[keep]])
    i = np.concatenate(rows_i or [np.zeros(0, np.int64)])
    j = np.concatenate(rows_j or [np.zeros(0, np.int64)])
    d = np.clip(np.concatenate(dists or [np.zeros(0)]), 0.0, 2.0)
    detail = np.array([f"embedding cosine distance {v:.4f}" for v in d.tolist()], dtype=object)
    return LeakPairs.build(i, j, np.clip(1.0 - d, 0.0, 1.0), detail=detail)


def group_leaks(groups: np.ndarray, split: np.ndarray, split_names=None) -> LeakPairs:
    """One entry per sample whose group value (video, patient, document...) also occurs in another
    split; its partner ``j`` is the first sample of that group in a different split. Missing
    values (None, "", NaN) are no group.

    >>> p = group_leaks(np.array(["v1", "v1", "v2", "v1", None], dtype=object), np.array([0, 1, 1, 0, 2]))
    >>> p.i.tolist(), p.j.tolist()
    ([0, 1, 3], [1, 0, 1])
    """
    groups = np.asarray(groups, dtype=object)
    present = np.array([g is not None and g == g and g != "" for g in groups], dtype=bool) & (split >= 0)
    rows = np.flatnonzero(present)
    if not len(rows):
        return LeakPairs.build([], [], [])
    _, code = np.unique(groups[rows].astype(str), return_inverse=True)
    # per group: its first sample, and the first sample whose split differs from that one
    order = np.lexsort((rows, code))
    code_s, rows_s, split_s = code[order], rows[order], split[rows[order]]
    start = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]])
    size = np.diff(np.r_[start, len(code_s)])
    group_of = np.repeat(np.arange(len(start)), size)
    first_split = split_s[start][group_of]
    differs = split_s != first_split
    n_groups = len(start)
    hit = np.flatnonzero(differs)
    other_first_pos = np.full(n_groups, len(code_s))
    np.minimum.at(other_first_pos, group_of[hit], hit)
    leaked = other_first_pos < len(code_s)
    keep = leaked[group_of]
    # partner: samples in the first split pair with the group's first other-split sample,
    # the others pair with the group's first sample
    partner_pos = np.where(differs, start[group_of], other_first_pos[group_of].clip(max=len(code_s) - 1))
    i, j = rows_s[keep], rows_s[partner_pos[keep]]
    back = np.argsort(i, kind="stable")
    i, j = i[back], j[back]
    names = split_names if split_names is not None else {}
    value = groups[i]
    detail = np.array([f"group {v!r} is in splits {names.get(split[a], split[a])!r} and "
                       f"{names.get(split[b], split[b])!r}" for v, a, b in zip(value, i, j)], dtype=object)
    return LeakPairs.build(i, j, np.ones(len(i)), detail=detail)


def _layout_keys(offsets, label, box, iou_thresh):
    """Per sample: class-multiset code and 3-D grid cell of (mean box centre x, y, mean log area).

    For two boxes with IoU >= t, their x (and y) centres differ by at most (1 - t) / (1 + t) (times
    the mean width, <= 1) and their log areas by at most -log t; a one-to-one matching moves the
    means by no more than that, so near-identical label sets fall in the same or adjacent cells.
    """
    n_labels = np.diff(offsets)
    sample_index = np.repeat(np.arange(len(n_labels)), n_labels)
    class_names, class_code = np.unique(np.asarray(label, dtype=str), return_inverse=True)
    counts = np.zeros((len(n_labels), max(len(class_names), 1)), np.int64)
    np.add.at(counts, (sample_index, class_code), 1)
    _, multiset = np.unique(counts, axis=0, return_inverse=True)
    b = np.nan_to_num(np.asarray(box, np.float64).reshape(-1, 4))
    denom = np.maximum(n_labels, 1)
    cx = np.bincount(sample_index, (b[:, 0] + b[:, 2]) / 2, len(n_labels)) / denom
    cy = np.bincount(sample_index, (b[:, 1] + b[:, 3]) / 2, len(n_labels)) / denom
    area = np.clip((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-12, None)
    la = np.bincount(sample_index, np.log(area), len(n_labels)) / denom
    centre_cell = (1.0 - iou_thresh) / (1.0 + iou_thresh) * 1.0001
    area_cell = -np.log(iou_thresh) * 1.0001
    cells = np.stack([np.floor(cx / centre_cell), np.floor(cy / centre_cell), np.floor(la / area_cell)], 1)
    return multiset.ravel(), cells.astype(np.int64)


def annotation_candidates(offsets, label, box, split, iou_thresh) -> tuple[np.ndarray, np.ndarray]:
    """Cross-split sample pairs that could hold near-identical label sets: same class multiset and
    layout cells at most one apart (see ``_layout_keys``). Samples without labels are skipped."""
    offsets = np.asarray(offsets, np.int64)
    multiset, cells = _layout_keys(offsets, label, box, iou_thresh)
    usable = np.flatnonzero((np.diff(offsets) > 0) & (split >= 0))
    if len(usable) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    c = cells[usable] - cells[usable].min(axis=0) + 1
    span = c.max(axis=0) + 2
    key = ((multiset[usable] * span[0] + c[:, 0]) * span[1] + c[:, 1]) * span[2] + c[:, 2]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    rows_i, rows_j = [], []
    for dx, dy, dz in product((-1, 0, 1), repeat=3):
        step = (dx * span[1] + dy) * span[2] + dz
        if step < 0:
            continue  # each unordered neighbour pair once: only forward steps (and 0)
        lo = np.searchsorted(sorted_key, key + step, "left")
        hi = np.searchsorted(sorted_key, key + step, "right")
        hits = hi - lo
        q = np.repeat(np.arange(len(key)), hits)
        partner = order[_ragged_arange(lo, hits)]
        if step == 0:
            keep = q < partner
            q, partner = q[keep], partner[keep]
        rows_i.append(usable[q])
        rows_j.append(usable[partner])
    i = np.concatenate(rows_i)
    j = np.concatenate(rows_j)
    keep = cross_split(i, j, split)
    lo_, hi_ = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    n = len(split)
    keys = np.unique(lo_ * n + hi_)
    return keys // n, keys % n


def annotation_leaks(offsets, label, box, split, iou_thresh: float, chunk_pairs: int = 100_000) -> LeakPairs:
    """Pairs in different splits whose label sets are near-identical: the same classes with the same
    counts, and a one-to-one class-wise matching (Hungarian, maximum total IoU) in which every box
    matches at IoU >= ``iou_thresh``. Candidates come from :func:`annotation_candidates`, not all
    pairs. Score = mean matched IoU, ``iou`` = the smallest matched IoU.

    Example (sample 1 copies sample 0's two boxes, moved slightly; sample 2 is elsewhere):
        >>> offsets = np.array([0, 2, 4, 6])
        >>> label = np.array(["a", "b", "b", "a", "a", "b"], dtype=object)
        >>> box = np.array([[.1, .1, .3, .3], [.5, .5, .9, .9], [.5, .5, .9, .905], [.1, .1, .3, .3],
        ...                 [.6, .1, .8, .3], [.1, .5, .5, .9]])
        >>> p = annotation_leaks(offsets, label, box, np.array([0, 1, 1]), 0.85)
        >>> p.i.tolist(), p.j.tolist(), p.iou.round(3).tolist()
        ([0], [1], [0.988])
    """
    from iou_audit.geometry.boxes import batched_box_iou
    from iou_audit.matching import batched_match

    if not 0.0 < float(iou_thresh) < 1.0:
        raise ValueError(f"annotation_iou must be in (0, 1), got {iou_thresh!r}")
    offsets = np.asarray(offsets, np.int64)
    label = np.asarray(label, dtype=object)
    box = np.asarray(box, np.float64).reshape(-1, 4)
    ci, cj = annotation_candidates(offsets, label, box, split, iou_thresh)
    n_labels = np.diff(offsets)
    found_i, found_j, mean_iou, min_iou = [], [], [], []
    for lo in range(0, len(ci), chunk_pairs):
        a, b = ci[lo:lo + chunk_pairs], cj[lo:lo + chunk_pairs]
        na = n_labels[a]
        off = np.r_[0, np.cumsum(na)]  # both sides have the same count (same class multiset)
        rows_a = _ragged_arange(offsets[a], na)
        rows_b = _ragged_arange(offsets[b], na)
        values, pair_offsets = batched_box_iou(box[rows_a], off, box[rows_b], off)
        match1, iou1, _, _ = batched_match(values, pair_offsets, off, off, None, iou_thresh, method="hungarian",
                                           labels1=label[rows_a], labels2=label[rows_b], mode="classwise")
        pair_of_row = np.repeat(np.arange(len(a)), na)
        unmatched = np.bincount(pair_of_row, match1 < 0, len(a))
        ok = unmatched == 0
        total = np.bincount(pair_of_row, iou1, len(a))
        smallest = np.full(len(a), np.inf)
        np.minimum.at(smallest, pair_of_row, iou1)
        found_i.append(a[ok])
        found_j.append(b[ok])
        mean_iou.append(total[ok] / na[ok])
        min_iou.append(smallest[ok])
    i = np.concatenate(found_i or [np.zeros(0, np.int64)])
    j = np.concatenate(found_j or [np.zeros(0, np.int64)])
    mean = np.concatenate(mean_iou or [np.zeros(0)])
    low = np.concatenate(min_iou or [np.zeros(0)])
    detail = np.array([f"{n} labels, same classes; matched IoU mean {m:.3f}, min {s:.3f}"
                       for n, m, s in zip(n_labels[i].tolist(), mean.tolist(), low.tolist())], dtype=object)
    return LeakPairs.build(i, j, mean, iou=low, detail=detail)

