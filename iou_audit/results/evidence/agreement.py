"""Charts of a box/mask/polygon agreement run: the annotator matrix, the IoU histogram, per-class
agreement, agreement vs IoU threshold, per-annotator reliability, and what is behind each."""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.results.evidence.base import (
    Chart,
    Selection,
    chart_layout,
    findings_selection,
    label_rows,
    none_nan,
    run_view,
    selection_from_rows,
)
from iou_audit.results.result import AuditResult

#: Matrix metrics offered by the agreement heatmap: pair-table column -> label.
MATRIX_METRICS = {"f1": "pairwise F1", "f1_class": "pairwise F1 (same class)", "mean_iou": "mean IoU",
                  "alpha": "Krippendorff alpha"}
#: Bins of the agreement IoU histogram.
IOU_BINS = 20

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



def matrix_chart(result: AuditResult, metric: str = "f1") -> Chart:
    m = agreement_matrix(result, metric)
    z = [none_nan([round(float(v), 3) for v in row]) for row in m.to_numpy()]
    trace = {"type": "heatmap", "x": m.columns.tolist(), "y": m.index.tolist(), "z": z,
             "colorscale": "Viridis", "texttemplate": "%{z:.2f}", "hoverongaps": False,
             "colorbar": {"thickness": 8}}
    return Chart("matrix", f"Annotator x annotator: {MATRIX_METRICS[metric]}", [trace],
                 chart_layout(f"{MATRIX_METRICS[metric]} (click a cell: where the two disagree)", height=300,
                         yaxis={"autorange": "reversed"}))



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
    view = run_view(samples, result)
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

    view = run_view(samples, result)
    attr = f"{result.audit_key}_iou"
    frames = []
    for fld in _annotator_fields(result):
        _, list_path = check_label_field(view, fld)
        if view.get_field(f"{list_path}.{attr}") is None:
            continue
        d = label_rows(view, fld, [attr])
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
                 chart_layout("IoU of each label with its object's other annotators (click a bin)",
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
    trace = {"type": "bar", "x": t["label"].astype(str).tolist(), "y": none_nan(t[col].round(4).tolist())}
    return Chart("class_agreement", "Agreement per class", [trace],
                 chart_layout(f"{MATRIX_METRICS.get(col, col)} per class (click: its findings)", yaxis={"range": [0, 1]}))


def select_class(result: AuditResult, label: str) -> Selection:
    f = result.findings
    return findings_selection(f[f["label"] == label], title=f"{result.audit} findings of class {label}")


def threshold_curve_chart(result: AuditResult) -> Chart | None:
    t = result.tables.get("threshold_curve")
    if t is None or not len(t):
        return None
    traces = [{"type": "scatter", "mode": "lines+markers", "name": col, "x": t["iou_thresh"].round(4).tolist(),
               "y": none_nan(t[col].round(4).tolist())} for col in ("f1", "alpha_nominal") if col in t]
    return Chart("threshold_curve", "Agreement vs IoU threshold", traces,
                 chart_layout("Agreement vs IoU threshold (click: labels below it)", showlegend=True,
                         legend={"orientation": "h", "y": -0.25}, yaxis={"range": [0, 1]}))


def annotators_chart(result: AuditResult) -> Chart | None:
    t = result.tables.get("annotators")
    if t is None or not len(t):
        return None
    traces = [{"type": "bar", "name": col, "x": t["annotator"].astype(str).tolist(),
               "y": none_nan(t[col].round(4).tolist())} for col in ("reliability", "reliability_class") if col in t]
    return Chart("annotators", "Per-annotator reliability", traces,
                 chart_layout("Reliability per annotator (click: its findings)", barmode="group", showlegend=True,
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

