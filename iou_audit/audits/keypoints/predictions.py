"""``audit_keypoint_predictions``: a pose model's predictions against Keypoints labels.

Matching: greedy COCO (pycocotools order, crowd-aware) on OKS, class-wise, a ground truth without
labeled keypoints ignored as COCO ignores it. The findings' matching takes, for each pair, the
larger of the OKS and the OKS with the prediction mirrored (its left/right keypoints exchanged),
so a label drawn mirror-wise still finds its prediction and is reported as a swap rather than as a
missing and a spurious object; the metrics (COCO keypoint AP/AR) use plain OKS, as COCO does.

Findings (``score`` in [0, 1], higher = more suspicious; keypoint kinds name the keypoint in
``detail``, ``label_id`` is the label, ``other_label_id`` the prediction):
- ``possible_missing``: a prediction no label matches (score: its score, divided by the field's
  largest score when scores exceed 1);
- ``possible_spurious``: a label no prediction matches (1 - its best OKS);
- ``missing_keypoint``: a matched label leaves a keypoint unlabeled that the model places with
  point confidence >= ``point_confidence`` (needs per-point confidences; score: that confidence);
- ``extra_keypoint``: a labeled keypoint the model does not place, or places with point confidence
  below ``point_confidence`` and not near the label (similarity below ``point_similarity``; a
  low-confidence point near it still supports it); score 1 - the confidence, 1 when absent;
- ``mislocated_keypoint``: a labeled keypoint the model places elsewhere (its OKS term, the
  per-keypoint similarity, below ``point_similarity``; score 1 - similarity);
- ``left_right_swap``: a left/right pair whose two keypoints fit the prediction crossed (mean
  similarity >= ``point_similarity``) and not straight (< it); score: crossed - straight mean.
  Its keypoints are not also reported as mislocated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.audits.keypoints.compare import directed_oks, left_right_swaps, pair_index
from iou_audit.audits.keypoints.findings import finding_frame as _frame
from iou_audit.audits.keypoints.findings import ids_at as _ids
from iou_audit.audits.keypoints.objects import (
    KEYPOINT_READ_BATCH,
    KeypointObjects,
    check_unique_label_ids,
    iter_keypoint_batches,
    keypoint_objects,
    skeleton,
)
from iou_audit.geometry.boxes import batched_pair_rows
from iou_audit.geometry.keypoints import flip_order, keypoint_similarity
from iou_audit.matching import batched_match
from iou_audit.matching.coco import COCO_IOU_THRESHOLDS, coco_evaluate
from iou_audit.matching.keypoints import KEYPOINT_AREA_RANGES, KEYPOINT_MAX_DETS, keypoint_stats, result_areas
from iou_audit.results import AuditResult, make_findings

AUDIT = "keypoint_predictions"
KINDS = ("possible_missing", "possible_spurious", "missing_keypoint", "extra_keypoint", "mislocated_keypoint",
         "left_right_swap")
KEYPOINT_KINDS = KINDS[2:]


@dataclass(frozen=True)
class KeypointPredictionsConfig(AuditConfig):
    """Parameters of the keypoint prediction audit."""

    pred_field: str = option(None, "Keypoints field with the model's predictions", kind="field")
    gt_field: str = option(None, "Keypoints field with the labels", kind="field")
    oks_thresh: float = option(0.5, "matching OKS threshold", low=0.0, high=1.0, low_open=True, label="Match OKS")
    classwise: bool = option(True, "match only same-class skeletons", label="Class-wise matching")
    sigmas: tuple | None = option(None, "per-keypoint OKS sigmas (default: COCO's 17)", cli=False, form=False)
    flip_pairs: tuple | None = option(None, "left/right keypoint index pairs (default: from the skeleton's "
                                      "names, or COCO's for 17 points)", cli=False, form=False)
    score_attribute: str | None = option(None, "prediction attribute with the instance score (default: the "
                                         "mean point confidence, else 1)", kind="name")
    area_attribute: str | None = option(None, "label attribute with the OKS area in pixels squared", kind="name")
    box_attribute: str | None = option(None, "label attribute with the object's relative [x, y, w, h] box", kind="name")
    area_factor: float = option(1.0, "OKS area = factor x box area when no area attribute (CrowdPose: 0.53)",
                                low=0.0, low_open=True)
    area_ranges: bool = option(True, "COCO's medium/large split of AP by label area")
    point_similarity: float = option(0.5, "a keypoint whose similarity is below this is mislocated", low=0.0,
                                     high=1.0, low_open=True)
    point_confidence: float = option(0.5, "a predicted point counts as placed at this point confidence",
                                     low=0.0, high=1.0)
    min_score: float = option(0.5, "findings (and tags) are emitted for scores >= this", low=0.0, high=1.0)
    batch_size: int = option(KEYPOINT_READ_BATCH, "samples read per batch (bounds memory; results do not "
                             "depend on it)", low=1, high=10**9, form=False)

    def validate(self) -> None:
        for name in ("pred_field", "gt_field"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty field name, got {getattr(self, name)!r}")


def audit_keypoint_predictions(samples, pred_field: str, gt_field: str, audit_key: str = "keypoint_predictions",
                               save: bool = True, progress=None, **params) -> AuditResult:
    """Find keypoint label errors from a pose model's predictions (see the module docstring).

    Args:
        samples: a FiftyOne dataset or view (image sizes needed: OKS is in pixels).
        pred_field, gt_field: Keypoints fields.
        audit_key, save, progress: as every audit.
        **params: :class:`KeypointPredictionsConfig` fields (``oks_thresh``, ``sigmas``,
            ``flip_pairs``, ``score_attribute``, ``area_attribute``, ``box_attribute``,
            ``area_factor``, ``area_ranges``, ``point_similarity``, ``point_confidence``,
            ``min_score``, ``classwise``).

    Writes (when ``save``): ``<key>_oks`` (the match's OKS, 0 unmatched) and ``<key>_match_id`` on
    both fields' labels, tags
    ``<key>:<kind>``, per-sample counts, one saved view per kind, the run.

    Returns:
        AuditResult: ``metrics`` COCO keypoint AP/AR (``AP``, ``AP50``, ``AP75``, ``AR``...; with
        ``area_ranges`` also ``AP_medium``/``AP_large``...), counts; ``tables["per_keypoint"]``.

    Example:
        >>> r = audit_keypoint_predictions(ds, "pose_model", "ground_truth")     # doctest: +SKIP
        >>> r.metrics["AP"], r.tables["per_keypoint"]                            # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    for name in ("sigmas", "flip_pairs"):
        if params.get(name) is not None:
            params[name] = tuple(map(tuple, params[name])) if name == "flip_pairs" else tuple(map(float, params[name]))
    config = KeypointPredictionsConfig(pred_field=pred_field, gt_field=gt_field, **params)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress)


