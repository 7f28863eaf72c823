"""Pairwise geometry and one-to-one matching between two annotators, over a batch of samples.

Both tables share sample order (``offsets`` of length S+1), so annotator A's sample ``s`` is
compared with annotator B's sample ``s``. Matching is *geometry first* (as CVAT does): classes
are ignored while pairing shapes and compared afterwards, so "same object, other class" becomes a
class conflict rather than a missing plus an extra object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.matching import batched_match
from iou_audit.overlaps import overlaps
from iou_audit.vocabulary import canonical_geometry, canonical_method


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
    """``"masks"`` if every table carries masks, ``"polygons"`` if polygons, else ``"boxes"``.

    Example:
        >>> from types import SimpleNamespace as T
        >>> pick_geometry([T(masks=None, polygons=None)])
        'boxes'
    """
    geometry = canonical_geometry(geometry)
    if geometry != "auto":
        return geometry
    if all(getattr(t, "masks", None) is not None for t in tables):
        return "masks"
    if all(getattr(t, "polygons", None) is not None for t in tables):
        return "polygons"
    return "boxes"


def pair_ious(ta, tb, geometry: str = "boxes") -> tuple[np.ndarray, np.ndarray]:
    """Every same-sample IoU between two annotators' labels, batched layout.

    Example:
        >>> from types import SimpleNamespace as T
        >>> ta = T(offsets=np.array([0, 1]), box=np.array([[0, 0, .5, .5]]))
        >>> tb = T(offsets=np.array([0, 2]), box=np.array([[0, 0, .5, .5], [.5, .5, 1, 1]]))
        >>> pair_ious(ta, tb)
        (array([1., 0.]), array([0, 2]))
    """
    # A label without a mask is compared by its box (rather than scoring IoU 0 with everything).
    return overlaps(ta, tb, geometry, "iou", missing_mask="box")


def match_blocks(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    off_a: np.ndarray,
    off_b: np.ndarray,
    iou_thresh: float = 0.5,
    method: str = "hungarian",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one, class-blind matching inside every sample's IoU block (``iou_audit.matching``).

    ``"hungarian"`` maximises the summed IoU of pairs with IoU >= ``iou_thresh`` (CVAT, kalphacv);
    ``"greedy"`` is COCO's greedy in annotator a's table order (order-dependent; prefer Hungarian).

    Returns ``(match_a, iou_a, match_b, iou_b)`` with global row indices, -1 when unmatched.

    Example:
        >>> v = np.array([0.6, 0.55, 0.9, 0.0])  # one sample, 2 x 2
        >>> match_blocks(v, np.array([0, 4]), np.array([0, 2]), np.array([0, 2]))[0]
        array([1, 0])
    """
    method = canonical_method(method)
    return batched_match(values, pair_offsets, off_a, off_b, None, iou_thresh, method=method, mode="geometry_first")


def match_all_pairs(tables, iou_thresh: float = 0.5, method: str = "hungarian", geometry: str = "boxes") -> list[PairMatch]:
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
