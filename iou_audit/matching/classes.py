"""Class handling shared by the matchers: class-aware ("classwise") or geometry-first matching.

- ``mode="classwise"``: only pairs with the same class may match (COCO evaluates each category on
  its own; Datumaro prefers the same label).
- ``mode="geometry_first"``: shapes are matched on IoU alone, whatever their classes; the class
  is compared afterwards (:func:`label_agreement`), so a box drawn right with the wrong class is a
  *class conflict* and not a miss plus an extra box, as CVAT's quality control reports it.
"""
from __future__ import annotations

import numpy as np

MODES = ("classwise", "geometry_first")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def label_codes(
    labels1: np.ndarray | None,
    labels2: np.ndarray | None,
    n1: int,
    n2: int,
    mode: str,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Integer class codes shared by both sides, and whether the matcher must compare them.

    Labels may be strings or integers; equal labels get equal codes. Without labels, or in
    ``"geometry_first"`` mode, the codes are zeros and the flag is False.

    Example:
        >>> c1, c2, use = label_codes(np.array(["cat", "dog"]), np.array(["dog"]), 2, 1, "classwise")
        >>> c1, c2, use
        (array([0, 1]), array([1]), True)
    """
    check_mode(mode)
    if (labels1 is None) != (labels2 is None):
        raise ValueError("pass both labels1 and labels2, or neither")
    if labels1 is None or mode == "geometry_first":
        return np.zeros(n1, np.int64), np.zeros(n2, np.int64), False
    l1 = np.asarray(labels1).reshape(-1)
    l2 = np.asarray(labels2).reshape(-1)
    if len(l1) != n1:
        raise ValueError(f"labels1 has {len(l1)} entries for {n1} rows")
    if len(l2) != n2:
        raise ValueError(f"labels2 has {len(l2)} entries for {n2} rows")
    both = np.concatenate([l1, l2])
    try:
        _, codes = np.unique(both, return_inverse=True)
    except TypeError as e:  # e.g. None mixed with str in an object array
        raise ValueError(f"labels must all be of one comparable type (str or int): {e}") from e
    codes = codes.astype(np.int64).reshape(-1)
    return codes[:n1], codes[n1:], True


def label_agreement(match1: np.ndarray, labels1: np.ndarray, labels2: np.ndarray) -> np.ndarray:
    """True where row ``i`` of side 1 is matched and has the same class as its match.

    Use after ``mode="geometry_first"`` matching: matched rows where this is False are class
    conflicts; unmatched rows (``match1 == -1``) are False.

    Example:
        >>> label_agreement(np.array([1, -1, 0]), np.array(["cat", "cat", "dog"]),
        ...                 np.array(["cat", "cat"]))
        array([ True, False, False])
    """
    m = np.asarray(match1, dtype=np.int64).reshape(-1)
    l1 = np.asarray(labels1).reshape(-1)
    l2 = np.asarray(labels2).reshape(-1)
    if len(l1) != len(m):
        raise ValueError(f"labels1 has {len(l1)} entries for {len(m)} matches")
    out = np.zeros(len(m), dtype=bool)
    hit = m >= 0
    if hit.any() and m[hit].max() >= len(l2):
        raise ValueError(f"match index {m[hit].max()} out of range for {len(l2)} labels2")
    out[hit] = l1[hit] == l2[m[hit]]
    return out
