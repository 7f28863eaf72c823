"""The review panel's triage queue: filters, pages, and the selection of queue rows."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from iou_audit.results.evidence.base import Selection

#: Queue rows per page.
PAGE_SIZE = 20


def filter_choices(frame: pd.DataFrame, columns) -> dict[str, list]:
    """The distinct non-empty values of each filterable column (sorted), for the queue's dropdowns.

    A column holding lists (e.g. a triage row's ``audits``) offers each list element.

    Example:
        >>> filter_choices(pd.DataFrame({"kind": ["b", "a", "b"], "audits": [["x"], ["x", "y"], []]}),
        ...                ["kind", "audits"])
        {'kind': ['a', 'b'], 'audits': ['x', 'y']}
    """
    out = {}
    for col in columns:
        if col not in frame:
            continue
        values = set()
        for v in frame[col].tolist():
            values.update(v if isinstance(v, (list, tuple, set, np.ndarray)) else [v])
        out[col] = sorted(str(v) for v in values if v is not None and v == v and str(v) != "")
    return out


def filter_frame(frame: pd.DataFrame, filters: Mapping[str, Any] | None) -> pd.DataFrame:
    """Rows whose column equals the filter value (or, for list columns, contains it); empty or
    None filter values are ignored.

    Example:
        >>> f = pd.DataFrame({"kind": ["a", "b"], "audits": [["x"], ["x", "y"]]})
        >>> filter_frame(f, {"kind": "", "audits": "y"}).index.tolist()
        [1]
    """
    keep = np.ones(len(frame), dtype=bool)
    for col, want in (filters or {}).items():
        if want in (None, "") or col not in frame:
            continue
        values = frame[col].tolist()
        keep &= np.array([(str(want) in map(str, v)) if isinstance(v, (list, tuple, set, np.ndarray))
                          else str(v) == str(want) for v in values], dtype=bool)
    return frame[keep]


def queue_page(frame: pd.DataFrame, filters: Mapping[str, Any] | None = None, sort_by: str = "score",
               descending: bool = True, page: int = 0, page_size: int = PAGE_SIZE) -> tuple[pd.DataFrame, int, int]:
    """One page of a findings/triage queue: ``(rows, n_matching, n_pages)``; ``page`` is clamped.

    Sorting is stable (ties keep the queue's order), by ``sort_by`` (default the score, highest first).

    Example:
        >>> f = pd.DataFrame({"kind": ["a", "b", "a"], "score": [0.1, 0.9, 0.5]})
        >>> rows, n, pages = queue_page(f, {"kind": "a"}, page_size=1, page=5)
        >>> rows["score"].tolist(), n, pages
        ([0.1], 2, 2)
    """
    rows = filter_frame(frame, filters)
    if sort_by in rows and len(rows):
        rows = rows.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
    n = len(rows)
    n_pages = max(1, -(-n // int(page_size)))
    page = min(max(int(page), 0), n_pages - 1)
    return rows.iloc[page * page_size:(page + 1) * page_size], n, n_pages


def triage_selection(rows, fields=()) -> Selection:
    """The samples and labels of triage queue rows (``iou_audit.review.triage``): each row's
    ``label_id`` (in its ``field``) and its ``other_label_ids`` (the labels its findings name: the
    box it duplicates, the prediction covering it, another annotator's label of a missing object;
    their field is not in the row, so they go under ``""``), in the rows' order; sample and pair
    rows select their sample(s) and show ``fields``.

    Example:
        >>> rows = pd.DataFrame({"sample_id": ["s1"], "other_sample_id": [None], "field": ["gt"],
        ...                      "label_id": ["a"], "other_label_ids": [["b"]], "score": [0.9]})
        >>> triage_selection(rows).labels
        {'gt': ['a'], '': ['b']}
    """
    records = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
    samples, labels = [], {}
    for r in records:
        samples += [s for s in (r.get("sample_id"), r.get("other_sample_id")) if s]
        if r.get("label_id"):
            labels.setdefault(r.get("field") or "", []).append(r["label_id"])
        for other in r.get("other_label_ids") or []:
            if other and other != r.get("label_id"):
                labels.setdefault("", []).append(other)
    labels = {f: list(dict.fromkeys(ids)) for f, ids in labels.items()}
    sel = Selection(list(dict.fromkeys(samples)), labels)
    if not labels:
        sel.fields = sorted(set(fields) | {r["field"] for r in records if r.get("field")})
    return sel
