"""Charts of a predictions run: the confusion matrix, per-class AP/precision/recall, TIDE."""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.results.evidence.base import (
    Chart,
    Selection,
    chart_layout,
    label_rows,
    need_attr,
    none_nan,
    run_view,
    selection_from_rows,
)
from iou_audit.results.result import AuditResult

#: The confusion matrix's background row/column (``iou_audit.audits.predictions.metrics.UNMATCHED``).
UNMATCHED = "unmatched"

def confusion_chart(result: AuditResult) -> Chart:
    cm = result.tables["confusion"]
    z = cm.to_numpy().tolist()
    trace = {"type": "heatmap", "x": [str(c) for c in cm.columns], "y": [str(r) for r in cm.index], "z": z,
             "colorscale": "Blues", "texttemplate": "%{z}", "colorbar": {"thickness": 8},
             "hovertemplate": "label %{y}, predicted %{x}: %{z}<extra></extra>"}
    return Chart("confusion", "Confusion matrix", [trace],
                 chart_layout("Confusion (rows: label, columns: prediction; click a cell)", height=300,
                         xaxis={"title": {"text": "prediction"}}, yaxis={"title": {"text": "label"},
                                                                         "autorange": "reversed"}))


def _pred_fields(result: AuditResult) -> tuple[str, str]:
    c = result.config or {}
    return c["pred_field"], c["gt_field"]



def select_confusion(samples, result: AuditResult, label_class: str, pred_class: str) -> Selection:
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = run_view(samples, result)
    attr = f"{key}_confusion"
    rows = []
    if label_class != UNMATCHED:
        need_attr(view, gf, attr, key)
        g = label_rows(view, gf, [attr])
        g = g[(g["label"] == label_class) & (g[attr] == pred_class)]
        rows.append(pd.DataFrame({"sample_id": g["sample_id"], "field": gf, "label_id": g["label_id"], "score": 1.0}))
    if pred_class != UNMATCHED:
        need_attr(view, pf, attr, key)
        p = label_rows(view, pf, [attr])
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
    traces = [{"type": "bar", "name": col, "x": t["class"].astype(str).tolist(), "y": none_nan(t[col].round(4).tolist())}
              for col in ("AP", "precision", "recall") if col in t]
    return Chart("per_class", "Per-class AP, precision, recall", traces,
                 chart_layout("Per class (click: precision -> false positives, recall -> false negatives, AP -> both)",
                         barmode="group", showlegend=True, legend={"orientation": "h", "y": -0.25},
                         yaxis={"range": [0, 1]}))


def prediction_errors(samples, result: AuditResult) -> pd.DataFrame:
    """False positives and false negatives of a prediction run: ``sample_id, field, label_id, label,
    error (fp|fn), score``, from the stored ``<key>_error`` (predictions) and ``<key>_match_id``
    (labels): a prediction is FP unless its error is ``tp`` or ``ignored`` (matched a crowd region);
    a non-crowd label is FN unless a prediction of its class matched it."""
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = run_view(samples, result)
    need_attr(view, pf, f"{key}_error", key)
    need_attr(view, gf, f"{key}_match_id", key)
    p = label_rows(view, pf, [f"{key}_error"])
    g = label_rows(view, gf, [f"{key}_match_id"])
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
    trace = {"type": "bar", "x": t["error"].astype(str).tolist(), "y": none_nan(t["dAP"].round(5).tolist()),
             "text": [f"{int(n)}" for n in t["count"]], "textposition": "outside",
             "hovertemplate": "%{x}: dAP %{y:.4f}, %{text} errors<extra></extra>"}
    return Chart("tide", "TIDE", [trace], chart_layout("TIDE: AP lost per error type (count on top; click a bar)"))


def select_tide(samples, result: AuditResult, error: str) -> Selection:
    key = result.audit_key
    pf, gf = _pred_fields(result)
    view = run_view(samples, result)
    attr = f"{key}_tide"
    fld = gf if error == "missed" else pf
    need_attr(view, fld, attr, key)
    d = label_rows(view, fld, [attr])
    d = d[d[attr] == error]
    score = d["confidence"].fillna(1.0) if fld == pf else np.ones(len(d))
    return selection_from_rows(d["sample_id"], [fld] * len(d), d["label_id"], score, title=f"TIDE {error}")

