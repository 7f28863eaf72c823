"""Model versus labels: label errors from a model's predictions, COCO-exact metrics, TIDE attribution.

Modules: ``pairs`` (pair IoUs), ``errors`` (error types and scores), ``quality`` (label/image quality),
``coco_eval`` + ``metrics`` (pycocotools-exact COCO numbers, counts, confusion), ``tide`` (dAP),
``core`` (the array pipeline), ``findings`` (finding rows, values written back), ``audit`` (FiftyOne),
``coco_io`` (COCO json -> tables, for oracles).
"""
from iou_audit.audits.predictions.core import PredictionAudit, compute_prediction_audit  # noqa: F401


def audit_predictions(*args, **kwargs):
    """See :func:`iou_audit.audits.predictions.audit.audit_predictions` (imported lazily: needs FiftyOne)."""
    from iou_audit.audits.predictions.audit import audit_predictions as _run

    return _run(*args, **kwargs)


__all__ = ["PredictionAudit", "compute_prediction_audit", "audit_predictions"]