def _read_and_compute(samples, config: KeypointPredictionsConfig, report) -> AuditOutput:
    """Both fields read ``config.batch_size`` samples at a time, each batch matched and its
    findings made there (everything is per image), only per-label numbers kept across batches;
    then COCO's AP over all of them."""
    from iou_audit.table import ReadLayout

    report.report(0.0, "reading keypoints")
    fields = [config.pred_field, config.gt_field]
    attributes = [[config.score_attribute], [config.area_attribute, config.box_attribute]]
    layout, parts, skel, done, total = ReadLayout(), [], None, 0, max(len(samples), 1)
    n_rows = dict.fromkeys(fields, 0)
    for k, (pred_t, gt_t) in iter_keypoint_batches(samples, fields, attributes, config.batch_size):
        if skel is None:
            skel = skeleton(samples, config.gt_field, k, config.sigmas, config.flip_pairs)
        pred = keypoint_objects(pred_t, k, score_attribute=config.score_attribute, area_factor=config.area_factor)
        gt = keypoint_objects(gt_t, k, config.area_attribute, config.box_attribute, config.area_factor)
        parts.append(predictions_part(pred, gt, *skel, config))
        layout.add_table(config.pred_field, pred_t)
        n_rows[config.pred_field] = n_rows[config.pred_field] + len(pred_t)
        if config.gt_field != config.pred_field:
            layout.add_table(config.gt_field, gt_t)
            n_rows[config.gt_field] += len(gt_t)
        done += pred_t.num_samples
        report.report(0.3 * done / total, f"matching keypoints ({done} samples)")
    names, sigmas, pairs = skel
    check_unique_label_ids(layout, n_rows)
    out = finish_predictions(parts, names, sigmas, config)
    out.layout = layout
    out.config_extra = {"keypoint_names": names, "sigmas_used": sigmas.tolist(), "flip_pairs_used": pairs.tolist()}
    return out


