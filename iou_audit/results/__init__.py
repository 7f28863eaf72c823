"""Findings (one shape for every audit), AuditResult, and audits stored in the dataset as runs."""
from iou_audit.results.findings import FINDING_COLUMNS, concat_findings, make_findings
from iou_audit.results.result import AuditResult
from iou_audit.results.runs import audit_info, delete_audit, list_audits, load_audit, save_audit

__all__ = [
    "FINDING_COLUMNS",
    "AuditResult",
    "audit_info",
    "concat_findings",
    "delete_audit",
    "list_audits",
    "load_audit",
    "make_findings",
    "save_audit",
]
