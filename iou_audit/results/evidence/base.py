"""The shapes every chart module shares: a chart, a selection (the samples and labels behind an
element), the view of a selection, and small helpers (layout, bulk label reads, the run's view)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iou_audit.results.result import AuditResult


@dataclass
class Chart:
    """One plotly chart: ``traces`` (``data``) and ``layout``; ``clickable``: a click selects."""

    name: str
    title: str
    traces: list
    layout: dict
    clickable: bool = True


@dataclass
class Selection:
    """The samples and labels behind one chart element or queue row.

    ``sample_ids`` are ordered most suspicious first; ``labels`` maps a label field to the label
    ids to show (all other labels hidden; key ``""``: ids whose field is not known); ``fields`` are
    the label fields shown for a sample-level selection (``labels`` empty, e.g. a leak pair).

    Example:
        >>> s = Selection(["s2", "s1"], {"gt": ["l1", "l2"]}, title="duplicate RBC")
        >>> s.n_samples, s.n_labels, s.empty
        (2, 2, False)
    """

    sample_ids: list
    labels: dict = field(default_factory=dict)
    fields: list = field(default_factory=list)
    title: str = ""

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    @property
    def n_labels(self) -> int:
        return sum(len(v) for v in self.labels.values())

    @property
    def empty(self) -> bool:
        return not self.sample_ids


def selection_from_rows(sample_ids, fields, label_ids, scores, title: str = "") -> Selection:
    """A :class:`Selection` from one row per label: samples by their highest score, then first seen.

    Example:
        >>> s = selection_from_rows(["a", "b", "b"], ["gt", "gt", "pred"], ["1", "2", "3"], [0.2, 0.9, 0.1])
        >>> s.sample_ids, s.labels
        (['b', 'a'], {'gt': ['2', '1'], 'pred': ['3']})
    """
    frame = pd.DataFrame({"sample_id": list(sample_ids), "field": list(fields), "label_id": list(label_ids),
                          "score": pd.to_numeric(pd.Series(list(scores), dtype=object), errors="coerce")})
    frame = frame[(frame["sample_id"] != "") & frame["sample_id"].notna()]
    if not len(frame):
        return Selection([], {}, title=title)
    frame["first"] = np.arange(len(frame))
    best = frame.groupby("sample_id", sort=False).agg(score=("score", "max"), first=("first", "min"))
    best["score"] = best["score"].fillna(-np.inf)
    order = best.sort_values(["score", "first"], ascending=[False, True], kind="stable").index.tolist()
    rank = {s: i for i, s in enumerate(order)}
    labelled = frame[(frame["label_id"] != "") & frame["label_id"].notna() & (frame["field"] != "")]
    labelled = labelled.assign(rank=labelled["sample_id"].map(rank)).sort_values(["rank", "first"], kind="stable")
    labels: dict[str, list] = {}
    for f, lid in zip(labelled["field"], labelled["label_id"]):
        ids = labels.setdefault(f, [])
        if lid not in ids:
            ids.append(lid)
    return Selection(order, labels, title=title)


def findings_selection(findings: pd.DataFrame, title: str = "", fields=()) -> Selection:
    """The samples and labels of some findings: each finding's label and its other label, most
    suspicious sample first; sample-level findings (no label ids) select their sample(s) and show
    ``fields``.

    Example:
        >>> from iou_audit.results.findings import make_findings
        >>> f = make_findings({"kind": ["duplicate"], "sample_id": ["s"], "field": ["gt"], "label_id": ["a"],
        ...                    "other_field": ["gt"], "other_label_id": ["b"], "score": [0.9]}, audit="duplicates")
        >>> findings_selection(f).labels
        {'gt': ['a', 'b']}
    """
    f = findings
    n = len(f)
    sample = list(f["sample_id"]) + list(f["other_sample_id"].where(f["other_sample_id"] != "", f["sample_id"]))
    fld = list(f["field"]) + list(f["other_field"])
    lid = list(f["label_id"]) + list(f["other_label_id"])
    score = list(f["score"]) * 2
    # interleave (finding, its other label) so each finding's two labels stay together
    order = [i for pair in zip(range(n), range(n, 2 * n)) for i in pair]
    sel = selection_from_rows([sample[i] for i in order], [fld[i] for i in order], [lid[i] for i in order],
                              [score[i] for i in order], title=title)
    if not sel.labels:
        sel.fields = sorted(set(fields) | (set(f["field"]) - {""}))
    return sel


def selection_view(dataset, selection: Selection):
    """The view of a selection: its samples in order and only its labels (other label fields hidden).

    Label-level selections use ``select_labels(ids=..., fields=...)``, which hides every other label
    and every label field not named; sample-level ones show ``selection.fields`` (all fields if none).
    """
    view = dataset.select(list(selection.sample_ids), ordered=True)
    if selection.labels:
        ids = list(dict.fromkeys(i for ids in selection.labels.values() for i in ids))
        # label ids are unique across fields: an id of unknown field (key "") needs no field named
        fields = None if "" in selection.labels else sorted(selection.labels)
        view = view.select_labels(ids=ids, fields=fields, omit_empty=True)
    elif selection.fields:
        view = view.select_fields(sorted(selection.fields))
    return view


def chart_layout(title: str, height: int = 260, **extra) -> dict:
    layout = {"title": {"text": title, "font": {"size": 13}}, "height": height,
              "margin": {"l": 40, "r": 10, "t": 30, "b": 40}}
    layout.update(extra)
    return layout


def none_nan(values) -> list:
    return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in values]


def run_view(samples, result: AuditResult):
    """The collection the audit ran on (the stored run view), or ``samples`` itself."""
    try:
        return samples.load_run_view(result.audit_key)
    except Exception:  # e.g. a result not stored on this dataset
        return samples


def label_rows(samples, fld: str, attrs) -> pd.DataFrame:
    """``sample_id, label_id, label, iscrowd, confidence, <attr>...`` of one label field (bulk read)."""
    from iou_audit.table import read_label_table

    t = read_label_table(samples, fld, attributes=tuple(attrs), masks=False, compute_metadata=False)
    out = pd.DataFrame({"sample_id": np.asarray(t.sample_ids, dtype=object)[np.asarray(t.sample_index)],
                        "label_id": np.asarray(t.label_id, dtype=object), "label": np.asarray(t.label, dtype=object),
                        "iscrowd": np.asarray(t.iscrowd, dtype=bool),
                        "confidence": np.asarray(t.confidence, dtype=float)})
    for a in attrs:
        values = (t.attributes or {}).get(a)
        out[a] = list(values) if values is not None and len(values) == len(out) else [None] * len(out)
    return out


def need_attr(samples, fld: str, attr: str, key: str) -> None:
    from iou_audit.table.read import check_label_field

    _, list_path = check_label_field(samples, fld)
    if samples.get_field(f"{list_path}.{attr}") is None:
        raise ValueError(f"audit {key!r} did not store {list_path}.{attr} (run before the review panel needed it): "
                         f"re-run the audit")


def result_fields(result: AuditResult) -> list:
    """The label fields an audit looked at (for sample-level selections)."""
    c = result.config or {}
    out = []
    for k in ("label_field", "gt_field", "pred_field"):
        if c.get(k):
            out.append(c[k])
    out += list(c.get("label_fields") or []) + list(c.get("fields") or [])
    return sorted(set(out))

