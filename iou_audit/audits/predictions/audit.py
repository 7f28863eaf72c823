"""``audit_predictions``: read two fields batch by batch (IoU blocks computed per batch, geometry and
raw documents dropped), run the array core on the joined tables, hand the output to the runner.

Memory: O(batch) for the raw documents, masks and tags; O(labels) for the joined tables (label ids
as bytes, no geometry), every pair's IoU and the per-label results (COCO AP, TIDE and the error
scores need every detection).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.audits.predictions.core import compute_prediction_audit
from iou_audit.audits.predictions.findings import AUDIT, KINDS, build_findings, label_batches
from iou_audit.audits.predictions.pairs import prediction_pair_ious
from iou_audit.overlaps import concat_pairs
from iou_audit.results import AuditResult
from iou_audit.table import iter_label_tables, read_label_table
from iou_audit.table.concat import compact_ids, concat_tables, str_ids
from iou_audit.table.model import check_label_ids
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


#: samples read and paired at a time: the raw documents, geometry (masks) and per-label tags are
#: held for one batch; results do not depend on it
READ_BATCH = 2000


def _read_and_compute(samples, config: PredictionsConfig, report) -> AuditOutput:
    if config.extra_pred_fields:
        # Extra fields are paired with the labels' full geometry (masks too), so this case keeps
        # the one whole read; the batched read below holds one batch of geometry at a time.
        pred, gt = read_tables(samples, config, report)
        extra = tuple(read_label_table(samples, f, masks=config.geometry == "masks") for f in config.extra_pred_fields)
        for f, t in zip(config.extra_pred_fields, extra):
            if t.label_type != "detections":
                raise ValueError(f"extra_pred_fields: {f!r} is not a Detections field ({t.label_type})")
        report.report(0.3, "matching and scoring")
        return output_from_tables(pred, gt, config, extra_preds=extra)
    pred, gt, values, pair_offsets = read_pairs(samples, config, report)
    report.report(0.3, "matching and scoring")
    return output_from_tables(pred, gt, config, pair_ious=(values, pair_offsets))


def read_tables(samples, config: PredictionsConfig, report):
    """``(pred, gt)``: the two fields' LabelTables over ``samples`` (same sample order), whole."""
    segm = config.geometry == "masks"
    report.report(0.0, "reading labels")
    pred = read_label_table(samples, config.pred_field, masks=segm)
    gt = read_label_table(samples, config.gt_field, attributes=_gt_attributes(samples, config), masks=segm)
    _check_types(config, pred, gt)
    return pred, gt


def read_pairs(samples, config: PredictionsConfig, report, batch_size: int | None = None) -> tuple:
    """``(pred, gt, values, pair_offsets)``: both fields read ``batch_size`` (default
    :data:`READ_BATCH`) samples at a time, each
    batch's (prediction, label) IoU blocks computed there, and the batches joined.

    The joined tables are those of :func:`read_tables` with what no later step reads dropped
    (:func:`without_geometry`: masks reduced to their pixel counts, no polygons, no tags), so the
    read holds one batch of raw documents and geometry, not the whole view's. The label ids are
    checked unique over the whole view, as one read checks them.
    """
    segm = config.geometry == "masks"
    iou_type = COCO_IOU_TYPE[config.geometry]
    batch_size = READ_BATCH if batch_size is None else int(batch_size)
    report.report(0.0, "reading labels")
    n_samples, done, parts = max(len(samples), 1), 0, []
    preds = iter_label_tables(samples, config.pred_field, batch_size, masks=segm)
    gts = iter_label_tables(samples, config.gt_field, batch_size, attributes=_gt_attributes(samples, config),
                            masks=segm)
    for pred, gt in zip(preds, gts):
        _check_types(config, pred, gt)
        values, pair_offsets = prediction_pair_ious(pred, gt, iou_type)
        parts.append((without_geometry(pred), without_geometry(gt), values, pair_offsets))
        done += pred.num_samples
        report.report(0.3 * done / n_samples, f"reading labels ({done} samples)")
    if not parts:  # an empty view: the (empty) tables of one read
        pred, gt = read_tables(samples, config, report)
        return (without_geometry(pred), without_geometry(gt), *prediction_pair_ious(pred, gt, iou_type))
    pred = concat_tables([p[0] for p in parts])
    gt = concat_tables([p[1] for p in parts])
    values, pair_offsets = concat_pairs([p[2] for p in parts], [p[3] for p in parts])
    if len(parts) > 1:  # one batch was checked by its read
        _check_unique_ids(pred), _check_unique_ids(gt)
    parts.clear()
    return pred, gt, values, pair_offsets


def _check_unique_ids(table) -> None:
    """``check_label_ids`` over the joined batches (ids unique over the whole view; each batch
    already checked that none is missing), sorting the compact ids rather than hashing ``str``."""
    ids = table.label_id
    if ids.dtype.kind == "S" and len(np.unique(ids)) == len(ids):
        return
    check_label_ids(replace(table, label_id=str_ids(ids)))


def without_geometry(table):
    """The table without what the audit no longer reads once its IoU blocks are computed: a mask
    becomes a 1 x area array of ones (its pixel count, COCO's segment area, survives), polygons and
    tags are dropped, each class name is stored once (the reader makes one ``str`` per label) and
    label ids are kept as bytes when ASCII (``iou_audit.table.concat.compact_ids``; the findings and
    the writes turn them back into ``str``).

    Example:
        >>> from iou_audit.table import LabelTable
        >>> t = without_geometry(LabelTable.empty("gt", sample_ids=["a"]))
        >>> t.tags, t.polygons, t.masks
        (None, None, None)
    """
    masks = None if table.masks is None else [
        None if m is None else np.ones((1, int(np.count_nonzero(m))), dtype=bool) for m in table.masks]
    labels = np.asarray(table.label, dtype=object)
    if len(labels):
        codes, uniq = pd.factorize(labels, use_na_sentinel=False)
        labels = np.asarray(uniq, dtype=object)[codes]
    return replace(table, masks=masks, polygons=None, tags=None, label=labels, label_id=compact_ids(table.label_id))


def _gt_attributes(samples, config: PredictionsConfig) -> tuple:
    return ("area",) if samples.has_field(f"{config.gt_field}.detections.area") else ()


def _check_types(config: PredictionsConfig, pred, gt) -> None:
    if pred.label_type != "detections" or gt.label_type != "detections":
        raise ValueError(f"audit_predictions needs Detections fields; got {config.pred_field!r} ({pred.label_type}) "
                         f"and {config.gt_field!r} ({gt.label_type})")


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
