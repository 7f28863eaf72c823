"""Prediction-audit findings (the shared finding shape) and the per-label values written back."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from iou_audit.audits.predictions.core import PredictionAudit
from iou_audit.audits.predictions.errors import PRED_KINDS
from iou_audit.audits.predictions.tide import TIDE_TYPES
from iou_audit.results import AuditResult, make_findings
from iou_audit.table.concat import str_ids

AUDIT = "predictions"
KINDS = ("possible_missing", "possible_spurious", "mislocated", "class_swap", "duplicate_prediction")


def build_findings(a: PredictionAudit, min_score: float = 0.5) -> pd.DataFrame:
    """Findings with ``score >= min_score``: label errors on ground-truth labels, possible_missing and
    duplicate_prediction on predictions (the prediction's id in ``label_id``, its field in ``field``).

    Example:
        >>> f = build_findings(audit, min_score=0.5)            # doctest: +SKIP
        >>> f.groupby("kind").size()                            # doctest: +SKIP
    """
    pred, gt, e = a.pred, a.gt, a.errors
    frames = []
    susp = 1.0 - a.label_quality
    g = np.flatnonzero((susp >= min_score) & ~np.asarray(gt.iscrowd, bool))
    if len(g):
        kind = a.label_kind[g]
        other = np.select([kind == "class_swap", kind == "mislocated"],
                          [e.class_swap_pred[g], e.mislocated_pred[g]], -1)
        other = np.where(kind == "possible_spurious", a.gt_match[g], other)
        iou = np.select([kind == "mislocated"], [e.mislocated_iou[g]], a.gt_iou[g])
        detail = np.full(len(g), "", dtype=object)
        conf = np.nan_to_num(np.asarray(pred.confidence, float), nan=1.0)
        for j, (k, o, gi) in enumerate(zip(kind, other, g)):
            if k == "mislocated":
                detail[j] = (f"{e.off_edge[gi]} edge off by {e.off_amount[gi]:+.2f} of the box "
                             f"(IoU {e.mislocated_iou[gi]:.2f} with a {conf[o]:.2f} prediction)")
            elif k == "class_swap":
                detail[j] = f"a {conf[o]:.2f} {pred.label[o]!s} prediction covers it"
            else:
                detail[j] = f"no prediction supports it (best support {e.support[gi]:.2f})"
        frames.append(pd.DataFrame({
            "kind": kind, "sample_id": gt.sample_ids[gt.sample_index[g]], "field": gt.field,
            "label_id": str_ids(gt.label_id[g]), "other_field": np.where(other >= 0, pred.field, ""),
            "other_label_id": _ids_at(pred.label_id, other),
            "label": gt.label[g], "score": susp[g], "iou": iou, "detail": detail,
        }))
    for kind, score in (("possible_missing", e.possible_missing), ("duplicate_prediction", e.duplicate_prediction)):
        p = np.flatnonzero(score >= min_score)
        if not len(p):
            continue
        tgt = e.pred_target[p] if kind == "duplicate_prediction" else np.full(len(p), -1)
        frames.append(pd.DataFrame({
            "kind": kind, "sample_id": pred.sample_ids[pred.sample_index[p]], "field": pred.field,
            "label_id": str_ids(pred.label_id[p]), "other_field": np.where(tgt >= 0, gt.field, ""),
            "other_label_id": _ids_at(gt.label_id, tgt),
            "label": pred.label[p], "score": score[p], "iou": e.pred_target_iou[p],
            "detail": ("no label overlaps it" if kind == "possible_missing"
                       else "a higher-scoring prediction already matches this label"),
        }))
    if not frames:
        return make_findings(audit=AUDIT)
    f = make_findings(pd.concat(frames, ignore_index=True), audit=AUDIT)
    return f.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _ids_at(ids: np.ndarray, rows: np.ndarray) -> list:
    """``ids[rows]`` with "" where ``rows`` is -1 (no match), also when ``ids`` is empty.

    >>> _ids_at(np.array(["a", "b"], dtype=object), np.array([1, -1])), _ids_at(np.array([], dtype=object), np.array([-1]))
    (['b', ''], [''])
    """
    out = np.full(len(rows), "", dtype=object)
    hit = rows >= 0
    out[hit] = np.asarray(ids, dtype=object)[rows[hit]]
    return out.tolist()


def label_values(a: PredictionAudit) -> dict:
    """``{field: {attr: {label_id: value}}}`` for ``save_audit``: IoU and id of the match on both
    fields, label quality and likely error on labels, TIDE kind on predictions; the confusion cell
    (``confusion``: the class on the other side, or ``unmatched``) on both; TIDE's error (``tide``)
    on the predictions and labels TIDE counts."""
    pred, gt = a.pred, a.gt
    # label ids as str (the audit's tables may keep them as bytes: iou_audit.table.concat.compact_ids)
    pred, gt = replace(pred, label_id=str_ids(pred.label_id)), replace(gt, label_id=str_ids(gt.label_id))
    gm, pm = a.gt_match, a.pred_match
    out = {
        gt.field: {
            "iou": dict(zip(gt.label_id, a.gt_iou.tolist())),
            "match_id": dict(zip(gt.label_id, _ids_at(pred.label_id, gm))),
            "quality": dict(zip(gt.label_id, a.label_quality.tolist())),
        },
        pred.field: {
            "iou": dict(zip(pred.label_id, a.pred_iou.tolist())),
            "match_id": dict(zip(pred.label_id, _ids_at(gt.label_id, pm))),
            "error": dict(zip(pred.label_id, np.array(PRED_KINDS, dtype=object)[a.errors.pred_kind].tolist())),
        },
    }
    # The confusion cell of every label (the class on the other side) and the TIDE error of the
    # labels TIDE counts, so a click on a cell or a TIDE bar can show exactly those labels.
    for field, table, other in ((gt.field, gt, a.confusion_gt), (pred.field, pred, a.confusion_pred)):
        if other is not None:
            out[field].setdefault("confusion", {}).update(
                (i, v) for i, v in zip(table.label_id.tolist(), other.tolist()) if v is not None)
    if a.tide_pred_kind is not None:
        kinds = np.asarray(a.tide_pred_kind)
        names = np.array(PRED_KINDS, dtype=object)
        counted = np.isin(kinds, [PRED_KINDS.index(t) for t in TIDE_TYPES if t in PRED_KINDS])
        out[pred.field].setdefault("tide", {}).update(zip(pred.label_id[counted].tolist(),
                                                          names[kinds[counted]].tolist()))
        missed = np.asarray(a.tide_missed, bool)
        out[gt.field].setdefault("tide", {}).update(dict.fromkeys(gt.label_id[missed].tolist(), "missed"))
    return out


#: samples whose label values go into one bulk write
WRITE_BATCH = 2000


def label_batches(a: PredictionAudit, batch_size: int = WRITE_BATCH):
    """:func:`label_values` as ``iou_audit.results.batched.LabelBatches``: built and written
    ``batch_size`` samples at a time from the row-aligned arrays (no per-label dicts of the whole
    view). The values are those of :func:`label_values` (when both fields are one, as there: the
    prediction side's)."""
    from iou_audit.results.batched import table_batches

    pred, gt = a.pred, a.gt
    gt_values = {"iou": a.gt_iou, "match_id": _match_ids(pred.label_id, a.gt_match),
                 "quality": a.label_quality}
    pred_values = {"iou": a.pred_iou, "match_id": _match_ids(gt.label_id, a.pred_match),
                   "error": np.array(PRED_KINDS, dtype=object)[a.errors.pred_kind]}
    # the confusion cell and TIDE error of every label, as in label_values (None: not written there)
    if a.confusion_gt is not None:
        gt_values["confusion"] = np.asarray(a.confusion_gt, dtype=object)
    if a.confusion_pred is not None:
        pred_values["confusion"] = np.asarray(a.confusion_pred, dtype=object)
    if a.tide_pred_kind is not None:
        kinds = np.asarray(a.tide_pred_kind)
        counted = np.isin(kinds, [PRED_KINDS.index(t) for t in TIDE_TYPES if t in PRED_KINDS])
        pred_values["tide"] = np.where(counted, np.array(PRED_KINDS, dtype=object)[kinds], None)
        gt_values["tide"] = np.where(np.asarray(a.tide_missed, bool), "missed", None).astype(object)
    tables, fields, values = [pred], [pred.field], [pred_values]
    if gt.field != pred.field:
        tables, fields, values = [gt, pred], [gt.field, pred.field], [gt_values, pred_values]
    return table_batches(tables, fields, values, batch_size, convert=lambda arr: _plain(arr).tolist())


def to_audit_result(a: PredictionAudit, audit_key: str = "predictions", min_score: float = 0.5) -> AuditResult:
    """The :class:`AuditResult` of a prediction audit (findings, tables, metrics, config)."""
    config = dict(a.config, min_score=float(min_score))
    return AuditResult(AUDIT, audit_key, config, build_findings(a, min_score), dict(a.tables), dict(a.metrics))


def _ids_at(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``ids[rows]`` as ``str`` with "" where ``rows`` is -1 (also when ``ids`` is empty: no label on that side)."""
    return _plain(_match_ids(ids, rows))


def _match_ids(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``ids[rows]`` with "" where ``rows`` is -1, in the ids' own dtype: compact bytes stay bytes
    (turned into ``str`` a write batch at a time, :func:`_plain`), objects stay objects.

    >>> _match_ids(np.array([b"ab"]), np.array([0, -1])).tolist(), _match_ids(np.array([], "S1"), np.array([-1])).tolist()
    ([b'ab', b''], [''])
    """
    if not len(ids):
        return np.full(len(rows), "", dtype=object)
    return np.where(rows >= 0, ids[np.maximum(rows, 0)], b"" if ids.dtype.kind == "S" else "")


def _plain(values) -> np.ndarray:
    """Values for the database: bytes label ids as ``str`` (see :func:`_match_ids`), others as they are."""
    values = np.asarray(values)
    return str_ids(values) if values.dtype.kind == "S" else values
