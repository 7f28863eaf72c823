"""Pairwise geometry and one-to-one matching between two annotators, over a batch of samples.

Both tables share sample order (``offsets`` of length S+1), so annotator A's sample ``s`` is
compared with annotator B's sample ``s``. Matching is *geometry first* (as CVAT does): classes
are ignored while pairing shapes and compared afterwards, so "same object, other class" becomes a
class conflict rather than a missing plus an extra object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from iou_audit.geometry.boxes import box_iou

GEOMETRIES = ("box", "mask", "polygon")
METHODS = ("hungarian", "greedy")


@dataclass
class PairMatch:
    """Matching of annotator ``a`` against annotator ``b`` (global row indices, -1 unmatched).

    ``values``/``pair_offsets`` hold every same-sample IoU block (batched layout): sample ``s``'s
    block is ``values[pair_offsets[s]:pair_offsets[s+1]].reshape(n_a_s, n_b_s)``.
    """

    a: int
    b: int
    values: np.ndarray
    pair_offsets: np.ndarray
    match_a: np.ndarray  # (La,) row in b or -1
    iou_a: np.ndarray  # (La,) IoU with the match (0 when unmatched)
    match_b: np.ndarray  # (Lb,) row in a or -1
    iou_b: np.ndarray


def pick_geometry(tables, geometry: str = "auto") -> str:
    """``"mask"`` if every table carries masks, ``"polygon"`` if polygons, else ``"box"``.

    Example:
        >>> from types import SimpleNamespace as T
        >>> pick_geometry([T(masks=None, polygons=None)])
        'box'
    """
    if geometry != "auto":
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be 'auto' or one of {GEOMETRIES}, got {geometry!r}")
        return geometry
    if all(getattr(t, "masks", None) is not None for t in tables):
        return "mask"
    if all(getattr(t, "polygons", None) is not None for t in tables):
        return "polygon"
    return "box"


def _block_offsets(off_a: np.ndarray, off_b: np.ndarray) -> np.ndarray:
    sizes = np.diff(off_a) * np.diff(off_b)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def pair_ious(ta, tb, geometry: str = "box") -> tuple[np.ndarray, np.ndarray]:
    """Every same-sample IoU between two annotators' labels, batched layout.

    Example:
        >>> from types import SimpleNamespace as T
        >>> ta = T(offsets=np.array([0, 1]), box=np.array([[0, 0, .5, .5]]))
        >>> tb = T(offsets=np.array([0, 2]), box=np.array([[0, 0, .5, .5], [.5, .5, 1, 1]]))
        >>> pair_ious(ta, tb)
        (array([1., 0.]), array([0, 2]))
    """
    off_a = np.asarray(ta.offsets, dtype=np.int64)
    off_b = np.asarray(tb.offsets, dtype=np.int64)
    if len(off_a) != len(off_b):
        raise ValueError(f"annotator tables cover different sample counts: {len(off_a) - 1} vs {len(off_b) - 1}")
    if geometry == "box":
        try:  # compiled batched kernel when the geometry layer provides it
            from iou_audit.geometry.boxes import batched_box_iou
        except ImportError:
            batched_box_iou = None
        if batched_box_iou is not None:
            values, pair_offsets = batched_box_iou(ta.box, off_a, tb.box, off_b, metric="iou")
            return np.asarray(values, dtype=np.float64), np.asarray(pair_offsets, dtype=np.int64)
    pair_offsets = _block_offsets(off_a, off_b)
    values = np.zeros(pair_offsets[-1], dtype=np.float64)
    nonempty = np.flatnonzero((np.diff(off_a) > 0) & (np.diff(off_b) > 0))
    for s in nonempty:
        ra = slice(off_a[s], off_a[s + 1])
        rb = slice(off_b[s], off_b[s + 1])
        values[pair_offsets[s]:pair_offsets[s + 1]] = _block(ta, tb, ra, rb, s, geometry).ravel()
    return values, pair_offsets


def _block(ta, tb, ra: slice, rb: slice, s: int, geometry: str) -> np.ndarray:
    if geometry == "box":
        return box_iou(ta.box[ra], tb.box[rb])
    if geometry == "polygon":
        from iou_audit.geometry.polygons import polygon_iou

        return np.asarray(polygon_iou(ta.polygons[ra], tb.polygons[rb]))
    from iou_audit.geometry.masks import cropped_mask_iou

    frame = (int(ta.width[s]), int(ta.height[s]))
    if not (frame[0] > 0 and frame[1] > 0):
        raise ValueError(f"mask IoU needs the image size; sample {s} has width/height {frame} (compute metadata)")
    return np.asarray(cropped_mask_iou(ta.masks[ra], ta.box[ra], tb.masks[rb], tb.box[rb], frame))


def match_blocks(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    off_a: np.ndarray,
    off_b: np.ndarray,
    iou_thresh: float = 0.5,
    method: str = "hungarian",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching inside every sample's IoU block; pairs need IoU >= ``iou_thresh``.

    ``"hungarian"`` maximises the summed IoU of the accepted pairs (entries below the threshold
    count as 0, as CVAT and kalphacv do); ``"greedy"`` takes pairs by decreasing IoU (Datumaro).

    Returns ``(match_a, iou_a, match_b, iou_b)`` with global row indices, -1 when unmatched.

    Example:
        >>> v = np.array([0.6, 0.55, 0.9, 0.0])  # one sample, 2 x 2
        >>> match_blocks(v, np.array([0, 4]), np.array([0, 2]), np.array([0, 2]))[0]
        array([1, 0])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    off_a = np.asarray(off_a, dtype=np.int64)
    off_b = np.asarray(off_b, dtype=np.int64)
    match_a = np.full(off_a[-1], -1, dtype=np.int64)
    match_b = np.full(off_b[-1], -1, dtype=np.int64)
    iou_a = np.zeros(off_a[-1])
    iou_b = np.zeros(off_b[-1])
    n_a, n_b = np.diff(off_a), np.diff(off_b)
    # Only samples with at least one pair above the threshold need a solver call.
    above = values >= iou_thresh
    cum = np.concatenate([[0], np.cumsum(above)])
    hits = cum[pair_offsets[1:]] - cum[pair_offsets[:-1]]
    for s in np.flatnonzero(hits > 0):
        block = values[pair_offsets[s]:pair_offsets[s + 1]].reshape(n_a[s], n_b[s])
        gain = np.where(block >= iou_thresh, block, 0.0)
        if method == "hungarian":
            rows, cols = linear_sum_assignment(gain, maximize=True)
        else:
            rows, cols = _greedy(gain)
        keep = gain[rows, cols] > 0
        rows, cols = rows[keep], cols[keep]
        ga, gb = rows + off_a[s], cols + off_b[s]
        match_a[ga], match_b[gb] = gb, ga
        iou_a[ga] = iou_b[gb] = block[rows, cols]
    return match_a, iou_a, match_b, iou_b


def _greedy(gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-gain, axis=None, kind="stable")
    used_r, used_c, rows, cols = set(), set(), [], []
    for flat in order:
        r, c = divmod(int(flat), gain.shape[1])
        if gain[r, c] <= 0:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r), used_c.add(c), rows.append(r), cols.append(c)
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def match_all_pairs(tables, iou_thresh: float = 0.5, method: str = "hungarian", geometry: str = "box") -> list[PairMatch]:
    """Match every annotator pair ``a < b``; returns one :class:`PairMatch` per pair."""
    out = []
    for a in range(len(tables)):
        for b in range(a + 1, len(tables)):
            values, pair_offsets = pair_ious(tables[a], tables[b], geometry)
            m = match_blocks(values, pair_offsets, tables[a].offsets, tables[b].offsets, iou_thresh, method)
            out.append(PairMatch(a, b, values, pair_offsets, *m))
    return out


def lookup_iou(pm: PairMatch, off_a: np.ndarray, off_b: np.ndarray, sample: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """IoU of given (row in a, row in b) pairs of the same sample, read from the stored blocks."""
    n_b = np.diff(off_b)[sample]
    idx = pm.pair_offsets[sample] + (rows_a - off_a[sample]) * n_b + (rows_b - off_b[sample])
    return pm.values[idx] if len(idx) else np.zeros(0)
