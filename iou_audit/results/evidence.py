"""The evidence behind an audit's numbers: chart data, and the samples and labels behind each part.

The review panel draws every stored audit run as pictures (bars, heatmaps, histograms, curves) and
turns a click on one element into a view of exactly the samples and labels behind it. Both halves
live here, so the plugin only lays them out:

- ``charts(result, samples)`` -> ``{name: Chart}``: plotly traces and a layout per chart, computed
  from the stored run (its findings, tables, metrics) and, for per-label distributions, the label
  attributes the run wrote;
- ``select(samples, result, chart, point)`` -> :class:`Selection`: the sample ids (most suspicious
  first) and, per label field, the label ids behind the clicked element (``point`` is what the App
  sends on a click: ``x``, ``y``, ``trace``, ``idx``);
- ``selection_view(dataset, selection)``: the App view showing those samples with only those
  labels (every other label and label field hidden).

What is behind each element:

- ``kinds`` (every audit): bar (kind, class) -> the findings of that kind and class: their labels
  (``label_id`` and ``other_label_id``) or, for sample-level findings (leaks), their samples;
- ``matrix`` (agreement): cell (a, b) -> the objects on which annotators a and b disagree, both
  annotators' labels: a label of one with no match in the other (same matching as the audit:
  ``iou_thresh``, ``method``, geometry, coverage), a matched pair of different classes, or a
  matched pair with IoU below ``low_iou``; recomputed from the dataset with the audit's matching
  (:func:`pair_disagreements`), whose unmatched/matched counts equal the stored pair table;
- ``iou_hist`` (agreement): bin -> the labels whose ``<key>_iou`` (mean IoU with the other members
  of their object) falls in the bin (``[lo, hi)``, the last bin ``[lo, hi]``);
- ``class_agreement`` (agreement): bar -> the findings of that class;
- ``threshold_curve`` (agreement): point at threshold t -> the labels whose ``<key>_iou`` is below
  t (matched at the audit's threshold, below t);
- ``annotators`` (agreement): bar -> the findings blaming that annotator (its extra, low-agreement
  and class-conflict labels, and the other annotators' labels of the objects it lacks);
- ``confusion`` (predictions): cell (label class g, predicted class p) -> the labels of class g
  and the predictions of class p matched together (``<key>_confusion``); the ``unmatched`` row and
  column hold the lone predictions and the lone labels;
- ``per_class`` (predictions): precision bar -> the class's false-positive predictions, recall bar
  -> its false-negative labels, AP bar -> both (from ``<key>_error`` and ``<key>_match_id``);
- ``tide`` (predictions): bar -> the predictions (or, for ``missed``, the labels) of that TIDE error
  type (``<key>_tide``);
- ``drift`` (splits): bar -> the samples of the two splits of that test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import numpy as np
import pandas as pd

from iou_audit.results.result import NO_CLASS, AuditResult

#: Matrix metrics offered by the agreement heatmap: pair-table column -> label.
MATRIX_METRICS = {"f1": "pairwise F1", "f1_class": "pairwise F1 (same class)", "mean_iou": "mean IoU",
                  "alpha": "Krippendorff alpha"}
#: Bins of the agreement IoU histogram.
IOU_BINS = 20
#: The confusion matrix's background row/column (``iou_audit.audits.predictions.metrics.UNMATCHED``).
UNMATCHED = "unmatched"


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


# ---- staleness ------------------------------------------------------------------------------------


def staleness(dataset, key: str) -> dict:
    """Samples modified after audit ``key`` finished writing: ``{"n_modified", "completed_at",
    "message"}`` (``message`` is "" when the run is current).

    A sample counts when its ``last_modified_at`` is after the run's ``completed_at`` and not inside
    the write window (registration to completion) of a later iou-audit run, nor within
    ``REVIEW_WRITE_SECONDS`` after a review decision stored on it (``iou_audit.review``): those
    writes (attributes, review tags) do not change what the audit saw. Samples added since the run
    count too. A cleared review mark leaves no record, so that write does count.

    Example:
        >>> staleness(ds, "duplicates")                                   # doctest: +SKIP
        {'n_modified': 1, 'completed_at': datetime(...), 'message': '1 sample modified since ...'}
    """
    from fiftyone import ViewField as F

    from iou_audit.results.runs import audit_info, list_audits

    info = audit_info(dataset, key)
    done = info["completed_at"] or info["timestamp"]
    expr = F("last_modified_at") > done
    for other in list_audits(dataset):
        if other == key:
            continue
        o = audit_info(dataset, other)
        if o["completed_at"] is not None and o["completed_at"] > done:
            start = max(o["timestamp"], done)
            expr = expr & ~((F("last_modified_at") >= start) & (F("last_modified_at") <= o["completed_at"]))
    ids, times = dataset.match(expr).values(["id", "last_modified_at"])
    n = len(ids) - len(_review_writes(dataset, ids, times))
    when = done.strftime("%Y-%m-%d %H:%M") if isinstance(done, datetime) else str(done)
    message = (f"{n} sample{'s' if n != 1 else ''} modified since this run ({when} UTC): re-run it"
               if n else "")
    return {"n_modified": int(n), "completed_at": done, "message": message}


#: A review mark's tag/count write lands within this many seconds of the decision's time.
REVIEW_WRITE_SECONDS = 30


def _review_writes(dataset, ids, times) -> set:
    """Of these samples, those whose last modification is a review mark's write."""
    from iou_audit.review import load_decisions

    marked: dict = {}
    for d in load_decisions(dataset).values():
        for sid in (d.get("sample_id"), d.get("other_sample_id")):
            if sid and d.get("at") is not None:
                marked.setdefault(sid, []).append(d["at"])
    out = set()
    for sid, t in zip(ids, times):
        for at in marked.get(sid, ()):
            if t is not None and 0 <= (t - at).total_seconds() <= REVIEW_WRITE_SECONDS:
                out.add(sid)
    return out


