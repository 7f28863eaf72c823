"""Several prediction fields as evidence (an ensemble's models, test-time-augmentation passes).

Each extra field is matched to the labels and scored on its own, exactly as the main field
(:mod:`.errors`, then :mod:`.calibration`: its own noise, miss rate and precision), and the
ensemble's score is the **mean over fields** of each field's calibrated score:

- per label: ``possible_spurious``, ``class_swap``, ``mislocated`` = mean over the F fields;
- per main-field prediction with a ``possible_missing`` score: mean over the fields of the best
  ``possible_missing`` score of that field's predictions of the same class at IoU >= 0.5 with it
  (0 for a field that sees nothing there; the main field's own score counts as one field).

A mean of probabilities, not a product of likelihood ratios: augmented passes of one model are far
from independent, so agreeing fields confirm each other without multiplying the evidence. Matching,
metrics, TIDE and the findings' references (which prediction, which edge) stay with the main field;
objects only the extra fields predict get no ``possible_missing`` row.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from iou_audit.audits.predictions.calibration import calibrate_scores
from iou_audit.audits.predictions.errors import ErrorScores, classify_errors_batched, group_max
from iou_audit.audits.predictions.pairs import Matching, PredictionPairs, prediction_pair_ious, shared_class_codes

#: a prediction of another field is "the same object" as a main-field prediction at IoU >= this
SAME_OBJECT_IOU = 0.5


def field_scores(pred, gt, iou_thresh: float, method: str, classwise: bool, iou_type: str, bg_thresh: float,
                 good_fit: float) -> ErrorScores:
    """The calibrated :class:`ErrorScores` of one prediction table against the labels."""
    from iou_audit.audits.predictions.core import match_tables

    if len(pred.sample_ids) != len(gt.sample_ids) or not np.array_equal(pred.sample_ids, gt.sample_ids):
        raise ValueError(f"fields {pred.field!r} and {gt.field!r} were not read from the same samples")
    values, pair_offsets = prediction_pair_ious(pred, gt, iou_type)
    pc, gc, _ = shared_class_codes(pred.label, gt.label)
    m1, i1, m2, _, ig1 = match_tables(values, pair_offsets, pred, gt, pc, gc, iou_thresh, method, classwise)
    pairs = PredictionPairs(values, pair_offsets, pred.offsets, gt.offsets, pc, gc,
                            np.asarray(pred.confidence, np.float64), np.asarray(gt.iscrowd, bool), pred.box, gt.box)
    e = classify_errors_batched(pairs, Matching(m1, i1, m2, ig1), iou_thresh, bg_thresh, good_fit)
    return calibrate_scores(e, pred, gt, pc, gc, iou_thresh)


def corroborated_missing(main_pred, main_missing: np.ndarray, other_pred, other_missing: np.ndarray) -> np.ndarray:
    """Per main-field prediction, the best ``other_missing`` among the other field's predictions of the
    same class at IoU >= :data:`SAME_OBJECT_IOU` (0 if none, and where ``main_missing`` is 0).

    Example:
        >>> from types import SimpleNamespace as T
        >>> a = T(box=np.array([[0, 0, .5, .5], [.6, .6, 1, 1]]), offsets=np.array([0, 2]), label=np.array(["a", "a"]))
        >>> b = T(box=np.array([[0, 0, .5, .45]]), offsets=np.array([0, 1]), label=np.array(["a"]))
        >>> corroborated_missing(a, np.array([0.9, 0.8]), b, np.array([0.7])).tolist()
        [0.7, 0.0]
    """
    from iou_audit.geometry.boxes import batched_box_iou
    from iou_audit.overlaps import pair_rows

    P = len(main_missing)
    if P == 0 or len(other_missing) == 0:
        return np.zeros(P)
    values, _ = batched_box_iou(np.asarray(main_pred.box, float), np.asarray(main_pred.offsets, np.int64),
                                np.asarray(other_pred.box, float), np.asarray(other_pred.offsets, np.int64))
    r1, r2 = pair_rows(main_pred.offsets, other_pred.offsets)
    ok = (values >= SAME_OBJECT_IOU) & (np.asarray(main_pred.label, object)[r1] == np.asarray(other_pred.label,
                                                                                             object)[r2])
    best, _ = group_max(r1[ok], np.asarray(other_missing, float)[r2[ok]], P)
    return np.where(np.asarray(main_missing) > 0, best, 0.0)


def ensemble_scores(main: ErrorScores, pred, gt, extra_preds, iou_thresh: float, method: str, classwise: bool,
                    iou_type: str, bg_thresh: float, good_fit: float) -> ErrorScores:
    """``main`` (the main field's calibrated scores) with the label scores and ``possible_missing``
    replaced by the means over ``pred`` and every table of ``extra_preds`` (module docstring)."""
    per_field = [field_scores(t, gt, iou_thresh, method, classwise, iou_type, bg_thresh, good_fit)
                 for t in extra_preds]
    n = 1 + len(per_field)
    label = {k: (getattr(main, k) + sum(getattr(e, k) for e in per_field)) / n
             for k in ("possible_spurious", "class_swap", "mislocated")}
    missing = main.possible_missing + sum(
        corroborated_missing(pred, main.possible_missing, t, e.possible_missing) for t, e in zip(extra_preds, per_field))
    return dataclasses.replace(main, possible_missing=missing / n, **label)
