"""The App view behind queue rows: exactly their samples, and of those only the labels the rows name."""
from __future__ import annotations

from typing import Any

import pandas as pd


def queue_view(samples, rows: Any):
    """A view of ``samples`` showing the queue rows ``rows`` (a queue DataFrame, one row as a Series
    or dict): the samples of the rows, and of their labels only the flagged label and the other
    labels its findings name (e.g. the box it duplicates, the prediction that covers it, another
    annotator's label of a missing object); every other label is hidden. Samples keep the order of
    the rows (the queue's order: most suspicious first). Rows of samples or sample pairs (leaks)
    show their samples with their labels hidden only when label rows are mixed in.

    Example:
        >>> q = triage(ds); ds_view = queue_view(ds, q.iloc[0])          # doctest: +SKIP
        >>> session.view = ds_view                                        # doctest: +SKIP
    """
    if isinstance(rows, pd.Series):
        rows = [rows.to_dict()]
    elif isinstance(rows, dict):
        rows = [rows]
    elif isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    rows = list(rows)
    if not rows:
        raise ValueError("queue_view needs at least one queue row")
    sample_ids, label_ids = [], []
    for r in rows:
        sample_ids += [s for s in (r.get("sample_id"), r.get("other_sample_id")) if s]
        if r.get("label_id"):
            label_ids.append(r["label_id"])
        label_ids += list(r.get("other_label_ids") or [])
    sample_ids = list(dict.fromkeys(sample_ids))
    view = samples.select(sample_ids, ordered=True)
    if label_ids:
        view = view.select_labels(ids=list(dict.fromkeys(label_ids)), omit_empty=False)
    return view