# ---- charts -----------------------------------------------------------------------------------------


def charts(result: AuditResult, samples=None, metric: str = "f1") -> dict[str, Chart]:
    """Every chart of a stored audit run, by name (see the module docstring for what each shows).

    ``samples`` (the dataset) is needed for the agreement IoU histogram, which reads the per-label
    ``<key>_iou`` values the run wrote; ``metric`` picks the agreement matrix's values
    (:data:`MATRIX_METRICS`).
    """
    out = {"kinds": kinds_chart(result)}
    if result.audit == "agreement":
        out["matrix"] = matrix_chart(result, metric)
        if samples is not None:
            out["iou_hist"] = iou_histogram_chart(samples, result)
        out["class_agreement"] = class_agreement_chart(result, metric)
        out["threshold_curve"] = threshold_curve_chart(result)
        out["annotators"] = annotators_chart(result)
    elif result.audit == "predictions":
        if "confusion" in result.tables:
            out["confusion"] = confusion_chart(result)
        if "per_class" in result.tables:
            out["per_class"] = per_class_chart(result)
        if "tide" in result.tables:
            out["tide"] = tide_chart(result)
    elif result.audit == "splits":
        if "drift_tests" in result.tables and len(result.tables["drift_tests"]):
            out["drift"] = drift_chart(result)
    return {k: v for k, v in out.items() if v is not None}


def _layout(title: str, height: int = 260, **extra) -> dict:
    layout = {"title": {"text": title, "font": {"size": 13}}, "height": height,
              "margin": {"l": 40, "r": 10, "t": 30, "b": 40}}
    layout.update(extra)
    return layout


