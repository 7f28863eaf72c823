"""AuditResult: what an audit returns (findings + summary tables + metrics), with exports."""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np
import pandas as pd

from iou_audit.results.findings import FINDING_COLUMNS, make_findings

NO_CLASS = "(no class)"


@dataclass
class AuditResult:
    """The outcome of one audit run.

    Attributes:
        audit: the audit's name, e.g. ``"duplicates"``.
        audit_key: the user's key under which results are stored in the dataset.
        config: the audit's parameters (JSON-serialisable).
        findings: DataFrame with ``FINDING_COLUMNS`` (see :func:`make_findings`).
        tables: named summary DataFrames (e.g. per-class agreement).
        metrics: named scalars (e.g. ``{"mean_iou": 0.81}``).

    Example:
        >>> r = AuditResult("duplicates", "dup", {"iou_thresh": 0.7},
        ...                 make_findings([{"kind": "duplicate", "label": "RBC"}], audit="duplicates"))
        >>> r.summary().to_dict()
        {'RBC': {'duplicate': 1}, 'total': {'duplicate': 1}}
    """

    audit: str
    audit_key: str
    config: dict = dc_field(default_factory=dict)
    findings: pd.DataFrame = dc_field(default_factory=make_findings)
    tables: dict[str, pd.DataFrame] = dc_field(default_factory=dict)
    metrics: dict[str, Any] = dc_field(default_factory=dict)

    def __post_init__(self) -> None:
        self.findings = make_findings(self.findings)

    def summary(self) -> pd.DataFrame:
        """Counts of findings per kind (rows) and per class (columns), plus a ``total`` column."""
        f = self.findings
        if not len(f):
            return pd.DataFrame({"total": pd.Series(dtype=np.int64)}, index=pd.Index([], name="kind"))
        labels = f["label"].where(f["label"] != "", NO_CLASS)
        table = pd.crosstab(f["kind"], labels).astype(np.int64)
        table.columns.name = None
        table["total"] = table.sum(axis=1)
        return table.sort_values("total", ascending=False, kind="stable")

    def counts(self) -> dict[str, int]:
        """``{kind: number of findings}``."""
        return {k: int(v) for k, v in self.findings["kind"].value_counts(sort=False).items()}

    def to_csv(self, path) -> pathlib.Path:
        """Write the findings as CSV."""
        path = pathlib.Path(path)
        self.findings.to_csv(path, index=False)
        return path

    def to_parquet(self, path) -> pathlib.Path:
        """Write the findings as Parquet."""
        path = pathlib.Path(path)
        self.findings.to_parquet(path, index=False)
        return path

    def to_json(self, path) -> pathlib.Path:
        """Write everything (audit, key, config, metrics, findings records, tables) as JSON."""
        path = pathlib.Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=jsonable))
        return path

    def to_dict(self) -> dict:
        return {
            "audit": self.audit,
            "audit_key": self.audit_key,
            "config": jsonify(self.config),
            "metrics": jsonify(self.metrics),
            "findings": json.loads(self.findings.to_json(orient="records")),
            "tables": {k: json.loads(v.to_json(orient="split")) for k, v in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "AuditResult":
        return cls(
            audit=d["audit"],
            audit_key=d["audit_key"],
            config=d.get("config") or {},
            findings=make_findings(pd.DataFrame(d.get("findings") or [], columns=FINDING_COLUMNS)),
            tables={k: pd.DataFrame(**v) for k, v in (d.get("tables") or {}).items()},
            metrics=d.get("metrics") or {},
        )

    @classmethod
    def from_json(cls, path) -> "AuditResult":
        return cls.from_dict(json.loads(pathlib.Path(path).read_text()))


def jsonable(value: Any) -> Any:
    """``json.dumps`` default: numpy scalars/arrays, sets, tuples, paths -> JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, pathlib.PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON serialisable")


def jsonify(value: Any) -> Any:
    """A deep copy of ``value`` made of JSON types only (raises naming the bad value)."""
    return json.loads(json.dumps(value, default=jsonable))
