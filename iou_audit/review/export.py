"""Write a triage queue to CSV, Parquet or JSON, in a form each format reads back.

List columns (``audits``, ``kinds``, ``other_label_ids``) stay lists in JSON and Parquet and are
JSON text in CSV; ``audit_scores`` ({audit key: score}) is JSON text in CSV and Parquet (its keys
differ from row to row) and an object in JSON; ``reviewed_at`` is ISO 8601 (UTC) text.
"""
from __future__ import annotations

import json
import pathlib

import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}
LIST_COLUMNS = ("audits", "kinds", "other_label_ids")


def queue_format(path, fmt: str | None = None) -> str:
    """The format of an export path (``fmt`` wins); ValueError when it cannot tell.

    Example:
        >>> queue_format("q.parquet"), queue_format("q.txt", "csv")
        ('parquet', 'csv')
    """
    fmt = fmt or FORMATS.get(pathlib.Path(path).suffix.lower())
    if fmt not in set(FORMATS.values()):
        raise ValueError(f"cannot tell the export format of {str(path)!r}: use a .csv, .parquet or .json name")
    return fmt


def export_queue(queue: pd.DataFrame, path, fmt: str | None = None) -> pathlib.Path:
    """Write ``queue`` (from :func:`iou_audit.review.triage`) to ``path``; returns the path."""
    path = pathlib.Path(path)
    fmt = queue_format(path, fmt)
    out = queue.copy()
    out["reviewed_at"] = [t.isoformat() if hasattr(t, "isoformat") else None for t in out["reviewed_at"]]
    if fmt == "json":
        path.write_text(json.dumps(out.to_dict(orient="records"), indent=1, default=str))
        return path
    out["audit_scores"] = [json.dumps(d) for d in out["audit_scores"]]
    if fmt == "csv":
        for col in LIST_COLUMNS:
            out[col] = [json.dumps(list(v)) for v in out[col]]
        out.to_csv(path, index=False)
    else:
        out.to_parquet(path, index=False)
    return path
