"""Optimal one-to-one matching: the assignment with the largest total IoU (Hungarian method).

Only pairs with ``IoU >= iou_thresh`` (and IoU > 0) can be matched; among all one-to-one
assignments of such pairs, the one with the largest sum of IoUs is returned
(``scipy.optimize.linear_sum_assignment`` on the IoU matrix with the other pairs zeroed). This is
what CVAT's quality control (1 - IoU cost), Labelbox ("maximize the total IoU") and kalphacv use.
Unlike greedy COCO matching it ignores confidences and has no crowd rule.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from iou_audit.matching.classes import label_codes


def assign_block(ious: np.ndarray, iou_thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Matched (row, column) pairs of one (n, m) block: max total IoU over pairs >= thresh.

    Internal helper: ``ious`` must already have forbidden pairs set to NaN or 0.
    """
    with np.errstate(invalid="ignore"):
        ok = (ious >= iou_thresh) & (ious > 0)  # NaN compares False: never matched
    if not ok.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # Only rows/columns with a candidate take part: smaller problems, same optimum.
    rows = np.flatnonzero(ok.any(axis=1))
    cols = np.flatnonzero(ok.any(axis=0))
    sub_ok = ok[np.ix_(rows, cols)]
    weight = np.where(sub_ok, ious[np.ix_(rows, cols)], 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    keep = sub_ok[r, c]  # pairs of weight 0 are "no match", not a match
    return rows[r[keep]].astype(np.int64), cols[c[keep]].astype(np.int64)


def hungarian_match(
    ious: np.ndarray,
    iou_thresh: float,
    *,
    labels1: np.ndarray | None = None,
    labels2: np.ndarray | None = None,
    mode: str = "classwise",
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of rows to columns maximizing the total IoU of matched pairs.

    Args:
        ious: (N, M) IoUs of one image.
        iou_thresh: pairs below it (or with IoU 0, or NaN) are never matched.
        labels1, labels2: optional (N,) and (M,) classes; with ``mode="classwise"`` only same-class
            pairs may match, with ``"geometry_first"`` classes are ignored here (compare them
            afterwards with ``label_agreement``).

    Returns:
        ``(row_to_col, col_to_row)`` int64, ``-1`` = unmatched.

    Example:
        >>> ious = np.array([[0.9, 0.6],
        ...                  [0.8, 0.0]])
        >>> hungarian_match(ious, 0.5)
        (array([1, 0]), array([1, 0]))

        Greedy matching would pair row 0 with column 0 (0.9) and leave row 1 alone; the optimal
        assignment takes 0.6 + 0.8 = 1.4 > 0.9.
    """
    m_ious = np.asarray(ious, dtype=np.float64)
    if m_ious.ndim != 2:
        raise ValueError(f"ious must be 2-D, got shape {m_ious.shape}")
    n, m = m_ious.shape
    codes1, codes2, use = label_codes(labels1, labels2, n, m, mode)
    if use:
        m_ious = np.where(codes1[:, None] == codes2[None, :], m_ious, 0.0)
    row_to_col = np.full(n, -1, np.int64)
    col_to_row = np.full(m, -1, np.int64)
    r, c = assign_block(m_ious, float(iou_thresh))
    row_to_col[r] = c
    col_to_row[c] = r
    return row_to_col, col_to_row
