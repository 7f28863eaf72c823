"""The methods compared on a case; each returns ``(label_scores, candidates)`` for
:func:`bench.label_errors.metrics.evaluate`.

- :func:`score_ours`: ``iou_audit.audit_predictions(ds, "predictions", "ground_truth")`` (or any
  ``audit_fn(dataset) -> AuditResult``); label score = ``1 - <key>_quality`` read back from the
  labels; candidates = the run's ``possible_missing`` findings (on predictions; the prediction's
  box, the finding's score). The default run uses ``min_score=0`` so that every candidate with a
  positive score is listed, not only those >= 0.5.
- :func:`score_triage`: the combined queue ``iou_audit.triage(ds)`` over a default
  ``audit_predictions`` run and an ``audit_duplicates`` run on the labels (or the runs of
  ``audits_fn(dataset) -> list of audit keys``); label rows score their queue score, a label not
  in the queue is unscored (ranks last); candidates = rows on predictions whose kinds include
  ``possible_missing``.
- :func:`score_fiftyone`: FiftyOne Brain ``compute_mistakenness(ds, "predictions",
  label_field="ground_truth")`` (confidence-based); label score = max(``mistakenness``,
  ``mistakenness_loc``) for matched labels and 2 (first) for unmatched ones (``possible_spurious``);
  candidates = predictions flagged ``possible_missing``, scored by their confidence.
- :func:`score_cleanlab`: cleanlab's per-box scores (``cleanlab.object_detection.rank``
  ``compute_badloc_box_scores``, ``compute_swap_box_scores`` on labels,
  ``compute_overlooked_box_scores`` on predictions; all "lower = worse", default parameters, pixel
  ``xyxy``); label score = 1 - min(badloc, swap) (NaN ignored; both NaN: 0); candidates = predictions
  with an overlooked score, scored 1 - overlooked.
"""
from __future__ import annotations

import numpy as np

METHODS = ("ours", "triage", "fiftyone", "cleanlab")


def _tables(case):
    from iou_audit.table import read_label_table

    gt = read_label_table(case.dataset, case.gt_field, masks=False)
    pred = read_label_table(case.dataset, case.pred_field, masks=False)
    return gt, pred


def _pred_boxes(case) -> dict:
    """``{prediction id: (sample_id, box)}``."""
    _, pred = _tables(case)
    return {lid: (pred.sample_ids[s], pred.box[i]) for i, (lid, s) in enumerate(zip(pred.label_id, pred.sample_index))}


def default_audit(dataset, pred_field="predictions", gt_field="ground_truth"):
    """Our prediction audit as the benchmark runs it (``min_score=0``: every candidate listed)."""
    import iou_audit

    return iou_audit.audit_predictions(dataset, pred_field, gt_field, audit_key="lebench_ours", min_score=0.0,
                                       coco_metrics=False, tide=False, progress=False)


def score_ours(case, audit_fn=None):
    """``(label_scores, candidates)`` of ``audit_fn(case.dataset)`` (default :func:`default_audit`).

    ``audit_fn`` returns an ``AuditResult`` whose run wrote ``<key>_quality`` on the
    ``ground_truth`` labels (key = ``result.audit_key``) and whose findings hold the
    ``possible_missing`` rows on ``predictions``.
    """
    result = (audit_fn or default_audit)(case.dataset)
    key = result.audit_key
    ids = case.dataset.values(f"{case.gt_field}.detections.id", unwind=True)
    quality = case.dataset.values(f"{case.gt_field}.detections.{key}_quality", unwind=True)
    label_scores = {i: (np.nan if q is None else 1.0 - float(q)) for i, q in zip(ids, quality)}
    f = result.findings
    f = f[(f["kind"] == "possible_missing") & (f["field"] == case.pred_field)]
    boxes = _pred_boxes(case)
    candidates = [(boxes[lid][0], boxes[lid][1], float(s)) for lid, s in zip(f["label_id"], f["score"])
                  if lid in boxes and s > 0]
    return label_scores, candidates


def default_triage_audits(dataset, pred_field="predictions", gt_field="ground_truth") -> list:
    """The audits behind :func:`score_triage` by default: predictions and duplicates, default settings."""
    import iou_audit

    iou_audit.audit_predictions(dataset, pred_field, gt_field, audit_key="lebench_tri_pred", coco_metrics=False,
                                tide=False, progress=False)
    iou_audit.audit_duplicates(dataset, gt_field, audit_key="lebench_tri_dups", progress=False)
    return ["lebench_tri_pred", "lebench_tri_dups"]


def score_triage(case, audits_fn=None):
    """``(label_scores, candidates)`` of ``iou_audit.triage`` over ``audits_fn(case.dataset)``'s keys."""
    import iou_audit

    keys = (audits_fn or default_triage_audits)(case.dataset)
    q = iou_audit.triage(case.dataset, audit_keys=keys, states=None)
    label_scores, candidates = {}, []
    if not len(q):
        return label_scores, candidates
    boxes = _pred_boxes(case)
    for field, lid, kinds, score in zip(q["field"], q["label_id"], q["kinds"], q["score"]):
        if field == case.gt_field and lid:
            label_scores[lid] = float(score)
        elif field == case.pred_field and lid in boxes and "possible_missing" in (kinds or []):
            candidates.append((boxes[lid][0], boxes[lid][1], float(score)))
    return label_scores, candidates


