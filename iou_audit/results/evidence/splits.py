"""Charts of a splits run: leak pairs and the drift tests' effect sizes."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from iou_audit.results.evidence.base import Chart, Selection, chart_layout, run_view
from iou_audit.results.result import AuditResult


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
                 chart_layout(f"Drift effect size per test (red: p_adj < {alpha:g} and effect >= {min_effect:g})",
                         height=max(220, 22 * len(t) + 60), margin={"l": 10, "r": 10, "t": 30, "b": 30},
                         yaxis={"automargin": True, "autorange": "reversed"}))


def select_drift(samples, result: AuditResult, row_index: int) -> Selection:
    """The samples of the two splits a drift test compared."""
    from fiftyone import ViewField as F

    t = result.tables["drift_tests"]
    row = t.loc[int(row_index)]
    c = result.config or {}
    view = run_view(samples, result)
    splits = [row["split_a"], row["split_b"]]
    if c.get("split_field"):
        view = view.match(F(c["split_field"]).is_in(splits))
    else:
        view = view.match_tags(splits)
    ids = view.values("id")
    return Selection(ids, {}, fields=[c["label_field"]] if c.get("label_field") else [],
                     title=f"{drift_label(row)}: samples of {splits[0]} and {splits[1]}")

