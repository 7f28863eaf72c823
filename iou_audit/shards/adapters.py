"""Per audit: what a shard keeps (its sufficient statistics) and how the merge combines them.

Every merge rebuilds exactly what the single-process audit computes, by handing the audit's own
global step the joined per-sample arrays; nothing is averaged:

- ``duplicates``: every finding and label value is per sample; a shard is a run of whole read
  batches (the plan aligns shards to ``batch_size``), so the joined findings are the
  single-process findings row for row, and counts are recomputed from them.
- ``agreement``: a shard keeps the audit's own per-batch parts (``agreement.parts.BatchPart``:
  per label its matches and IoUs in every annotator pair, its object, the per-detection COCO
  outcomes for mAP, the coincidence inputs of alpha, the threshold curve's edges); the merge joins
  them with ``merge_parts`` and computes alpha, its bootstrap, mAP, F1, the curve and the tables
  once, as one pass does.
- ``predictions``: a shard keeps both fields' label tables without geometry (masks reduced to
  their pixel counts: the COCO areas) and their per-sample IoU blocks; the merge joins them and
  runs the audit's matching, error scores, COCO AP (per-detection scores and TP flags over all
  samples), TIDE and the confusion matrix once on the joined arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditOutput, kind_counts
from iou_audit.overlaps import concat_pairs
from iou_audit.table import ReadLayout
from iou_audit.table.concat import concat_tables
from iou_audit.vocabulary import canonical_geometry, canonical_method


@dataclass(frozen=True)
class ShardedAudit:
    """How one audit runs in shards.

    ``make_config(params)`` builds the config as the audit's public function does;
    ``prepare(samples, config)`` returns what every shard must share (JSON-able, e.g. annotator
    names), computed once on the whole view; ``part(samples, config, shared, report)`` computes one
    shard's part; ``merge(parts, config, shared, samples)`` returns the audit's :class:`AuditOutput`
    (``shared`` also holds the ``audit_key``);
    ``batch_aligned``: shards must start at multiples of ``config.batch_size``.

    Shards that write (``iou_audit.shards.writes``): ``local(part, config, shared, view)`` is the
    :class:`AuditOutput` of what depends on the shard's own samples only (label values, sample
    values, new fields; its findings when ``findings_local``: then their tags and per-sample
    counts are written by the shard too), written by the shard (the part is stored whole: an
    incremental re-run may reuse it, and its merge writes everything); ``merge(..., shard_wrote=True)``
    returns the findings, tables and metrics and only the values the shards did not write.
    ``local=None``: the shards write nothing.
    """

    name: str
    make_config: Callable[[dict], Any]
    prepare: Callable[[Any, Any], dict]
    part: Callable[[Any, Any, dict, Any], Any]
    merge: Callable[..., AuditOutput]
    batch_aligned: bool
    local: Callable[[Any, Any, dict, Any], AuditOutput] | None = None
    findings_local: bool = False


# --- duplicates -------------------------------------------------------------------------------

def _dup_config(params: dict):
    from iou_audit.audits.duplicates import DuplicatesConfig

    params = dict(params)
    if "geometry" in params:
        params["geometry"] = canonical_geometry(params["geometry"])
    return DuplicatesConfig(**params)


def _dup_prepare(samples, config) -> dict:
    from iou_audit.table import check_label_field

    check_label_field(samples, config.label_field)  # a clear error now, not in every shard
    return {}


def _dup_part(samples, config, shared, report) -> AuditOutput:
    from iou_audit.audits.duplicates import _read_and_compute

    return _read_and_compute(samples, config, report)


def merge_layouts(layouts) -> ReadLayout:
    """One :class:`ReadLayout` holding every shard's (shards hold disjoint samples)."""
    out = ReadLayout()
    for layout in layouts:
        if layout is None:
            continue
        for field, labels in layout.labels.items():
            out.labels.setdefault(field, {}).update(labels)
        for field, groups in layout.by_sample.items():
            target = out.by_sample.setdefault(field, {})
            for sid, ids in groups.items():
                target.setdefault(sid, []).extend(ids)
        out.samples.update(layout.samples)
    return out


