"""``audit_predictions``: read two fields in bulk, run the array core, hand the output to the runner."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.audits.predictions.core import compute_prediction_audit
from iou_audit.audits.predictions.findings import AUDIT, KINDS, build_findings, label_batches
from iou_audit.results import AuditResult
from iou_audit.table import read_label_table
from iou_audit.vocabulary import METHODS, canonical_geometry, canonical_method

__all__ = ["AUDIT", "KINDS", "PredictionsConfig", "audit_predictions"]

GEOMETRIES = ("boxes", "masks")
#: COCO's ``iouType`` for each geometry (what ``compute_prediction_audit`` and COCOeval call it)
COCO_IOU_TYPE = {"boxes": "bbox", "masks": "segm"}


@dataclass(frozen=True)
class PredictionsConfig(AuditConfig):
    """Parameters of the prediction audit (the defaults, the stored config, the CLI and the form)."""

    pred_field: str = option(None, "Detections field with the model's predictions", kind="field")
    gt_field: str = option(None, "Detections field with the labels", kind="field")
    iou_thresh: float = option(0.5, "matching IoU threshold", low=0.0, high=1.0, low_open=True, label="Match IoU")
    method: str = option("greedy", "greedy by confidence (pycocotools-exact) or Hungarian", choices=METHODS)
    classwise: bool = option(True, "match only same-class pairs (off: geometry first)", label="Class-wise matching")
    geometry: str = option("boxes", "compare boxes or instance masks", choices=GEOMETRIES)
    good_fit: float = option(0.75, "IoU at which a matched label counts as well placed", low=0.0, high=1.0,
                             low_open=True, label="Good-fit IoU")
    min_score: float = option(0.5, "findings (and tags) are emitted for scores >= this", low=0.0, high=1.0,
                              label="Minimum score")
    coco_metrics: bool = option(True, "compute COCO AP@[.5:.95] (10 thresholds x 4 area ranges)", label="COCO metrics")
    tide: bool = option(True, "compute the TIDE dAP attribution", label="TIDE")
    extra_pred_fields: tuple = option((), "more Detections fields of predictions (ensemble members, test-time "
                                      "augmentations) used as evidence for the label scores and possible_missing",
                                      kind="fields", form=False)


def audit_predictions(
    samples,
    pred_field: str,
    gt_field: str,
    iou_thresh: float = PredictionsConfig.iou_thresh,
    method: str = PredictionsConfig.method,
    classwise: bool = True,
    audit_key: str = "predictions",
    iou_type: str | None = None,
    good_fit: float = PredictionsConfig.good_fit,
    min_score: float = PredictionsConfig.min_score,
    coco_metrics: bool = True,
    tide: bool = True,
    save: bool = True,
    progress=None,
    geometry: str = PredictionsConfig.geometry,
    keep_parts=False,
    extra_pred_fields=(),
) -> AuditResult:
    """Find label errors from a model's predictions, with COCO-exact matching and ranked findings.

    Args:
        samples: a FiftyOne dataset or view.
        pred_field: Detections field with the model's predictions (``confidence`` used for ordering
            and scores; missing confidences count as 1).
        gt_field: Detections field with the labels (``iscrowd`` respected).
        iou_thresh: matching IoU threshold.
        method: ``"greedy"`` (by confidence, pycocotools-exact; ``"coco"`` is an alias) or ``"hungarian"``.
        classwise: match only same-class pairs (False: geometry first).
        audit_key: results are stored under this key (see ``iou_audit.results.save_audit``).
        geometry: ``"boxes"`` or ``"masks"`` (instance masks on both fields); ``iou_type`` ("bbox" /
            "segm", COCO's names) is accepted for it.
        good_fit: IoU at which a matched label counts as well placed.
        min_score: findings (and tags) are emitted for scores >= this.
        coco_metrics, tide: compute COCO AP@[.5:.95] and the TIDE dAP attribution.
        extra_pred_fields: more prediction fields (an ensemble's other models, test-time-augmentation
            passes): each is matched and calibrated like ``pred_field`` and the label scores and
            ``possible_missing`` are the means over all fields (``iou_audit.audits.predictions.ensemble``);
            matching, metrics and TIDE use ``pred_field`` only.
        save: write results into the dataset.
        progress: None, True (a tqdm bar), a callable ``(fraction, label)`` or an operator context.
        keep_parts: True (or a number of samples per part) keeps the run's parts so
            ``iou_audit.rerun_changed`` can later re-run only the changed samples (same stored run;
            see ``iou_audit.shards.plain``).

    Writes (when ``save``): on both fields ``<key>_iou`` and ``<key>_match_id`` (the matched label's
    id, "" if none); on labels ``<key>_quality`` (0..1, see ``quality``); on predictions ``<key>_error``
    (TIDE kind); on both ``<key>_confusion`` (the class on the other side of the label's
    confusion cell, or ``unmatched``) and, on the labels TIDE counts, ``<key>_tide`` (its error type); tags ``<key>:<kind>`` for possible_missing, possible_spurious, mislocated,
    class_swap, duplicate_prediction; per-sample ``<key>_<kind>`` counts and ``<key>_quality``;
    one saved view per kind; a custom run with config, findings, metrics and tables.

    Returns:
        AuditResult with ``metrics`` (tp/fp/fn, precision, recall, AP, AP50, AP75, AP s/m/l, AR..., the
        TIDE dAPs) and ``tables`` (``per_class``, ``confusion``, ``tide``, ``per_sample``).

    Example:
        >>> r = audit_predictions(ds, "sim_predictions", "ground_truth")   # doctest: +SKIP
        >>> r.metrics["AP"], r.summary()                                   # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    config = PredictionsConfig(
        pred_field=pred_field, gt_field=gt_field, iou_thresh=iou_thresh, method=canonical_method(method),
        classwise=bool(classwise), geometry=canonical_geometry(iou_type if iou_type is not None else geometry),
        good_fit=good_fit, min_score=min_score, coco_metrics=bool(coco_metrics), tide=bool(tide),
        extra_pred_fields=tuple(extra_pred_fields or ()))
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress,
                     keep_parts=keep_parts)


