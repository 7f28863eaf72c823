"""Audits of semantic segmentation fields (``fo.Segmentation``) on the one audit skeleton:
agreement between annotators' fields, or a model's field against the labels (:mod:`.agreement`).
Scores from :mod:`iou_audit.geometry.semantic`; masks read by :mod:`iou_audit.table.segmentation`."""
from iou_audit.audits.segmentation.agreement import SegmentationAgreementConfig, audit_segmentation_agreement

__all__ = ["SegmentationAgreementConfig", "audit_segmentation_agreement"]
