"""Model versus labels on two LabelTables (no database access): matching, error types, metrics.

:func:`compute_prediction_audit` is the array core of ``iou_audit.audit_predictions``:

1. IoU of every same-sample (prediction, label) pair (boxes, or cropped masks), crowd-aware;
2. one-to-one matching with ``iou_audit.matching.batched_match``: COCO-exact greedy by confidence
   (``method="greedy"``) or maximum total IoU (``"hungarian"``), class-aware or geometry-first;
3. error types and scores (:mod:`.errors`), label and image quality (:mod:`.quality`);
4. metrics: TP/FP/FN, precision and recall per class at the threshold, COCO AP (:mod:`.coco_eval`,
   pycocotools-exact), a confusion matrix with an ``unmatched`` row and column (:mod:`.metrics`), and the
   TIDE attribution of the AP lost to each error type (:mod:`.tide`).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
import pandas as pd

from iou_audit.audits.predictions import metrics as _metrics
from iou_audit.audits.predictions.calibration import calibrate_scores
from iou_audit.audits.predictions.errors import ErrorScores, classify_errors_batched
from iou_audit.audits.predictions.pairs import Matching, PredictionPairs, prediction_pair_ious, shared_class_codes
from iou_audit.audits.predictions.quality import image_quality, label_quality
from iou_audit.audits.predictions.tide import tide_attribution, tide_missed
from iou_audit.matching import batched_match
from iou_audit.vocabulary import canonical_geometry, canonical_method


@dataclass
class PredictionAudit:
    """Everything the audit computed, row-aligned with the two tables."""

    pred: object
    gt: object
    config: dict
    pred_match: np.ndarray  # (P,) gt row, -1
    pred_iou: np.ndarray
    gt_match: np.ndarray  # (G,) pred row, -1
    gt_iou: np.ndarray
    errors: ErrorScores
    label_quality: np.ndarray  # (G,)
    label_kind: np.ndarray  # (G,) most likely error kind
    image_quality: np.ndarray  # (S,)
    metrics: dict = dc_field(default_factory=dict)
    tables: dict = dc_field(default_factory=dict)
    # per label, what the review panel needs to show the labels behind a chart element:
    confusion_pred: np.ndarray | None = None  # (P,) class of the label in the confusion cell, "unmatched", None
    confusion_gt: np.ndarray | None = None  # (G,) class of the prediction in the cell, "unmatched", None
    tide_pred_kind: np.ndarray | None = None  # (P,) index into PRED_KINDS on TIDE's matching
    tide_missed: np.ndarray | None = None  # (G,) bool: TIDE's missed labels


def match_tables(values, pair_offsets, pred, gt, pred_codes, gt_codes, iou_thresh: float, method: str,
                 classwise: bool):
    """``(match1, iou1, match2, iou2, ignored1)``: ``pred`` matched one-to-one to ``gt`` on the IoU
    blocks (greedy by confidence, crowd-aware, or Hungarian with crowd regions left out)."""
    crowd = np.asarray(gt.iscrowd, dtype=bool)
    mode = "classwise" if classwise else "geometry_first"
    if method == "greedy":
        return batched_match(values, pair_offsets, pred.offsets, gt.offsets,
                             np.asarray(pred.confidence, dtype=np.float64), iou_thresh, "greedy", crowd2=crowd,
                             labels1=pred_codes, labels2=gt_codes, mode=mode, return_ignored=True)
    # Hungarian is one-to-one: crowd regions take no part (their columns are zeroed).
    v = values.copy()
    if crowd.any():
        from iou_audit.overlaps import pair_rows

        v[crowd[pair_rows(pred.offsets, gt.offsets)[1]]] = 0.0
    m1, i1, m2, i2 = batched_match(v, pair_offsets, pred.offsets, gt.offsets, None, iou_thresh, "hungarian",
                                   labels1=pred_codes, labels2=gt_codes, mode=mode)
    return m1, i1, m2, i2, np.zeros(len(m1), bool)


def compute_prediction_audit(
    pred,
    gt,
    iou_thresh: float = 0.5,
    method: str = "greedy",
    classwise: bool = True,
    iou_type: str = "bbox",
    good_fit: float = 0.75,
    bg_thresh: float = 0.1,
    coco_metrics: bool = True,
    tide: bool = True,
    pair_ious: tuple | None = None,
    extra_preds: tuple = (),
) -> PredictionAudit:
    """Match ``pred`` to ``gt`` (two LabelTables over the same samples) and score every disagreement.

    Args:
        pred, gt: LabelTables read from the same view (aligned sample order).
        iou_thresh: a prediction and a label match at IoU >= this.
        method: ``"greedy"`` (by confidence, pycocotools-exact, crowd-aware; alias ``"coco"``) or ``"hungarian"``.
        classwise: only same-class pairs match; False matches on geometry first (a wrong class on the
            right box is then a matched ``class`` error).
        iou_type: ``"bbox"``/``"boxes"`` or ``"segm"``/``"masks"`` (instance masks).
        good_fit: IoU at which a matched label counts as well placed (``mislocated`` score 0).
        bg_thresh: TIDE's background threshold.
        coco_metrics: compute COCO AP@[.5:.95] etc. (10 thresholds x 4 area ranges).
        tide: compute the TIDE dAP attribution.
        pair_ious: ``(values, pair_offsets)`` of ``pred`` x ``gt`` already computed (the per-sample
            IoU blocks of a sharded run's shards, joined; ``iou_audit.shards``), else computed here.
        extra_preds: more prediction tables over the same samples (an ensemble's other models,
            test-time-augmentation fields): evidence for the label scores and possible_missing
            (:mod:`.ensemble`); matching, metrics and TIDE use ``pred`` only.

    Example:
        >>> from iou_audit.table import LabelTable                      # doctest: +SKIP
        >>> a = compute_prediction_audit(pred_table, gt_table)          # doctest: +SKIP
        >>> a.metrics["AP"], a.tables["per_class"]                      # doctest: +SKIP
    """
    method = canonical_method(method)
    iou_type = {"boxes": "bbox", "masks": "segm"}.get(canonical_geometry(iou_type), iou_type)
    if not 0.0 < float(iou_thresh) <= 1.0:
        raise ValueError(f"iou_thresh must be in (0, 1], got {iou_thresh!r}")
    if len(pred.sample_ids) != len(gt.sample_ids) or not np.array_equal(pred.sample_ids, gt.sample_ids):
        raise ValueError(f"fields {pred.field!r} and {gt.field!r} were not read from the same samples")
    config = dict(iou_thresh=float(iou_thresh), method=method, classwise=bool(classwise), iou_type=iou_type,
                  good_fit=float(good_fit), bg_thresh=float(bg_thresh), pred_field=pred.field, gt_field=gt.field)
    values, pair_offsets = prediction_pair_ious(pred, gt, iou_type) if pair_ious is None else pair_ious
    pc, gc, classes = shared_class_codes(pred.label, gt.label)
    scores = np.asarray(pred.confidence, dtype=np.float64)
    crowd = np.asarray(gt.iscrowd, dtype=bool)
    m1, i1, m2, i2, ig1 = match_tables(values, pair_offsets, pred, gt, pc, gc, iou_thresh, method, classwise)
    pairs = PredictionPairs(values, pair_offsets, pred.offsets, gt.offsets, pc, gc, scores, crowd, pred.box, gt.box)
    errors = classify_errors_batched(pairs, Matching(m1, i1, m2, ig1), iou_thresh, bg_thresh, good_fit)
    errors = calibrate_scores(errors, pred, gt, pc, gc, iou_thresh)
    if extra_preds:
        from iou_audit.audits.predictions.ensemble import ensemble_scores

        errors = ensemble_scores(errors, pred, gt, extra_preds, iou_thresh, method, classwise, iou_type, bg_thresh,
                                 good_fit)
        config["extra_pred_fields"] = [t.field for t in extra_preds]
    lq, lkind = label_quality(errors.possible_spurious, errors.class_swap, errors.mislocated)
    iq = image_quality(gt.sample_index, lq, pred.sample_index, errors.possible_missing, len(gt.sample_ids))
    audit = PredictionAudit(pred, gt, config, m1, i1, m2, i2, errors, lq, lkind, iq)

    counts = _metrics.match_counts(m1, ig1, pc, gc, crowd, pred.sample_index, gt.sample_index,
                                   len(gt.sample_ids), len(classes))
    audit.tables["per_class"] = _metrics.per_class_table(classes, counts)
    audit.tables["confusion"], audit.confusion_pred, audit.confusion_gt = _metrics.confusion_cells(
        pairs, classes, iou_thresh)
    audit.metrics.update(_metrics.overall_counts(counts))
    audit.tables["per_sample"] = _metrics.per_sample_table(gt.sample_ids, counts, iq)
    if coco_metrics:
        ev = _metrics.coco_metrics(values, pair_offsets, pred, gt, pc, gc, scores, classes, iou_type)
        stats = ev.stats_dict()
        if not ev.areas_known:  # image sizes unknown: no pixel areas, so no small/medium/large split
            stats.update({k: float("nan") for k in stats if k.endswith(("_small", "_medium", "_large"))})
        audit.metrics.update(stats)
        ap = ev.per_category_ap()
        del ev  # its per-threshold matches (10 x every label) are not needed past here: memory
        for name, col in ap.items():
            audit.tables["per_class"][name] = np.where(col > -1, col, np.nan)
    if tide:
        if method == "greedy" and classwise:
            kinds, targets, gmatch = errors.pred_kind, errors.pred_target, m2
        else:  # TIDE is defined on class-aware greedy matching
            g1, gi1, g2, _, gig = batched_match(values, pair_offsets, pred.offsets, gt.offsets, scores, iou_thresh,
                                                "greedy", crowd2=crowd, labels1=pc, labels2=gc, return_ignored=True)
            e2 = classify_errors_batched(pairs, Matching(g1, gi1, g2, gig), iou_thresh, bg_thresh, good_fit)
            kinds, targets, gmatch = e2.pred_kind, e2.pred_target, g2
        d, n = tide_attribution(pairs, kinds, targets, gmatch, iou_thresh)
        audit.tide_pred_kind, audit.tide_missed = kinds, tide_missed(kinds, targets, gmatch, crowd)
        types = [k for k in d if k != "AP"]
        audit.tables["tide"] = pd.DataFrame({"error": types, "dAP": [d[k] for k in types],
                                             "count": [n[k] for k in types]})
        audit.metrics[f"AP@{iou_thresh:g}"] = d["AP"]
        audit.metrics.update({f"tide_dAP_{k}": v for k, v in d.items() if k != "AP"})
    return audit
