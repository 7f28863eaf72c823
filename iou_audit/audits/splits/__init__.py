"""Split audit: leakage between train/val/test (exact, near, annotation and group leaks) and drift
in what each split contains. See ``iou_audit.audits.splits.audit.audit_splits``."""
