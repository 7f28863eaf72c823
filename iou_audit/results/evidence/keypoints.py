"""Charts of the keypoint agreement and keypoint predictions runs: agreement per keypoint.

``per_keypoint`` (bar per keypoint, from the run's ``per_keypoint`` table): the mean similarity
(OKS term) of that keypoint over the matched skeleton pairs where both sides have it. A click ->
the run's findings on that keypoint: the labels (and their counterparts) where it disagrees
(``keypoint_disagreement`` / ``mislocated_keypoint``), is labeled on one side only
(``visibility_disagreement`` / ``extra_keypoint`` / ``missing_keypoint``) or is swapped with its
left/right twin (``left_right_swap``), as far as the run emitted them (``min_score``).
"""
from __future__ import annotations

import re

import pandas as pd

from iou_audit.audits.keypoints.agreement import AUDIT as AGREEMENT
from iou_audit.audits.keypoints.predictions import AUDIT as PREDICTIONS
from iou_audit.results.evidence.base import Chart, Selection, chart_layout, findings_selection, none_nan
from iou_audit.results.result import AuditResult

#: The keypoint audits whose runs have a ``per_keypoint`` table.
AUDITS = (AGREEMENT, PREDICTIONS)
#: Count columns of ``per_keypoint`` shown on hover, when the run has them.
COUNTS = ("compared", "disagreements", "mislocated", "labeled_by_one", "extra", "missing", "swapped",
          "occlusion_disagreements")
_POINT = re.compile(r"^(?P<name>.+?) \((?P<index>\d+)\): ")
_SWAP = re.compile(r"^(?P<a>.+?) <-> (?P<b>.+?): ")


def keypoint_chart(result: AuditResult) -> Chart | None:
    t = result.tables.get("per_keypoint")
    if t is None or not len(t):
        return None
    counts = [c for c in COUNTS if c in t]
    hover = "<br>".join(f"{c.replace('_', ' ')}: %{{customdata[{i}]}}" for i, c in enumerate(counts))
    trace = {"type": "bar", "x": t["keypoint"].astype(str).tolist(),
             "y": none_nan(t["mean_similarity"].astype(float).round(4).tolist()),
             "customdata": t[counts].astype(int).values.tolist(),
             "hovertemplate": f"%{{x}}: mean similarity %{{y:.3f}}<br>{hover}<extra></extra>"}
    return Chart("per_keypoint", "Agreement per keypoint", [trace],
                 chart_layout("Mean similarity per keypoint (click: the labels where it disagrees)",
                              yaxis={"range": [0, 1]}, xaxis={"automargin": True, "tickangle": -45}))


def keypoint_of(detail: str) -> list[str]:
    """The keypoint names a keypoint finding's detail is about (two for a left/right swap).

    Example:
        >>> keypoint_of("left_knee (13): similarity 0.31"), keypoint_of("left_hip <-> right_hip: crossed 0.9")
        (['left_knee'], ['left_hip', 'right_hip'])
    """
    if m := _POINT.match(detail or ""):
        return [m["name"]]
    if m := _SWAP.match(detail or ""):
        return [m["a"], m["b"]]
    return []


def keypoint_findings(result: AuditResult, name: str) -> pd.DataFrame:
    """The run's findings on keypoint ``name``."""
    names = [str(n) for n in result.tables.get("per_keypoint", pd.DataFrame()).get("keypoint", [])]
    if name not in names:
        raise ValueError(f"unknown keypoint {name!r}; keypoints: {names}")
    f = result.findings
    return f[f["detail"].map(lambda d: name in keypoint_of(d))]


def select_keypoint(result: AuditResult, name: str) -> Selection:
    return findings_selection(keypoint_findings(result, name), title=f"where keypoint {name} disagrees")
