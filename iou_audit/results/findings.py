"""The finding row: one shape for every audit, so one triage queue can rank them all."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

FINDING_COLUMNS = [
    "audit", "kind", "sample_id", "field", "label_id", "other_field", "other_label_id",
    "other_sample_id", "label", "score", "iou", "detail",
]
FLOAT_COLUMNS = ("score", "iou")
STRING_COLUMNS = tuple(c for c in FINDING_COLUMNS if c not in FLOAT_COLUMNS)


def make_findings(rows: Any = None, **constants: Any) -> pd.DataFrame:
    """Build a findings DataFrame with the fixed columns and dtypes.

    ``rows`` may be None (no findings), a DataFrame, a dict of columns, a list of dicts, or a list
    of tuples in ``FINDING_COLUMNS`` order. ``constants`` fill a column for every row (e.g.
    ``audit="duplicates"``). Missing text is ``""``, missing ``score``/``iou`` is NaN. ``score``
    must lie in [0, 1] (higher = more suspicious).

    Example:
        >>> f = make_findings({"kind": ["duplicate"], "sample_id": ["s1"], "label_id": ["l1"],
        ...                    "score": [0.9], "iou": [0.93]}, audit="duplicates", field="gt")
        >>> f.loc[0, ["audit", "kind", "field", "other_label_id"]].tolist(), float(f.loc[0, "score"])
        (['duplicates', 'duplicate', 'gt', ''], 0.9)
    """
    frame = _as_frame(rows)
    unknown = (set(frame.columns) | set(constants)) - set(FINDING_COLUMNS)
    if unknown:
        raise ValueError(f"unknown finding columns {sorted(unknown)}; allowed: {FINDING_COLUMNS}")
    n = len(frame)
    out = {}
    for col in FINDING_COLUMNS:
        if col in constants:
            values = [constants[col]] * n
        elif col in frame.columns:
            if col in FLOAT_COLUMNS and frame[col].dtype.kind in "fiu":  # numeric already: no per-value pass
                out[col] = pd.Series(frame[col].to_numpy(dtype=np.float64))
                continue
            values = frame[col].tolist()
        else:
            values = [None] * n
        if col in FLOAT_COLUMNS:
            try:
                out[col] = pd.to_numeric(pd.Series(values, dtype=object), errors="raise").astype(np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"finding column {col!r} must be numeric (or None): {e}") from None
        elif set(map(type, values)) <= {str}:  # the usual case: classify types, not every value
            out[col] = pd.Series(values, dtype=object)
        else:
            out[col] = pd.Series(["" if _missing(v) else str(v) for v in values], dtype=object)
    findings = pd.DataFrame(out, columns=FINDING_COLUMNS)
    _check(findings)
    return findings


def concat_findings(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate findings frames (e.g. from batches), keeping the fixed dtypes."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return make_findings()
    return make_findings(pd.concat(frames, ignore_index=True))


def _as_frame(rows: Any) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame(columns=[])
    if isinstance(rows, pd.DataFrame):
        return rows.reset_index(drop=True)
    if isinstance(rows, Mapping):
        return pd.DataFrame(dict(rows))
    rows = list(rows)
    if not rows:
        return pd.DataFrame(columns=[])
    if isinstance(rows[0], Mapping):
        return pd.DataFrame(rows)
    if any(len(r) != len(FINDING_COLUMNS) for r in rows):
        raise ValueError(f"tuple rows must have {len(FINDING_COLUMNS)} values in order {FINDING_COLUMNS}")
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _check(findings: pd.DataFrame) -> None:
    for col in ("audit", "kind"):
        empty = findings[col] == ""
        if empty.any():
            raise ValueError(f"finding row {int(np.flatnonzero(empty)[0])} has no {col!r}")
    score = findings["score"].to_numpy()
    bad = ~np.isnan(score) & ((score < 0) | (score > 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"finding row {i} ({findings.loc[i, 'kind']}): score {float(score[i])} is not in [0, 1]")