def kind_class_counts(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings per kind (rows) and class (columns; ``(no class)`` for unlabelled findings).

    Example:
        >>> from iou_audit.results.findings import make_findings
        >>> f = make_findings({"kind": ["duplicate", "duplicate", "degenerate_box"], "label": ["RBC", "WBC", "RBC"]},
        ...                   audit="duplicates")
        >>> kind_class_counts(f).to_dict()
        {'RBC': {'duplicate': 1, 'degenerate_box': 1}, 'WBC': {'duplicate': 1, 'degenerate_box': 0}}
    """
    if not len(findings):
        return pd.DataFrame()
    labels = findings["label"].where(findings["label"] != "", NO_CLASS)
    table = pd.crosstab(findings["kind"], labels).astype(np.int64)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    table.columns.name = None
    table.index.name = None
    return table


def kinds_chart(result: AuditResult) -> Chart | None:
    table = kind_class_counts(result.findings)
    if not len(table):
        return None
    # horizontal bars: the kind names stay readable in a narrow panel; ``ids`` carry the kind
    traces = [{"type": "bar", "orientation": "h", "name": str(c), "y": table.index.tolist(),
               "x": table[c].tolist(), "ids": table.index.tolist(),
               "hovertemplate": f"%{{y}}, {c}: %{{x}}<extra></extra>"} for c in table.columns]
    return Chart("kinds", "Findings by kind and class", traces,
                 _layout("Findings by kind and class (click a bar)", height=max(180, 34 * len(table) + 110),
                         barmode="stack", showlegend=True, legend={"orientation": "h", "y": -0.3},
                         yaxis={"autorange": "reversed", "automargin": True}))


def select_kind_class(result: AuditResult, kind: str, label: str) -> Selection:
    f = result.findings
    label = "" if label == NO_CLASS else label
    rows = f[(f["kind"] == kind) & (f["label"] == label)]
    return findings_selection(rows, title=f"{kind} {label or NO_CLASS}", fields=result_fields(result))


def result_fields(result: AuditResult) -> list:
    """The label fields an audit looked at (for sample-level selections)."""
    c = result.config or {}
    out = []
    for k in ("label_field", "gt_field", "pred_field"):
        if c.get(k):
            out.append(c[k])
    out += list(c.get("label_fields") or [])
    return sorted(set(out))


# agreement ------------------------------------------------------------------------------------------


def annotator_names(result: AuditResult) -> list:
    names = (result.config or {}).get("annotators") or (result.config or {}).get("label_fields") or []
    return [str(n) for n in names]


def agreement_matrix(result: AuditResult, metric: str = "f1") -> pd.DataFrame:
    """The symmetric annotator x annotator matrix of one pair-table column (diagonal NaN: an
    annotator with itself is not evidence).

    Example:
        >>> pairs = pd.DataFrame({"annotator_a": ["a"], "annotator_b": ["b"], "f1": [0.8]})
        >>> r = AuditResult("agreement", "ag", {"annotators": ["a", "b"]}, tables={"pairs": pairs})
        >>> agreement_matrix(r).values.tolist()
        [[nan, 0.8], [0.8, nan]]
    """
    if metric not in MATRIX_METRICS:
        raise ValueError(f"metric must be one of {sorted(MATRIX_METRICS)}, got {metric!r}")
    names = annotator_names(result)
    pairs = result.tables.get("pairs", pd.DataFrame())
    values = np.full((len(names), len(names)), np.nan)
    where = {n: i for i, n in enumerate(names)}
    if len(pairs) and metric in pairs:
        for a, b, v in zip(pairs["annotator_a"], pairs["annotator_b"], pairs[metric]):
            if a in where and b in where:
                values[where[a], where[b]] = values[where[b], where[a]] = float(v)
    return pd.DataFrame(values, index=names, columns=names)


def _none_nan(values) -> list:
    return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in values]


def matrix_chart(result: AuditResult, metric: str = "f1") -> Chart:
    m = agreement_matrix(result, metric)
    z = [_none_nan([round(float(v), 3) for v in row]) for row in m.to_numpy()]
    trace = {"type": "heatmap", "x": m.columns.tolist(), "y": m.index.tolist(), "z": z,
             "colorscale": "Viridis", "texttemplate": "%{z:.2f}", "hoverongaps": False,
             "colorbar": {"thickness": 8}}
    return Chart("matrix", f"Annotator x annotator: {MATRIX_METRICS[metric]}", [trace],
                 _layout(f"{MATRIX_METRICS[metric]} (click a cell: where the two disagree)", height=300,
                         yaxis={"autorange": "reversed"}))


def _run_view(samples, result: AuditResult):
    """The collection the audit ran on (the stored run view), or ``samples`` itself."""
    try:
        return samples.load_run_view(result.audit_key)
    except Exception:  # e.g. a result not stored on this dataset
        return samples


def pair_disagreements(samples, result: AuditResult, a: str, b: str) -> pd.DataFrame:
    """Where annotators ``a`` and ``b`` disagree, recomputed with the audit's own matching.

    One row per label involved: ``sample_id, field, label_id, annotator, reason, iou`` with reason
    ``only_a`` / ``only_b`` (no match in the other annotator), ``class`` (matched, different class)
    or ``low_iou`` (matched, IoU below the run's ``low_iou``); a matched pair gives two rows. Only
    samples both annotators covered count, as in the stored pair table, so the ``only_*`` counts are
    ``n_a - matched`` and ``n_b - matched`` of that table.
    """
    from iou_audit.audits.agreement.audit import read_annotators, read_coverage
    from iou_audit.audits.agreement.pairs import match_all_pairs, pick_geometry

    config = result.config or {}
    names = annotator_names(result)
    if a not in names or b not in names or a == b:
        raise ValueError(f"annotators must be two of {names}, got {a!r} and {b!r}")
    view = _run_view(samples, result)
    fields_cfg = list(config.get("label_fields") or [])
    label_fields = fields_cfg[0] if len(fields_cfg) == 1 else fields_cfg
    tables, tnames, tfields = read_annotators(view, label_fields, config.get("annotator_attr"))
    ia, ib = tnames.index(a), tnames.index(b)
    ta, tb = tables[ia], tables[ib]
    if config.get("coverage_field"):
        cov = read_coverage(view, config["coverage_field"], tnames)
        both = cov[:, ia] & cov[:, ib]
    else:
        both = np.ones(len(ta.offsets) - 1, dtype=bool)
    geometry = pick_geometry([ta, tb], config.get("geometry") or "auto")
    (pm,) = match_all_pairs([ta, tb], float(config.get("iou_thresh", 0.5)), config.get("method") or "hungarian",
                            geometry)
    low_iou = float(config.get("low_iou", 0.75))
    sa = np.repeat(both, np.diff(ta.offsets))
    sb = np.repeat(both, np.diff(tb.offsets))
    lab_a, lab_b = np.asarray(ta.label, dtype=object), np.asarray(tb.label, dtype=object)
    rows = []

    def add(table, fld, name, idx, reason, iou):
        sid = np.asarray(table.sample_ids, dtype=object)[np.asarray(table.sample_index)[idx]]
        rows.append(pd.DataFrame({"sample_id": sid, "field": fld, "label_id": np.asarray(table.label_id)[idx],
                                  "annotator": name, "reason": reason, "iou": iou}))

    only_a = np.flatnonzero((pm.match_a < 0) & sa)
    only_b = np.flatnonzero((pm.match_b < 0) & sb)
    add(ta, tfields[ia], a, only_a, "only_a", np.zeros(len(only_a)))
    add(tb, tfields[ib], b, only_b, "only_b", np.zeros(len(only_b)))
    matched = np.flatnonzero((pm.match_a >= 0) & sa)
    other = pm.match_a[matched]
    iou = pm.iou_a[matched]
    cls = lab_a[matched] != lab_b[other]
    low = ~cls & (iou < low_iou)
    for mask, reason in ((cls, "class"), (low, "low_iou")):
        add(ta, tfields[ia], a, matched[mask], reason, iou[mask])
        add(tb, tfields[ib], b, other[mask], reason, iou[mask])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["sample_id", "field", "label_id", "annotator", "reason", "iou"])


def select_pair(samples, result: AuditResult, a: str, b: str) -> Selection:
    d = pair_disagreements(samples, result, a, b)
    # unmatched first, then class conflicts, then the lowest IoU
    score = np.where(d["reason"].isin(["only_a", "only_b"]), 1.0,
                     np.where(d["reason"] == "class", 0.9, 0.8 * (1 - d["iou"].to_numpy(dtype=float))))
    return selection_from_rows(d["sample_id"], d["field"], d["label_id"], score,
                               title=f"where {a} and {b} disagree")


def _annotator_fields(result: AuditResult) -> list:
    return sorted(set((result.config or {}).get("label_fields") or []))


def iou_values(samples, result: AuditResult) -> pd.DataFrame:
    """``sample_id, field, label_id, iou``: each annotator label's ``<key>_iou`` (NaN when none)."""
    from iou_audit.table.read import check_label_field

    view = _run_view(samples, result)
    attr = f"{result.audit_key}_iou"
    frames = []
    for fld in _annotator_fields(result):
        _, list_path = check_label_field(view, fld)
        if view.get_field(f"{list_path}.{attr}") is None:
            continue
        d = _label_rows(view, fld, [attr])
        frames.append(pd.DataFrame({"sample_id": d["sample_id"], "field": fld, "label_id": d["label_id"],
                                    "iou": pd.to_numeric(d[attr], errors="coerce").astype(float)}))
    if not frames:
        return pd.DataFrame(columns=["sample_id", "field", "label_id", "iou"])
    return pd.concat(frames, ignore_index=True)


def iou_bins(values: np.ndarray, bins: int = IOU_BINS) -> tuple[np.ndarray, np.ndarray]:
    """``(bin index per value, edges)`` on [0, 1]: ``[lo, hi)``, the last bin ``[lo, 1]``; -1 for NaN.

    Example:
        >>> iou_bins(np.array([0.0, 0.5, 1.0, np.nan]), bins=2)[0].tolist()
        [0, 1, 1, -1]
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    v = np.asarray(values, dtype=float)
    # compared with the edges themselves (not floor(v * bins)), as a query "lo <= v < hi" compares
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)
    return np.where(np.isnan(v), -1, idx).astype(np.int64), edges


def iou_histogram_chart(samples, result: AuditResult, bins: int = IOU_BINS) -> Chart | None:
    d = iou_values(samples, result)
    if not len(d):
        return None
    idx, edges = iou_bins(d["iou"].to_numpy(), bins)
    counts = np.bincount(idx[idx >= 0], minlength=bins)
    centers = ((edges[:-1] + edges[1:]) / 2).round(4).tolist()
    trace = {"type": "bar", "x": centers, "y": counts.tolist(), "width": [1.0 / bins] * bins,
             "ids": [str(i) for i in range(bins)],
             "hovertemplate": "IoU %{x:.3f} +/- " + f"{0.5 / bins:.3f}" + ": %{y} labels<extra></extra>"}
    return Chart("iou_hist", "Matched IoU", [trace],
                 _layout("IoU of each label with its object's other annotators (click a bin)",
                         xaxis={"range": [0, 1]}, bargap=0.05))


def select_iou_bin(samples, result: AuditResult, bin_index: int, bins: int = IOU_BINS) -> Selection:
    d = iou_values(samples, result)
    idx, edges = iou_bins(d["iou"].to_numpy(), bins)
    rows = d[idx == int(bin_index)]
    lo, hi = edges[int(bin_index)], edges[int(bin_index) + 1]
    return selection_from_rows(rows["sample_id"], rows["field"], rows["label_id"], 1 - rows["iou"],
                               title=f"labels with IoU in [{lo:.2f}, {hi:.2f}{']' if bin_index == bins - 1 else ')'}")


def select_below_iou(samples, result: AuditResult, thresh: float) -> Selection:
    d = iou_values(samples, result)
    rows = d[d["iou"] < float(thresh)]
    return selection_from_rows(rows["sample_id"], rows["field"], rows["label_id"], 1 - rows["iou"],
                               title=f"labels with IoU below {float(thresh):.2f}")


def class_agreement_chart(result: AuditResult, metric: str = "f1") -> Chart | None:
    t = result.tables.get("per_class")
    if t is None or not len(t):
        return None
    col = metric if metric in t.columns else "f1"
    trace = {"type": "bar", "x": t["label"].astype(str).tolist(), "y": _none_nan(t[col].round(4).tolist())}
    return Chart("class_agreement", "Agreement per class", [trace],
                 _layout(f"{MATRIX_METRICS.get(col, col)} per class (click: its findings)", yaxis={"range": [0, 1]}))


def select_class(result: AuditResult, label: str) -> Selection:
    f = result.findings
    return findings_selection(f[f["label"] == label], title=f"{result.audit} findings of class {label}")


def threshold_curve_chart(result: AuditResult) -> Chart | None:
    t = result.tables.get("threshold_curve")
    if t is None or not len(t):
        return None
    traces = [{"type": "scatter", "mode": "lines+markers", "name": col, "x": t["iou_thresh"].round(4).tolist(),
               "y": _none_nan(t[col].round(4).tolist())} for col in ("f1", "alpha_nominal") if col in t]
    return Chart("threshold_curve", "Agreement vs IoU threshold", traces,
                 _layout("Agreement vs IoU threshold (click: labels below it)", showlegend=True,
                         legend={"orientation": "h", "y": -0.25}, yaxis={"range": [0, 1]}))


def annotators_chart(result: AuditResult) -> Chart | None:
    t = result.tables.get("annotators")
    if t is None or not len(t):
        return None
    traces = [{"type": "bar", "name": col, "x": t["annotator"].astype(str).tolist(),
               "y": _none_nan(t[col].round(4).tolist())} for col in ("reliability", "reliability_class") if col in t]
    return Chart("annotators", "Per-annotator reliability", traces,
                 _layout("Reliability per annotator (click: its findings)", barmode="group", showlegend=True,
                         legend={"orientation": "h", "y": -0.25}, yaxis={"range": [0, 1]}))


def select_annotator(result: AuditResult, name: str) -> Selection:
    """The findings blaming annotator ``name``: its own flagged labels, and the objects it lacks."""
    f = result.findings
    names = annotator_names(result)
    fields = list((result.config or {}).get("label_fields") or [])
    if name not in names:
        raise ValueError(f"unknown annotator {name!r}; annotators: {names}")
    if len(fields) == len(names) and len(set(fields)) == len(fields):
        rows = f[f["field"] == fields[names.index(name)]]
    else:  # one field split by an annotator attribute: the detail names the annotator
        import re

        pattern = re.compile(rf"(^|; ){re.escape(name)}( |:)")
        rows = f[f["detail"].map(lambda d: bool(pattern.search(d)))]
    return findings_selection(rows, title=f"findings blaming {name}")


# predictions ----------------------------------------------------------------------------------------


def confusion_chart(result: AuditResult) -> Chart:
    cm = result.tables["confusion"]
    z = cm.to_numpy().tolist()
    trace = {"type": "heatmap", "x": [str(c) for c in cm.columns], "y": [str(r) for r in cm.index], "z": z,
             "colorscale": "Blues", "texttemplate": "%{z}", "colorbar": {"thickness": 8},
             "hovertemplate": "label %{y}, predicted %{x}: %{z}<extra></extra>"}
    return Chart("confusion", "Confusion matrix", [trace],
                 _layout("Confusion (rows: label, columns: prediction; click a cell)", height=300,
                         xaxis={"title": {"text": "prediction"}}, yaxis={"title": {"text": "label"},
                                                                         "autorange": "reversed"}))


def _pred_fields(result: AuditResult) -> tuple[str, str]:
    c = result.config or {}
    return c["pred_field"], c["gt_field"]


def _label_rows(samples, fld: str, attrs) -> pd.DataFrame:
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


def _need_attr(samples, fld: str, attr: str, key: str) -> None:
    from iou_audit.table.read import check_label_field

    _, list_path = check_label_field(samples, fld)
    if samples.get_field(f"{list_path}.{attr}") is None:
        raise ValueError(f"audit {key!r} did not store {list_path}.{attr} (run before the review panel needed it): "
                         f"re-run the audit")


def select_confusion(samples, result: AuditResult, label_class: str, pred_class: str) -> Selection:
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = _run_view(samples, result)
    attr = f"{key}_confusion"
    rows = []
    if label_class != UNMATCHED:
        _need_attr(view, gf, attr, key)
        g = _label_rows(view, gf, [attr])
        g = g[(g["label"] == label_class) & (g[attr] == pred_class)]
        rows.append(pd.DataFrame({"sample_id": g["sample_id"], "field": gf, "label_id": g["label_id"], "score": 1.0}))
    if pred_class != UNMATCHED:
        _need_attr(view, pf, attr, key)
        p = _label_rows(view, pf, [attr])
        p = p[(p["label"] == pred_class) & (p[attr] == label_class)]
        rows.append(pd.DataFrame({"sample_id": p["sample_id"], "field": pf, "label_id": p["label_id"],
                                  "score": p["confidence"].fillna(1.0)}))
    d = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["sample_id", "field", "label_id", "score"])
    return selection_from_rows(d["sample_id"], d["field"], d["label_id"], d["score"],
                               title=f"label {label_class}, predicted {pred_class}")


def per_class_chart(result: AuditResult) -> Chart | None:
    t = result.tables["per_class"]
    if not len(t):
        return None
    traces = [{"type": "bar", "name": col, "x": t["class"].astype(str).tolist(), "y": _none_nan(t[col].round(4).tolist())}
              for col in ("AP", "precision", "recall") if col in t]
    return Chart("per_class", "Per-class AP, precision, recall", traces,
                 _layout("Per class (click: precision -> false positives, recall -> false negatives, AP -> both)",
                         barmode="group", showlegend=True, legend={"orientation": "h", "y": -0.25},
                         yaxis={"range": [0, 1]}))


def prediction_errors(samples, result: AuditResult) -> pd.DataFrame:
    """False positives and false negatives of a prediction run: ``sample_id, field, label_id, label,
    error (fp|fn), score``, from the stored ``<key>_error`` (predictions) and ``<key>_match_id``
    (labels): a prediction is FP unless its error is ``tp`` or ``ignored`` (matched a crowd region);
    a non-crowd label is FN unless a prediction of its class matched it."""
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = _run_view(samples, result)
    _need_attr(view, pf, f"{key}_error", key)
    _need_attr(view, gf, f"{key}_match_id", key)
    p = _label_rows(view, pf, [f"{key}_error"])
    g = _label_rows(view, gf, [f"{key}_match_id"])
    fp = p[~p[f"{key}_error"].isin(["tp", "ignored"])]
    pred_class = dict(zip(p["label_id"], p["label"]))
    matched_class = g[f"{key}_match_id"].map(lambda i: pred_class.get(i) if i else None)
    fn = g[~g["iscrowd"] & (matched_class != g["label"])]
    return pd.concat([
        pd.DataFrame({"sample_id": fp["sample_id"], "field": pf, "label_id": fp["label_id"], "label": fp["label"],
                      "error": "fp", "score": fp["confidence"].fillna(1.0)}),
        pd.DataFrame({"sample_id": fn["sample_id"], "field": gf, "label_id": fn["label_id"], "label": fn["label"],
                      "error": "fn", "score": 1.0}),
    ], ignore_index=True)


def select_class_errors(samples, result: AuditResult, label_class: str, metric: str) -> Selection:
    d = prediction_errors(samples, result)
    want = {"precision": ["fp"], "recall": ["fn"]}.get(metric, ["fp", "fn"])
    d = d[(d["label"] == label_class) & d["error"].isin(want)]
    what = {"precision": "false positives", "recall": "false negatives"}.get(metric, "false positives and negatives")
    return selection_from_rows(d["sample_id"], d["field"], d["label_id"], d["score"], title=f"{label_class}: {what}")


def tide_chart(result: AuditResult) -> Chart | None:
    t = result.tables["tide"]
    if not len(t):
        return None
    trace = {"type": "bar", "x": t["error"].astype(str).tolist(), "y": _none_nan(t["dAP"].round(5).tolist()),
             "text": [f"{int(n)}" for n in t["count"]], "textposition": "outside",
             "hovertemplate": "%{x}: dAP %{y:.4f}, %{text} errors<extra></extra>"}
    return Chart("tide", "TIDE", [trace], _layout("TIDE: AP lost per error type (count on top; click a bar)"))


def select_tide(samples, result: AuditResult, error: str) -> Selection:
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = _run_view(samples, result)
    attr = f"{key}_tide"
    fld = gf if error == "missed" else pf
    _need_attr(view, fld, attr, key)
    d = _label_rows(view, fld, [attr])
    d = d[d[attr] == error]
    score = d["confidence"].fillna(1.0) if fld == pf else np.ones(len(d))
    return selection_from_rows(d["sample_id"], [fld] * len(d), d["label_id"], score, title=f"TIDE {error}")


# splits ---------------------------------------------------------------------------------------------


def leak_pairs(result: AuditResult) -> pd.DataFrame:
    """The sample-pair findings of a split audit (leaks), most similar first."""
    f = result.findings
    rows = f[(f["other_sample_id"] != "") & (f["other_sample_id"] != f["sample_id"])]
    return rows.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def drift_label(row: Mapping[str, Any]) -> str:
    return f"{row['quantity']} {row['split_a']}/{row['split_b']} ({row['test']})"


def drift_chart(result: AuditResult) -> Chart | None:
    t = result.tables["drift_tests"]
    t = t[t["effect_size"].notna()]
    if not len(t):
        return None
    min_effect = float((result.config or {}).get("min_effect", 0.1))
    alpha = float((result.config or {}).get("alpha", 0.01))
    flagged = (t["effect_size"].abs() >= min_effect) & (t["p_adjusted"].fillna(1.0) < alpha)
    trace = {"type": "bar", "orientation": "h", "y": [drift_label(r) for r in t.to_dict("records")],
             "x": t["effect_size"].astype(float).round(4).tolist(), "ids": [str(i) for i in t.index],
             "marker": {"color": ["#d62728" if f else "#7f7f7f" for f in flagged]},
             "hovertemplate": "%{y}: effect %{x:.3f}<extra></extra>"}
    return Chart("drift", "Drift effect sizes", [trace],
                 _layout(f"Drift effect size per test (red: p_adj < {alpha:g} and effect >= {min_effect:g})",
                         height=max(220, 22 * len(t) + 60), margin={"l": 10, "r": 10, "t": 30, "b": 30},
                         yaxis={"automargin": True, "autorange": "reversed"}))


def select_drift(samples, result: AuditResult, row_index: int) -> Selection:
    """The samples of the two splits a drift test compared."""
    from fiftyone import ViewField as F

    t = result.tables["drift_tests"]
    row = t.loc[int(row_index)]
    c = result.config or {}
    view = _run_view(samples, result)
    splits = [row["split_a"], row["split_b"]]
    if c.get("split_field"):
        view = view.match(F(c["split_field"]).is_in(splits))
    else:
        view = view.match_tags(splits)
    ids = view.values("id")
    return Selection(ids, {}, fields=[c["label_field"]] if c.get("label_field") else [],
                     title=f"{drift_label(row)}: samples of {splits[0]} and {splits[1]}")


# dispatch -------------------------------------------------------------------------------------------


def select(samples, result: AuditResult, chart: str, point: Mapping[str, Any]) -> Selection:
    """The selection behind one clicked element of ``charts(result)[chart]``.

    ``point`` is the App's click event: ``x``, ``y`` (categories or numbers), ``trace`` (the trace
    name), ``idx`` (point index), ``id`` (the trace's ``ids`` entry).
    """
    x, y, trace, idx = point.get("x"), point.get("y"), point.get("trace"), point.get("idx")
    if chart == "kinds":  # horizontal bars: the kind is the bar's id (and its y)
        kind = point.get("id") or (y if isinstance(y, str) else x)
        return select_kind_class(result, str(kind), str(trace if trace is not None else NO_CLASS))
    if chart == "matrix":
        return select_pair(samples, result, str(y), str(x))
    if chart == "iou_hist":
        index = point.get("id")
        index = int(index) if index not in (None, "") else int(idx)
        return select_iou_bin(samples, result, index)
    if chart == "class_agreement":
        return select_class(result, str(x))
    if chart == "threshold_curve":
        return select_below_iou(samples, result, float(x))
    if chart == "annotators":
        return select_annotator(result, str(x))
    if chart == "confusion":
        return select_confusion(samples, result, str(y), str(x))
    if chart == "per_class":
        return select_class_errors(samples, result, str(x), str(trace or "AP"))
    if chart == "tide":
        return select_tide(samples, result, str(x))
    if chart == "drift":
        index = point.get("id")
        return select_drift(samples, result, int(index) if index not in (None, "") else int(idx))
    raise ValueError(f"unknown chart {chart!r}")


# queue ------------------------------------------------------------------------------------------------

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