def _read_and_compute(samples, config: PredictionsConfig, report) -> AuditOutput:
    pred, gt = read_tables(samples, config, report)
    extra = tuple(read_label_table(samples, f, masks=config.geometry == "masks") for f in config.extra_pred_fields)
    for f, t in zip(config.extra_pred_fields, extra):
        if t.label_type != "detections":
            raise ValueError(f"extra_pred_fields: {f!r} is not a Detections field ({t.label_type})")
    report.report(0.3, "matching and scoring")
    return output_from_tables(pred, gt, config, extra_preds=extra)


def read_tables(samples, config: PredictionsConfig, report):
    """``(pred, gt)``: the two fields' LabelTables over ``samples`` (same sample order)."""
    segm = config.geometry == "masks"
    report.report(0.0, "reading labels")
    pred = read_label_table(samples, config.pred_field, masks=segm)
    gt_attrs = ("area",) if samples.has_field(f"{config.gt_field}.detections.area") else ()
    gt = read_label_table(samples, config.gt_field, attributes=gt_attrs, masks=segm)
    if pred.label_type != "detections" or gt.label_type != "detections":
        raise ValueError(f"audit_predictions needs Detections fields; got {config.pred_field!r} ({pred.label_type}) "
                         f"and {config.gt_field!r} ({gt.label_type})")
    return pred, gt


def output_from_tables(pred, gt, config: PredictionsConfig, pair_ious: tuple | None = None,
                       extra_preds: tuple | None = None) -> AuditOutput:
    """The audit's output on the two tables (``pair_ious``: their IoU blocks, when already computed;
    ``extra_preds``: the tables of ``config.extra_pred_fields``)."""
    if config.extra_pred_fields and extra_preds is None:
        raise ValueError("extra_pred_fields are not supported here (sharded runs read two fields); "
                         "run audit_predictions unsharded")
    a = compute_prediction_audit(pred, gt, config.iou_thresh, config.method, config.classwise,
                                 COCO_IOU_TYPE[config.geometry], config.good_fit, coco_metrics=config.coco_metrics,
                                 tide=config.tide, pair_ious=pair_ious, extra_preds=tuple(extra_preds or ()))
    quality = dict(zip(gt.sample_ids.tolist(), np.round(a.image_quality, 6).tolist()))
    return AuditOutput(build_findings(a, config.min_score), label_batches=label_batches(a),
                       sample_values={"quality": quality}, tables=dict(a.tables), metrics=dict(a.metrics))
