"""Audits of Keypoints fields (``fo.Keypoints``) on the one audit skeleton: predictions against
labels (:mod:`.predictions`), agreement between annotators (:mod:`.agreement`) and duplicate
skeletons within a field (:mod:`.duplicates`). OKS from :mod:`iou_audit.geometry.keypoints`."""
from iou_audit.audits.keypoints.agreement import KeypointAgreementConfig, audit_keypoint_agreement
from iou_audit.audits.keypoints.duplicates import KeypointDuplicatesConfig, audit_keypoint_duplicates
from iou_audit.audits.keypoints.predictions import KeypointPredictionsConfig, audit_keypoint_predictions

__all__ = ["KeypointAgreementConfig", "KeypointDuplicatesConfig", "KeypointPredictionsConfig",
           "audit_keypoint_agreement", "audit_keypoint_duplicates", "audit_keypoint_predictions"]
