"""Finding rows of the keypoint audits (the shared finding shape) and small column helpers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.keypoints.objects import KeypointObjects


def nanmean_columns(x: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN for a column without values (no warning).

    Example:
        >>> nanmean_columns(np.array([[1.0, np.nan], [3.0, np.nan]])).tolist()
        [2.0, nan]
    """
    n = np.isfinite(x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), np.nan)


def ids_at(other_table, rows: np.ndarray) -> list:
    """Label ids of ``other_table`` at ``rows``, "" where a row is -1 (no counterpart)."""
    ids = np.asarray(other_table.label_id, dtype=object)
    out = np.full(len(rows), "", dtype=object)
    hit = rows >= 0
    out[hit] = ids[rows[hit]]
    return out.tolist()


def finding_frame(kind, objs: KeypointObjects, rows, other: KeypointObjects, other_rows, score, oks_value,
                  detail) -> pd.DataFrame:
    """Finding rows of one kind: on ``objs``' labels at ``rows``, the counterpart in ``other`` at
    ``other_rows`` (-1: none); ``iou`` holds the pair's OKS."""
    t, o = objs.table, other.table
    rows = np.asarray(rows, dtype=np.int64)
    other_rows = np.asarray(other_rows, dtype=np.int64)
    return pd.DataFrame({
        "kind": kind, "sample_id": t.sample_ids[t.sample_index[rows]] if len(rows) else [],
        "field": t.field, "label_id": t.label_id[rows] if len(rows) else [],
        "other_field": np.where(other_rows >= 0, o.field, ""), "other_label_id": ids_at(o, other_rows),
        "label": t.label[rows] if len(rows) else [], "score": np.asarray(score, dtype=np.float64),
        "iou": np.asarray(oks_value, dtype=np.float64), "detail": list(detail),
    })