def _dup_local(part: AuditOutput, config, shared, view) -> AuditOutput:
    """Every duplicates value is the shard's own: its label values, its findings' tags and counts."""
    return AuditOutput(part.findings, label_values=part.label_values, layout=part.layout)


def _dup_merge(parts, config, shared, samples, shard_wrote: bool = False) -> AuditOutput:
    from iou_audit.audits.duplicates import KINDS
    from iou_audit.results import concat_findings

    found, layouts, n_labels = [], [], 0
    label_attrs: dict = {"max_iou": {}, "dup_of": {}}
    for p in parts:  # one part at a time (an iterator of parts read from the store)
        found.append(p.findings)
        n_labels += int(p.metrics["n_labels"])
        if not shard_wrote:
            for name, values in p.label_values[config.label_field].items():
                label_attrs[name].update(values)
            layouts.append(p.layout)
    findings = concat_findings(found)
    metrics = kind_counts(findings, KINDS)
    metrics["n_labels"] = n_labels
    if shard_wrote:
        return AuditOutput(findings, metrics=metrics)
    return AuditOutput(findings, label_values={config.label_field: label_attrs}, metrics=metrics,
                       layout=merge_layouts(layouts))


# --- agreement --------------------------------------------------------------------------------

def _agr_config(params: dict):
    from iou_audit.audits.agreement.audit import AgreementConfig

    params = dict(params)
    fields = params.get("label_fields", ())
    params["label_fields"] = (fields,) if isinstance(fields, str) else tuple(fields)
    if "method" in params:
        params["method"] = canonical_method(params["method"])
    if "geometry" in params:
        params["geometry"] = canonical_geometry(params["geometry"])
    if "compute_map" in params:
        params["compute_map"] = bool(params["compute_map"])
    return AgreementConfig(**params)


def _agr_prepare(samples, config) -> dict:
    """The annotator names and the geometry, as one pass decides them on the whole view.

    One pass names an ``annotator_attr`` field's annotators from the whole view (a shard might
    miss one) and picks ``geometry="auto"`` on its first batch (masks are read when any label of
    the view has one), so both are decided here and handed to every shard.
    """
    from iou_audit.audits.agreement.audit import iter_annotator_batches
    from iou_audit.audits.agreement.pairs import pick_geometry
    from iou_audit.table.read import check_label_field

    shared: dict = {}
    fields = config.label_fields[0] if len(config.label_fields) == 1 else list(config.label_fields)
    if config.annotator_attr is not None:
        _, list_path = check_label_field(samples, config.label_fields[0])
        shared["names"] = sorted((v for v in samples.distinct(f"{list_path}.{config.annotator_attr}")
                                  if v is not None), key=str)
    geometry = config.geometry
    if geometry == "auto":
        _, _, batches = iter_annotator_batches(samples, fields, config.annotator_attr, batch_size=1,
                                               names=shared.get("names"))
        first = next(iter(batches), None)
        geometry = pick_geometry(first, "auto") if first is not None else "boxes"
    shared["geometry"] = geometry
    return shared


def _agr_part(samples, config, shared, report) -> dict:
    from iou_audit.audits.agreement.audit import read_parts

    names, fields, parts, geometry = read_parts(samples, replace(config, geometry=shared["geometry"]), report,
                                                names=shared.get("names"))
    return {"names": list(names), "fields": list(fields), "parts": parts, "geometry": geometry}


def _agr_local(part: dict, config, shared, view) -> AuditOutput:
    """The shard's own agreement values: every per-label value (matches, clusters and member IoUs
    are per sample), the per-image F1, mean IoU and alpha, the findings (per object), the
    consensus; the shard's statistics on its own batches (its mAP is not computed)."""
    from iou_audit.audits.agreement.audit import output_from_parts

    return output_from_parts(list(part["parts"]), part["names"], part["fields"], part["geometry"],
                             replace(config, compute_map=False))


