"""Split audit: leakage between train/val/test (exact, near, annotation and group leaks) and drift
in what each split contains.

Modules: ``hashing`` (file SHA-256, DCT pHash), ``index`` (multi-index Hamming search),
``leaks`` and ``drift`` (array cores), ``sources`` (bulk reads, hash cache), ``audit``
(``audit_splits``: FiftyOne wiring, saved views).
"""
from iou_audit.audits.splits.audit import KINDS, SplitsConfig, audit_splits, pair_groups

__all__ = ["KINDS", "SplitsConfig", "audit_splits", "pair_groups"]
