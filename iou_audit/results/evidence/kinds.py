"""Every audit's first chart: findings per kind and class, a bar per (kind, class)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.results.evidence.base import Chart, Selection, chart_layout, findings_selection, result_fields
from iou_audit.results.result import NO_CLASS, AuditResult


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
                 chart_layout("Findings by kind and class (click a bar)", height=max(180, 34 * len(table) + 110),
                         barmode="stack", showlegend=True, legend={"orientation": "h", "y": -0.3},
                         yaxis={"autorange": "reversed", "automargin": True}))


def select_kind_class(result: AuditResult, kind: str, label: str) -> Selection:
    f = result.findings
    label = "" if label == NO_CLASS else label
    rows = f[(f["kind"] == kind) & (f["label"] == label)]
    return findings_selection(rows, title=f"{kind} {label or NO_CLASS}", fields=result_fields(result))