def _agr_merge(parts, config, shared, samples, shard_wrote: bool = False) -> AuditOutput:
    from iou_audit.audits.agreement.audit import output_from_parts

    first, batch_parts = None, []
    for i, p in enumerate(parts):  # one shard's part at a time; its batches join the list
        first = p if first is None else first
        if p["names"] != first["names"] or p["geometry"] != first["geometry"]:
            raise ValueError(f"shard {i} read annotators {p['names']} with geometry {p['geometry']!r}, shard 0 "
                             f"{first['names']} with {first['geometry']!r}: the shards did not read the same fields")
        batch_parts.extend(p["parts"])
        p["parts"] = None
    if not shard_wrote:
        return output_from_parts(batch_parts, first["names"], first["fields"], first["geometry"], config)
    out = output_from_parts(batch_parts, first["names"], first["fields"], first["geometry"],
                            replace(config, consensus_field=None))  # the shards wrote the consensus
    return AuditOutput(out.findings, tables=out.tables, metrics=out.metrics, config_extra=out.config_extra)


# --- predictions ------------------------------------------------------------------------------

def _pred_config(params: dict):
    from iou_audit.audits.predictions.audit import PredictionsConfig

    params = dict(params)
    if "method" in params:
        params["method"] = canonical_method(params["method"])
    if "geometry" in params:
        params["geometry"] = canonical_geometry(params["geometry"])
    for name in ("classwise", "coco_metrics", "tide"):
        if name in params:
            params[name] = bool(params[name])
    if "extra_pred_fields" in params:  # stored as a list
        params["extra_pred_fields"] = tuple(params["extra_pred_fields"] or ())
    return PredictionsConfig(**params)


def _pred_prepare(samples, config) -> dict:
    """Checks the fields; records whether the labels have an ``area`` attribute (every part reads it
    then), so an incremental re-run notices when that changed."""
    from iou_audit.table import check_label_field

    if config.extra_pred_fields:  # refused before any part runs: a part reads two fields
        raise ValueError(f"extra_pred_fields {list(config.extra_pred_fields)} are not supported in sharded or "
                         "keep-parts runs of the predictions audit; run audit_predictions in one pass")
    check_label_field(samples, config.pred_field)
    check_label_field(samples, config.gt_field)
    return {"gt_area": bool(samples.has_field(f"{config.gt_field}.detections.area"))}


def _pred_part(samples, config, shared, report) -> tuple:
    from iou_audit.audits.predictions.audit import read_pairs

    return read_pairs(samples, config, report)


#: Predictions values that need the global statistics (the calibrated scores): the merge writes them.
PRED_GLOBAL_LABEL_VALUES = ("quality",)


def _pred_audit(part: tuple, config, coco_metrics: bool):
    from iou_audit.audits.predictions.audit import COCO_IOU_TYPE
    from iou_audit.audits.predictions.core import compute_prediction_audit

    pred, gt, values, offsets = part
    return compute_prediction_audit(pred, gt, config.iou_thresh, config.method, config.classwise,
                                    COCO_IOU_TYPE[config.geometry], config.good_fit, coco_metrics=coco_metrics,
                                    tide=config.tide, pair_ious=(values, offsets))


def _pred_local(part: tuple, config, shared, view) -> AuditOutput:
    """The matching's per-label values (IoU, match id, error kind, confusion cell, TIDE error: per
    sample); the label and image qualities use the calibrated scores (global): not written here."""
    from iou_audit.audits.predictions.findings import label_batches
    from iou_audit.results.batched import LabelBatches

    a = _pred_audit(part, config, coco_metrics=False)
    full = label_batches(a)
    gt_field = a.gt.field if a.gt.field != a.pred.field else None

    def local_only(attrs: dict, field: str) -> dict:
        return {k: v for k, v in attrs.items() if field != gt_field or k not in PRED_GLOBAL_LABEL_VALUES}

    def batches():
        for values, layout in full.batches():
            yield {f: local_only(attrs, f) for f, attrs in values.items()}, layout

    attributes = {f: tuple(a for a in attrs if f != gt_field or a not in PRED_GLOBAL_LABEL_VALUES)
                  for f, attrs in full.attributes.items()}
    return AuditOutput(pd.DataFrame(), label_batches=LabelBatches(attributes, batches))