def score_fiftyone(case):
    """``(label_scores, candidates)`` of FiftyOne Brain's ``compute_mistakenness`` (see module docstring)."""
    import fiftyone.brain as fob

    ds = case.dataset
    fob.compute_mistakenness(ds, case.pred_field, label_field=case.gt_field,
                             progress=False)
    g = f"{case.gt_field}.detections"
    ids = ds.values(f"{g}.id", unwind=True)
    m = ds.values(f"{g}.mistakenness", unwind=True)
    loc = ds.values(f"{g}.mistakenness_loc", unwind=True)
    spur = ds.values(f"{g}.possible_spurious", unwind=True)
    label_scores = {}
    for i, a, b, c in zip(ids, m, loc, spur):
        label_scores[i] = 2.0 if c else max(0.0 if a is None else float(a), 0.0 if b is None else float(b))
    p = f"{case.pred_field}.detections"
    sids = ds.values("id")
    candidates = []
    for sid, pb, miss, conf in zip(sids, ds.values(f"{p}.bounding_box"), ds.values(f"{p}.possible_missing"),
                                   ds.values(f"{p}.confidence")):
        for bb, mi, c in zip(pb or [], miss or [], conf or []):
            if mi:
                x, y, w, h = bb
                candidates.append((sid, np.array([x, y, x + w, y + h]), float(c)))
    return label_scores, candidates


def score_cleanlab(case):
    """``(label_scores, candidates)`` from cleanlab's per-box scores (see module docstring)."""
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
    )

    gt, pred = _tables(case)
    classes = sorted(set(gt.label.tolist()) | set(pred.label.tolist()))
    code = {c: k for k, c in enumerate(classes)}
    labels, predictions, pred_rows = [], [], []
    for s in range(len(gt.offsets) - 1):
        scale = np.array([gt.width[s], gt.height[s], gt.width[s], gt.height[s]])
        a, b = gt.offsets[s], gt.offsets[s + 1]
        labels.append({"bboxes": gt.box[a:b] * scale, "labels": np.array([code[x] for x in gt.label[a:b]], int)})
        a, b = pred.offsets[s], pred.offsets[s + 1]
        pl = np.array([code[x] for x in pred.label[a:b]], int)
        arrays, rows = [], []
        for k in range(len(classes)):  # cleanlab's per-class arrays; its box order is this concatenation
            sel = np.flatnonzero(pl == k)
            arrays.append(np.c_[pred.box[a:b][sel] * scale, pred.confidence[a:b][sel]].reshape(-1, 5))
            rows.extend(a + sel)
        predictions.append(arrays)
        pred_rows.append(np.asarray(rows, np.int64))
    badloc = compute_badloc_box_scores(labels=labels, predictions=predictions)
    swap = compute_swap_box_scores(labels=labels, predictions=predictions)
    overlooked = compute_overlooked_box_scores(labels=labels, predictions=predictions)
    both = np.fmin(np.concatenate([np.asarray(x, float).reshape(-1) for x in badloc] or [np.zeros(0)]),
                   np.concatenate([np.asarray(x, float).reshape(-1) for x in swap] or [np.zeros(0)]))
    label_scores = dict(zip(gt.label_id.tolist(), np.where(np.isnan(both), 0.0, 1.0 - both).tolist()))
    candidates = []
    for s, (ov, rows) in enumerate(zip(overlooked, pred_rows)):
        for v, i in zip(np.asarray(ov, float), rows):
            if np.isfinite(v):
                candidates.append((pred.sample_ids[s], pred.box[i], 1.0 - float(v)))
    return label_scores, candidates


#: methods whose scores do not read our code: they can be cached per case (``score(..., cache_dir=)``)
CACHEABLE = ("fiftyone", "cleanlab")


def _cache_path(case, method: str, cache_dir):
    import pathlib  # noqa: PLC0415

    n = len(case.truth.labels)
    return pathlib.Path(cache_dir) / f"{case.source}-seed{case.seed}-labels{n}-{method}.pkl"


def save_cached(case, method: str, label_scores: dict, candidates, cache_dir) -> None:
    """Store a peer's scores of ``case`` by position (label order of ``case.truth.labels``, sample order
    of the dataset): a rebuilt case of the same source and seed has the same labels under new ids."""
    import pickle

    ids = case.truth.labels.index.tolist()
    pos = {sid: i for i, sid in enumerate(case.dataset.values("id"))}
    data = {"labels": np.array([float(label_scores.get(i, np.nan)) for i in ids]),
            "types": case.truth.labels["type"].tolist(),
            "candidates": [(pos[c[0]], np.asarray(c[1], float), float(c[2])) for c in candidates]}
    path = _cache_path(case, method, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)


def load_cached(case, method: str, cache_dir):
    """``(label_scores, candidates)`` stored by :func:`save_cached` for this source, seed and label
    count, or None (no file, or its truth differs from the case's: the case was not rebuilt the same)."""
    import pickle

    path = _cache_path(case, method, cache_dir)
    if not path.exists():
        return None
    with open(path, "rb") as f:
        data = pickle.load(f)
    if data["types"] != case.truth.labels["type"].tolist():
        return None
    sids = case.dataset.values("id")
    label_scores = dict(zip(case.truth.labels.index.tolist(), data["labels"].tolist()))
    return label_scores, [(sids[s], box, score) for s, box, score in data["candidates"]]


def score(case, method: str, cache_dir=None):
    """``(label_scores, candidates)`` of one of :data:`METHODS` on ``case``; with ``cache_dir``, the peers'
    (:data:`CACHEABLE`) are read from there when stored for this case, else computed and stored."""
    fn = {"ours": score_ours, "triage": score_triage, "fiftyone": score_fiftyone, "cleanlab": score_cleanlab}
    if method not in fn:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if cache_dir is None or method not in CACHEABLE:
        return fn[method](case)
    got = load_cached(case, method, cache_dir)
    if got is None:
        got = fn[method](case)
        save_cached(case, method, *got, cache_dir)
    return got
