"""``audit_predictions``: read two fields in bulk, run the array core, write results in bulk."""
from __future__ import annotations

import numpy as np

from iou_audit.audits.predictions.core import compute_prediction_audit
from iou_audit.audits.predictions.findings import label_values, to_audit_result
from iou_audit.results import AuditResult, save_audit
from iou_audit.table import ReadLayout, read_label_table
from iou_audit.table.read import _gc_paused


@_gc_paused()  # no reference cycles are made; a full collection over a big heap costs 0.1-0.3 s
def audit_predictions(
    samples,
    pred_field: str,
    gt_field: str,
    iou_thresh: float = 0.5,
    method: str = "coco",
    classwise: bool = True,
    audit_key: str = "predictions",
    iou_type: str = "bbox",
    good_fit: float = 0.75,
    min_score: float = 0.5,
    coco_metrics: bool = True,
    tide: bool = True,
    save: bool = True,
    progress=None,
) -> AuditResult:
    """Find label errors from a model's predictions, with COCO-exact matching and ranked findings.

    Args:
        samples: a FiftyOne dataset or view.
        pred_field: Detections field with the model's predictions (``confidence`` used for ordering
            and scores; missing confidences count as 1).
        gt_field: Detections field with the labels (``iscrowd`` respected).
        iou_thresh: matching IoU threshold.
        method: ``"coco"`` (greedy by confidence, pycocotools-exact) or ``"hungarian"``.
        classwise: match only same-class pairs (False: geometry first).
        audit_key: results are stored under this key (see ``iou_audit.results.save_audit``).
        iou_type: ``"bbox"`` or ``"segm"`` (instance masks on both fields).
        good_fit: IoU at which a matched label counts as well placed.
        min_score: findings (and tags) are emitted for scores >= this.
        coco_metrics, tide: compute COCO AP@[.5:.95] and the TIDE dAP attribution.
        save: write results into the dataset.
        progress: optional ``callable(fraction, label)`` told when each stage (read, audit, write) starts.

    Writes (when ``save``): on both fields ``<key>_iou`` and ``<key>_match_id`` (the matched label's
    id, "" if none); on labels ``<key>_quality`` (0..1, see ``quality``); on predictions ``<key>_error``
    (TIDE kind); tags ``<key>:<kind>`` for possible_missing, possible_spurious, mislocated,
    class_swap, duplicate_prediction; per-sample ``<key>_<kind>`` counts and ``<key>_quality``;
    one saved view per kind; a custom run with config, findings, metrics and tables.

    Returns:
        AuditResult with ``metrics`` (tp/fp/fn, precision, recall, AP, AP50, AP75, AP s/m/l, AR..., the
        TIDE dAPs) and ``tables`` (``per_class``, ``confusion``, ``tide``, ``per_sample``).

    Example:
        >>> r = audit_predictions(ds, "sim_predictions", "ground_truth")   # doctest: +SKIP
        >>> r.metrics["AP"], r.summary()                                   # doctest: +SKIP
    """
    report = progress or (lambda fraction, label: None)
    segm = iou_type == "segm"
    report(0.0, "reading labels")
    pred = read_label_table(samples, pred_field, masks=segm)
    gt_attrs = ("area",) if samples.has_field(f"{gt_field}.detections.area") else ()
    gt = read_label_table(samples, gt_field, attributes=gt_attrs, masks=segm)
    if pred.label_type != "detections" or gt.label_type != "detections":
        raise ValueError(f"audit_predictions needs Detections fields; got {pred_field!r} ({pred.label_type}) "
                         f"and {gt_field!r} ({gt.label_type})")
    report(0.3, "matching and scoring")
    a = compute_prediction_audit(pred, gt, iou_thresh, method, classwise, iou_type, good_fit,
                                 coco_metrics=coco_metrics, tide=tide)
    result = to_audit_result(a, audit_key, min_score)
    if save:
        report(0.6, "writing results")
        quality = dict(zip(gt.sample_ids.tolist(), np.round(a.image_quality, 6).tolist()))
        layout = ReadLayout()  # where the labels are: the write need not look for them again
        layout.add_table(pred_field, pred)
        if gt_field != pred_field:
            layout.add_table(gt_field, gt)
        save_audit(samples, result, label_attributes=label_values(a), sample_fields={"quality": quality},
                   layout=layout)
    report(1.0, "done")
    return result