def _pred_merge(parts, config, shared, samples, shard_wrote: bool = False) -> AuditOutput:
    from iou_audit.audits.predictions.audit import output_from_tables

    parts = list(parts)
    pred = concat_tables([p[0] for p in parts])
    gt = concat_tables([p[1] for p in parts])
    values, offsets = concat_pairs([p[2] for p in parts], [p[3] for p in parts])
    parts.clear()
    if not shard_wrote:
        return output_from_tables(pred, gt, config, pair_ious=(values, offsets))
    from iou_audit.audits.predictions.findings import _plain, build_findings
    from iou_audit.results.batched import table_batches

    a = _pred_audit((pred, gt, values, offsets), config, coco_metrics=config.coco_metrics)
    quality = dict(zip(gt.sample_ids.tolist(), np.round(a.image_quality, 6).tolist()))
    batches = None
    if gt.field != pred.field:  # one field: its values are the prediction side's (no label quality)
        from iou_audit.audits.predictions.findings import WRITE_BATCH

        batches = table_batches([gt], [gt.field], [{"quality": a.label_quality}], WRITE_BATCH,
                                convert=lambda arr: _plain(arr).tolist())
    return AuditOutput(build_findings(a, config.min_score), label_batches=batches, sample_values={"quality": quality},
                       tables=dict(a.tables), metrics=dict(a.metrics))


# --- splits -----------------------------------------------------------------------------------

def _splits_config(params: dict):
    from iou_audit.audits.splits.audit import SplitsConfig

    params = dict(params)
    if params.get("split_tags"):
        params["split_tags"] = tuple(params["split_tags"])
    for name in ("shifted", "transformed"):
        if name in params:
            params[name] = bool(params[name])
    return SplitsConfig(**params)


def _splits_prepare(samples, config) -> dict:
    from iou_audit.audits.splits.sources import read_splits

    read_splits(samples, config.split_field, config.split_tags)  # a clear error now, not in every shard
    return {}


def _splits_part(samples, config, shared, report) -> tuple:
    from iou_audit.audits.splits.audit import read_hashes

    return read_hashes(samples, config, report, shared["audit_key"])


def join_hashes(parts: list) -> tuple:
    """The shards' ``image_hashes`` tuples as one tuple over all their samples, in order.

    Example:
        >>> a = (np.array(["x"], object), np.array([1], np.uint64), np.zeros((1, 2), np.uint64),
        ...      np.zeros((1, 1), np.uint64), np.array(["1:2"], object), 1, {})
        >>> b = (np.array([None], object), np.array([0], np.uint64), np.zeros((1, 2), np.uint64),
        ...      np.zeros((1, 1), np.uint64), np.array([""], object), 0, {0: "OSError: gone"})
        >>> joined = join_hashes([a, b])
        >>> joined[0].tolist(), joined[5], joined[6]
        (['x', None], 1, {1: 'OSError: gone'})
    """
    start = np.cumsum([0] + [len(p[0]) for p in parts])
    unreadable = {int(r) + int(start[i]): e for i, p in enumerate(parts) for r, e in p[6].items()}
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]),
            np.concatenate([p[4] for p in parts]), int(sum(p[5] for p in parts)), unreadable)


def _splits_merge(parts, config, shared, samples) -> AuditOutput:
    from iou_audit.audits.splits.audit import _read_and_compute
    from iou_audit.progress import make_progress

    return _read_and_compute(samples, config, make_progress(None), shared["audit_key"],
                             hashes=join_hashes(list(parts)))


AUDITS = {
    "duplicates": ShardedAudit("duplicates", _dup_config, _dup_prepare, _dup_part, _dup_merge, batch_aligned=True,
                               local=_dup_local, findings_local=True),
    "agreement": ShardedAudit("agreement", _agr_config, _agr_prepare, _agr_part, _agr_merge, batch_aligned=False,
                              local=_agr_local, findings_local=True),
    "predictions": ShardedAudit("predictions", _pred_config, _pred_prepare, _pred_part, _pred_merge,
                                batch_aligned=False, local=_pred_local),
    "splits": ShardedAudit("splits", _splits_config, _splits_prepare, _splits_part, _splits_merge, batch_aligned=False),
}


def sharded_audit(name: str) -> ShardedAudit:
    if name not in AUDITS:
        raise ValueError(f"audit {name!r} cannot run in shards yet; shardable audits: {sorted(AUDITS)}")
    return AUDITS[name]