def compute_keypoint_predictions(pred: KeypointObjects, gt: KeypointObjects, names: list, sigmas: np.ndarray,
                                 pairs: np.ndarray, config: KeypointPredictionsConfig) -> AuditOutput:
    """The audit on arrays (no database access): matching, metrics, findings, values to write."""
    return finish_predictions([predictions_part(pred, gt, names, sigmas, pairs, config)], names, sigmas, config)


@dataclass
class PredictionsPart:
    """What one batch of samples contributes to the audit: its finding frames (one per position,
    in the order of one read), COCO evaluation inputs (OKS blocks and per-label numbers, no
    points), per-keypoint sums and the values to write."""

    frames: list
    eval_inputs: dict
    per_keypoint: dict
    similarity_sum: np.ndarray
    similarity_n: np.ndarray
    pair_oks: np.ndarray
    n_ignored: int
    label_values: dict


def predictions_part(pred: KeypointObjects, gt: KeypointObjects, names: list, sigmas: np.ndarray,
                     pairs: np.ndarray, config: KeypointPredictionsConfig) -> PredictionsPart:
    """One batch: matching for findings, findings, evaluation inputs (no database access).
    ``possible_missing`` scores are the raw instance scores here; :func:`finish_predictions`
    divides them by the largest score of the whole field."""
    pt, gtt = pred.table, gt.table
    k = len(sigmas)
    values, po = directed_oks(pred, gt, sigmas)
    order = flip_order(pairs, k)
    flipped = directed_oks(pred, gt, sigmas, pred.points[:, order])[0] if len(pairs) else values
    best = np.maximum(values, flipped)
    crowd = np.asarray(gtt.iscrowd, bool)
    ignore = crowd | ~gt.labeled.any(axis=1)
    labels = dict(labels1=pt.label, labels2=gtt.label) if config.classwise else {}
    m1, _, m2, _, ig1 = batched_match(best, po, pt.offsets, gtt.offsets, pred.score, config.oks_thresh,
                                        crowd2=crowd, ignore2=ignore, return_ignored=True, **labels)
    # metrics (at the end, over all batches): COCO's evaluation on plain OKS, the inputs
    # keypoint_evaluate builds from the points
    eval_inputs = {"values": values, "pair_offsets": po, "dt_offsets": pt.offsets, "gt_offsets": gtt.offsets,
                   "dt_scores": pred.score, "dt_labels": np.asarray(pt.label), "gt_labels": np.asarray(gtt.label),
                   "gt_crowd": crowd, "gt_ignore": ignore, "dt_area": result_areas(pred.points),
                   "gt_area": np.asarray(gt.area, dtype=np.float64)}

    frames = []
    # object level
    _, rows1, rows2 = batched_pair_rows(pt.offsets, len(pt), gtt.offsets, len(gtt))
    best_gt = np.zeros(len(gtt))
    np.maximum.at(best_gt, rows2, best)
    spurious = np.flatnonzero((m2 < 0) & ~ignore)
    frames.append(_frame("possible_spurious", gt, spurious, pred, np.full(len(spurious), -1), 1.0 - best_gt[spurious],
                         best_gt[spurious], ["no prediction matches it (best OKS %.2f)" % v for v in best_gt[spurious]]))
    missing = np.flatnonzero((m1 < 0) & ~ig1)
    frames.append(_frame("possible_missing", pred, missing, gt, np.full(len(missing), -1), pred.score[missing],
                         np.zeros(len(missing)), ["no label matches it (score %.3g)" % v for v in pred.score[missing]]))

    # keypoint level, over matched pairs with a counted label
    pi = np.flatnonzero((m1 >= 0) & ~ig1)
    gj = m1[pi]
    pair_oks = values[pair_index(po, pt.offsets, gtt.offsets, pt.sample_index, pi, gj)]
    # written: the plain OKS of each match (the mirror only helps find the match), 0 unmatched
    o1, o2 = np.zeros(len(pt)), np.zeros(len(gtt))
    every = np.flatnonzero(m1 >= 0)
    o1[every] = values[pair_index(po, pt.offsets, gtt.offsets, pt.sample_index, every, m1[every])]
    hit = np.flatnonzero(m2 >= 0)  # a crowd's match is its highest-scoring prediction
    o2[hit] = values[pair_index(po, pt.offsets, gtt.offsets, pt.sample_index, m2[hit], hit)]
    per_kp, sim = _keypoint_findings(pred, gt, pi, gj, pair_oks, sigmas, pairs, order, names, config, frames)
    label_values = {
        gtt.field: {"oks": dict(zip(gtt.label_id, o2.tolist())), "match_id": dict(zip(gtt.label_id, _ids(pt, m2)))},
        pt.field: {"oks": dict(zip(pt.label_id, o1.tolist())), "match_id": dict(zip(pt.label_id, _ids(gtt, m1)))},
    }
    return PredictionsPart(frames, eval_inputs, per_kp, np.nansum(sim, axis=0), np.isfinite(sim).sum(axis=0),
                           pair_oks, int(ignore.sum()), label_values)


