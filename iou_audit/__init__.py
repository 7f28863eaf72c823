"""iou-audit: annotation-quality audits for computer-vision datasets.

Layers (arrows point down only): audits -> table/results -> matching -> geometry. The public names
below are imported lazily, so ``from iou_audit import box_iou`` does not import FiftyOne.

Example:
    >>> import numpy as np, iou_audit
    >>> iou_audit.box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])).round(6)
    array([[0.142857]])
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "box_iou": "iou_audit.geometry.boxes",
    "batched_box_iou": "iou_audit.geometry.boxes",
    "batched_self_pairs": "iou_audit.geometry.boxes",
    "batched_pair_rows": "iou_audit.geometry.boxes",
    "polygon_iou": "iou_audit.geometry.polygons",
    "batched_polygon_iou": "iou_audit.geometry.polygons",
    "to_geometries": "iou_audit.geometry.polygons",
    "rotated_box_to_polygon": "iou_audit.geometry.polygons",
    "cropped_mask_iou": "iou_audit.geometry.masks",
    "batched_cropped_mask_iou": "iou_audit.geometry.masks",
    "oks": "iou_audit.geometry.keypoints",
    "batched_oks": "iou_audit.geometry.keypoints",
    "keypoint_evaluate": "iou_audit.matching.keypoints",
    "compute_ious": "iou_audit.labels",
    "semantic_iou": "iou_audit.geometry.masks",
    "boundary_iou": "iou_audit.geometry.masks",
    "confusion_matrices": "iou_audit.geometry.semantic",
    "pixel_alpha": "iou_audit.geometry.semantic",
    "greedy_match": "iou_audit.matching",
    "hungarian_match": "iou_audit.matching",
    "batched_match": "iou_audit.matching",
    "read_label_table": "iou_audit.table",
    "iter_label_tables": "iou_audit.table",
    "LabelTable": "iou_audit.table",
    "AuditResult": "iou_audit.results",
    "list_audits": "iou_audit.results",
    "load_audit": "iou_audit.results",
    "delete_audit": "iou_audit.results",
    "rerun_changed": "iou_audit.shards.incremental",
    "audit_duplicates": "iou_audit.audits.duplicates",
    "audit_label_prior": "iou_audit.audits.prior",
    "audit_agreement": "iou_audit.audits.agreement",
    "audit_predictions": "iou_audit.audits.predictions",
    "audit_splits": "iou_audit.audits.splits",
    "triage": "iou_audit.review",
    "mark_review": "iou_audit.review",
    "clear_review": "iou_audit.review",
    "load_decisions": "iou_audit.review",
    "audit_keypoint_predictions": "iou_audit.audits.keypoints",
    "audit_keypoint_duplicates": "iou_audit.audits.keypoints",
    "audit_keypoint_agreement": "iou_audit.audits.keypoints",
    "audit_segmentation_agreement": "iou_audit.audits.segmentation",
    "ingest": "iou_audit.ingest",
    "ingest_bccd": "iou_audit.ingest",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'iou_audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
