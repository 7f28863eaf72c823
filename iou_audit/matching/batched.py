"""Matching over many images at once, on the batched layout of ``docs/ARCHITECTURE.md``.

Side 1 (predictions, or annotator A) and side 2 (ground truth, or annotator B) are flat tables with
per-sample ``offsets1`` / ``offsets2``; their IoUs are ``values`` with ``pair_offsets`` (sample ``s``'s
block is ``values[pair_offsets[s]:pair_offsets[s+1]].reshape(n1_s, n2_s)``), e.g. from
``geometry.boxes.batched_box_iou``. Greedy runs as one compiled pass over all samples; Hungarian
takes every candidate pair of samples where no row or column has two candidates (vectorised) and
calls scipy once per remaining sample.
"""
from __future__ import annotations

import numpy as np

from iou_audit.matching.classes import label_codes
from iou_audit.matching.greedy import _flag, run_greedy
from iou_audit.matching.hungarian import assign_block

METHODS = ("greedy", "hungarian")


def check_layout(
    values: np.ndarray, pair_offsets: np.ndarray, offsets1: np.ndarray, offsets2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalize a batched pair layout; errors name the offending sample.

    Example:
        >>> v, po, o1, o2 = check_layout([0.5, 0.1], [0, 2, 2], [0, 1, 1], [0, 2, 3])
        >>> po.tolist(), o1.tolist(), o2.tolist()
        ([0, 2, 2], [0, 1, 1], [0, 2, 3])
    """
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    po = np.ascontiguousarray(pair_offsets, dtype=np.int64).reshape(-1)
    o1 = np.ascontiguousarray(offsets1, dtype=np.int64).reshape(-1)
    o2 = np.ascontiguousarray(offsets2, dtype=np.int64).reshape(-1)
    for name, o in (("pair_offsets", po), ("offsets1", o1), ("offsets2", o2)):
        if len(o) < 1 or o[0] != 0:
            raise ValueError(f"{name} must start with 0 (length S+1), got {o[:3].tolist()}...")
        bad = np.flatnonzero(np.diff(o) < 0)
        if len(bad):
            raise ValueError(f"{name} decreases at sample {bad[0]}")
    if not (len(po) == len(o1) == len(o2)):
        raise ValueError(
            f"pair_offsets, offsets1, offsets2 must have the same length S+1, got "
            f"{len(po)}, {len(o1)}, {len(o2)}"
        )
    sizes = np.diff(o1) * np.diff(o2)
    bad = np.flatnonzero(np.diff(po) != sizes)
    if len(bad):
        s = bad[0]
        raise ValueError(
            f"sample {s}: pair block has {po[s + 1] - po[s]} values, expected "
            f"{np.diff(o1)[s]} x {np.diff(o2)[s]}"
        )
    if len(v) != po[-1]:
        raise ValueError(f"values has {len(v)} entries, pair_offsets ends at {po[-1]}")
    return v, po, o1, o2


def batched_match(
    values: np.ndarray,
    pair_offsets: np.ndarray,
    offsets1: np.ndarray,
    offsets2: np.ndarray,
    scores1: np.ndarray | None,
    iou_thresh: float,
    method: str = "greedy",
    crowd2: np.ndarray | None = None,
    labels1: np.ndarray | None = None,
    labels2: np.ndarray | None = None,
    mode: str = "classwise",
    ignore2: np.ndarray | None = None,
    return_ignored: bool = False,
):
    """One-to-one matching of side 1 to side 2 within every sample.

    Args:
        values, pair_offsets, offsets1, offsets2: the batched layout (see module docstring).
        scores1: (L1,) confidences of side 1 for ``"greedy"`` (``None``: table order); unused by
            ``"hungarian"``.
        iou_thresh: pairs below it never match.
        method: ``"greedy"`` (COCO, pycocotools-exact, crowd-aware) or ``"hungarian"`` (maximum
            total IoU; crowd not supported).
        crowd2: (L2,) bool crowd rows of side 2 (greedy only); ``values`` must already hold crowd
            IoUs in their columns.
        labels1, labels2, mode: classes and ``"classwise"`` / ``"geometry_first"`` (see
            ``matching.classes``).
        ignore2: (L2,) bool rows of side 2 that do not count (greedy only; default ``crowd2``).
        return_ignored: also return ``ignored1``: side-1 rows matched to an ignored row.

    Returns:
        ``(match1, iou1, match2, iou2)``: ``match1[i]`` is the *global* row of side 2 matched to
        row ``i`` (``-1`` unmatched) and ``iou1[i]`` that pair's IoU (0.0 when unmatched); same for
        side 2. A crowd row's ``match2`` is its highest-scoring prediction.

    Example (two images; image 0 has 2 x 2 pairs, image 1 has 1 x 1):
        >>> values = np.array([0.9, 0.6, 0.8, 0.0,   0.3])
        >>> pair_offsets = np.array([0, 4, 5]); offsets1 = np.array([0, 2, 3])
        >>> offsets2 = np.array([0, 2, 3])
        >>> m1, i1, m2, i2 = batched_match(values, pair_offsets, offsets1, offsets2,
        ...                                np.array([0.9, 0.8, 0.7]), 0.5)
        >>> m1, i1, m2
        (array([ 0, -1, -1]), array([0.9, 0. , 0. ]), array([ 0, -1, -1]))
        >>> batched_match(values, pair_offsets, offsets1, offsets2, None, 0.5,
        ...               method="hungarian")[0]
        array([ 1,  0, -1])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    v, po, o1, o2 = check_layout(values, pair_offsets, offsets1, offsets2)
    n1, n2 = int(o1[-1]), int(o2[-1])
    codes1, codes2, use = label_codes(labels1, labels2, n1, n2, mode)
    crowd = _flag(crowd2, n2, "crowd2")
    ignore = crowd.copy() if ignore2 is None else _flag(ignore2, n2, "ignore2")
    if method == "greedy":
        s = None
        if scores1 is not None:
            s = np.asarray(scores1, dtype=np.float64).reshape(-1)
            if len(s) != n1:
                raise ValueError(f"scores1 has {len(s)} entries for {n1} rows of side 1")
        match1, match2, ignored1 = run_greedy(
            v, po, o1, o2, s, iou_thresh, crowd, ignore, codes1, codes2, use
        )
    else:
        if crowd.any() or ignore.any():
            raise ValueError("method='hungarian' is one-to-one: crowd2/ignore2 need method='greedy'")
        match1, match2 = _hungarian_batched(v, po, o1, o2, float(iou_thresh), codes1, codes2, use)
        ignored1 = np.zeros(n1, np.bool_)
    iou1 = _pair_iou(v, po, o1, o2, match1)
    # side 2's IoU: read from its partner's entry (a crowd's partner is its first prediction)
    iou2 = np.zeros(n2, np.float64)
    hit2 = match2 >= 0
    iou2[hit2] = _pair_values(v, po, o1, o2, match2[hit2], np.flatnonzero(hit2))
    out = (match1, iou1, match2, iou2)
    return (*out, ignored1) if return_ignored else out


def _pair_values(v, po, o1, o2, rows1, rows2) -> np.ndarray:
    """IoU of global pairs (rows1[k], rows2[k]); both rows must belong to the same sample."""
    sample = np.searchsorted(o1, rows1, side="right") - 1
    n2 = o2[sample + 1] - o2[sample]
    return v[po[sample] + (rows1 - o1[sample]) * n2 + (rows2 - o2[sample])]


def _pair_iou(v, po, o1, o2, match1) -> np.ndarray:
    out = np.zeros(len(match1), np.float64)
    hit = match1 >= 0
    out[hit] = _pair_values(v, po, o1, o2, np.flatnonzero(hit), match1[hit])
    return out


def _hungarian_batched(v, po, o1, o2, thresh, codes1, codes2, use):
    """Per-sample Hungarian; samples whose candidate pairs form a conflict-free set skip scipy.

    A sample is conflict-free when each of its rows and columns has at most one candidate pair
    (IoU >= thresh, > 0, same class when ``use``). Its candidates are disjoint edges of positive
    weight, so taking all of them is the unique maximum-weight assignment -- exactly what
    ``linear_sum_assignment`` returns there. Only samples with a row or column holding two
    candidates go to scipy (in crowded scenes, a minority: most objects overlap one partner).
    """
    n1, n2 = int(o1[-1]), int(o2[-1])
    match1 = np.full(n1, -1, np.int64)
    match2 = np.full(n2, -1, np.int64)
    with np.errstate(invalid="ignore"):
        cand = (v >= thresh) & (v > 0)
    idx = np.flatnonzero(cand)
    if not len(idx):
        return match1, match2
    # Global (row1, row2) of every candidate pair, from its position inside its sample's block.
    s = np.searchsorted(po, idx, side="right") - 1
    local = idx - po[s]
    width = o2[s + 1] - o2[s]
    r1 = o1[s] + local // width
    r2 = o2[s] + local % width
    if use:
        same = codes1[r1] == codes2[r2]
        idx, s, r1, r2 = idx[same], s[same], r1[same], r2[same]
    conflict_rows = np.bincount(r1, minlength=n1) > 1
    conflict_cols = np.bincount(r2, minlength=n2) > 1
    in_conflict = conflict_rows[r1] | conflict_cols[r2]
    free = ~np.isin(s, np.unique(s[in_conflict]))
    match1[r1[free]] = r2[free]
    match2[r2[free]] = r1[free]
    for t in np.unique(s[~free]):
        a1, b1, a2, b2 = o1[t], o1[t + 1], o2[t], o2[t + 1]
        block = v[po[t]:po[t + 1]].reshape(b1 - a1, b2 - a2)
        if use:
            block = np.where(codes1[a1:b1, None] == codes2[None, a2:b2], block, 0.0)
        r, c = assign_block(block, thresh)
        match1[a1 + r] = a2 + c
        match2[a2 + c] = a1 + r
    return match1, match2