def finish_predictions(parts: list, names: list, sigmas: np.ndarray, config: KeypointPredictionsConfig) -> AuditOutput:
    """The batches' parts joined: COCO AP/AR over all of them, the findings (in the order one
    read gives), the per-keypoint table and the values to write."""
    from iou_audit.overlaps import concat_pairs

    ev = [p.eval_inputs for p in parts]
    n_pred, n_gt = sum(len(e["dt_scores"]) for e in ev), sum(len(e["gt_labels"]) for e in ev)
    values, pair_offsets = concat_pairs([e["values"] for e in ev], [e["pair_offsets"] for e in ev])
    cat = {name: np.concatenate([e[name] for e in ev]) for name in
           ("dt_scores", "dt_labels", "gt_labels", "gt_crowd", "gt_ignore", "dt_area", "gt_area")}
    result = coco_evaluate(values, pair_offsets, _join_offsets([e["dt_offsets"] for e in ev]),
                           _join_offsets([e["gt_offsets"] for e in ev]), cat["dt_scores"], cat["dt_labels"],
                           cat["gt_labels"], gt_crowd=cat["gt_crowd"], gt_ignore=cat["gt_ignore"],
                           iou_thresholds=COCO_IOU_THRESHOLDS, max_dets=KEYPOINT_MAX_DETS, dt_area=cat["dt_area"],
                           gt_area=cat["gt_area"], area_ranges=KEYPOINT_AREA_RANGES if config.area_ranges else None)
    metrics = keypoint_stats(result) if n_gt else {}

    # possible_missing: the instance score over the field's largest (when scores exceed 1)
    scale = max(1.0, float(np.max(cat["dt_scores"], initial=0.0)))
    for p in parts:
        p.frames[1]["score"] = np.clip(p.frames[1]["score"].to_numpy() / scale, 0, 1)
    frames = [p.frames[i] for i in range(len(parts[0].frames)) for p in parts]
    findings = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
    findings = make_findings(findings, audit=AUDIT)
    findings = findings[findings["score"] >= config.min_score]
    findings = findings.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    counts = findings["kind"].value_counts()
    pair_oks = np.concatenate([p.pair_oks for p in parts])
    metrics.update({"n_predictions": n_pred, "n_labels": n_gt, "n_ignored_labels": sum(p.n_ignored for p in parts),
                    "n_matched": len(pair_oks),
                    "mean_matched_oks": float(np.mean(pair_oks)) if len(pair_oks) else float("nan"),
                    **{f"n_{kind}": int(counts.get(kind, 0)) for kind in KINDS}})
    sim_n = sum(p.similarity_n for p in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = np.where(sim_n > 0, sum(p.similarity_sum for p in parts) / np.maximum(sim_n, 1), np.nan)
    per_kp = pd.DataFrame({"keypoint": names, "sigma": sigmas, **{c: sum(p.per_keypoint[c] for p in parts)
                                                                  for c in ("labeled", "compared")},
                           "mean_similarity": mean_sim,
                           **{c: sum(p.per_keypoint[c] for p in parts)
                              for c in ("mislocated", "extra", "missing", "swapped")}})
    label_values: dict = {}
    for p in parts:
        for field, attrs in p.label_values.items():
            for name, by_id in attrs.items():
                label_values.setdefault(field, {}).setdefault(name, {}).update(by_id)
    return AuditOutput(findings, label_values=label_values, tables={"per_keypoint": per_kp}, metrics=metrics)


def _join_offsets(offsets: list) -> np.ndarray:
    """Per-sample row offsets of consecutive batches as one (``[0, 2] + [0, 1]`` -> ``[0, 2, 3]``)."""
    start = np.cumsum([0] + [int(o[-1]) for o in offsets])
    return np.concatenate([[0]] + [np.asarray(o[1:]) + start[i] for i, o in enumerate(offsets)]).astype(np.int64)


def _keypoint_findings(pred, gt, pi, gj, pair_oks, sigmas, pairs, order, names, config, frames) -> tuple:
    """The keypoint-level frames (appended to ``frames``), per-keypoint counts and the (P, K) similarity."""
    k = len(sigmas)
    p_pts, g_pts = pred.points[pi], gt.points[gj]
    area = gt.area[gj]
    g_lab = gt.labeled[gj]
    conf = pred.point_confidence[pi]
    has_conf = np.isfinite(conf)
    present = np.isfinite(p_pts).all(axis=2)
    placed = present & (~has_conf | (conf >= config.point_confidence))
    sim = keypoint_similarity(p_pts, g_pts, area, g_lab & present, sigmas)
    crossed = keypoint_similarity(p_pts[:, order], g_pts, area, g_lab & placed[:, order], sigmas)
    swapped, swap_rows, swap_n, swap_score, cross_v, straight_v = left_right_swaps(
        sim, crossed, g_lab & placed, pairs, config.point_similarity)
    swap_pair = [f"{names[pairs[n][0]]} <-> {names[pairs[n][1]]}: crossed similarity {c:.2f}, straight {st:.2f}"
                 for n, c, st in zip(swap_n, cross_v, straight_v)]
    near = present & (np.nan_to_num(sim, nan=0.0) >= config.point_similarity)
    mislocated = g_lab & placed & ~near & ~swapped
    # a low-confidence point near the label still supports it
    extra = g_lab & ~placed & ~near
    missing = ~g_lab & placed & has_conf
    kinds = (("mislocated_keypoint", mislocated, 1.0 - np.nan_to_num(sim, nan=0.0), "similarity %.2f"),
             ("extra_keypoint", extra, 1.0 - np.nan_to_num(conf, nan=0.0), "model point confidence %.2f"),
             ("missing_keypoint", missing, np.nan_to_num(conf, nan=0.0), "model places it with confidence %.2f"))
    shown = {"mislocated_keypoint": np.nan_to_num(sim, nan=0.0), "extra_keypoint": conf, "missing_keypoint": conf}
    for kind, mask, score, text in kinds:
        r, c = np.nonzero(mask)
        frames.append(_frame(kind, gt, gj[r], pred, pi[r], score[r, c], pair_oks[r],
                             [f"{names[cc]} ({cc}): " + (text % v if np.isfinite(v) else "not placed")
                              for cc, v in zip(c, shown[kind][r, c])]))
    r = swap_rows
    frames.append(_frame("left_right_swap", gt, gj[r], pred, pi[r], swap_score, pair_oks[r], swap_pair))
    counts = {"labeled": gt.labeled.sum(axis=0) if len(gt) else np.zeros(k, int),
              "compared": (g_lab & present).sum(axis=0), "mislocated": mislocated.sum(axis=0),
              "extra": extra.sum(axis=0), "missing": missing.sum(axis=0), "swapped": swapped.sum(axis=0)}
    return counts, sim
