"""One-to-one matching on IoU matrices: greedy COCO (pycocotools-exact), optimal Hungarian, AP.

Plain numpy arrays in and out; imports neither FiftyOne nor pandas.
"""
from iou_audit.matching.ap import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    average_precision,
    precision_at_recall,
)
from iou_audit.matching.batched import batched_match
from iou_audit.matching.classes import label_agreement
from iou_audit.matching.coco import CocoEvalResult, coco_evaluate
from iou_audit.matching.greedy import greedy_match
from iou_audit.matching.hungarian import hungarian_match

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "CocoEvalResult",
    "average_precision",
    "batched_match",
    "coco_evaluate",
    "greedy_match",
    "hungarian_match",
    "label_agreement",
    "precision_at_recall",
]
