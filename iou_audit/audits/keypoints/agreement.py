"""``audit_keypoint_agreement``: how well two or more annotators' Keypoints fields agree, per
object and per keypoint.

For every pair of fields (in the order given), the skeletons of each image are compared with the
symmetric OKS (mean of COCO's OKS each way, each annotator in turn the ground truth) and matched
one-to-one with the Hungarian method (maximum total OKS, pairs below ``oks_thresh`` never match;
class-wise). As in the prediction audit, matching takes the larger of the OKS and the OKS with one
side mirrored, so a skeleton drawn mirror-wise is matched and reported as a swap. Skeletons without
labeled keypoints take no part. Per matched pair, keypoint k is compared where both annotators
labeled it, with the pair's mean area.

Findings (on the first field's label; ``other_label_id`` the second's):
- ``unmatched_object``: a skeleton with no counterpart in the other field (score 1 - its best
  symmetric OKS there; on the label of whichever field has it);
- ``low_oks_object``: matched, symmetric OKS below ``low_oks`` (score 1 - OKS);
- ``keypoint_disagreement``: a keypoint both labeled whose similarity is below
  ``point_similarity`` (score 1 - similarity), unless part of a swap;
- ``visibility_disagreement``: a keypoint one annotator labeled and the other did not (score 0.5);
- ``occlusion_disagreement`` (with ``compare_occlusion``): a keypoint both labeled, one as
  occluded (COCO flag 1), the other as visible (2) (score 0.5; only where both give flags, not
  for the keypoints of a swap);
- ``left_right_swap``: a left/right pair that agrees crossed and not straight (score crossed -
  straight mean similarity).

Krippendorff's alpha (nominal) of the keypoints' state per keypoint (``tables["per_keypoint"]
["flag_alpha"]``) and over all keypoints (``metrics["flag_alpha"]``): each matched pair of
skeletons is a unit with two values per keypoint, 0 not labeled, 1 occluded, 2 visible (a labeled
point without flags counts as visible); the coincidence matrix sums ``C + C^T`` of the field
pairs' (K, 3, 3) state confusions, so with 3+ fields every matched pair is its own 2-value unit.
Unmatched skeletons take no part.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.audits.keypoints.compare import left_right_swaps, pair_index, symmetric_oks
from iou_audit.audits.keypoints.findings import finding_frame as _frame
from iou_audit.audits.keypoints.findings import ids_at
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
from iou_audit.geometry.semantic import nominal_alpha
from iou_audit.matching import batched_match
from iou_audit.results import AuditResult, make_findings

AUDIT = "keypoint_agreement"
KINDS = ("unmatched_object", "low_oks_object", "keypoint_disagreement", "visibility_disagreement", "left_right_swap",
         "occlusion_disagreement")
#: the score of a keypoint labeled by one annotator only (no distance to weigh it by)
VISIBILITY_SCORE = 0.5
#: the score of a keypoint both labeled, one as occluded and the other as visible
OCCLUSION_SCORE = 0.5
#: COCO's visibility flags of a labeled point, by name
FLAG_NAMES = {1: "occluded (1)", 2: "visible (2)"}
#: A keypoint's states for Krippendorff's alpha: not labeled (0), occluded (1), visible (2)
N_STATES = 3


@dataclass(frozen=True)
class KeypointAgreementConfig(AuditConfig):
    """Parameters of the keypoint agreement audit."""

    fields: tuple = option((), "two or more Keypoints fields, one per annotator", kind="fields")
    oks_thresh: float = option(0.5, "symmetric OKS at which two skeletons are the same object", low=0.0, high=1.0,
                               low_open=True, label="Match OKS")
    low_oks: float = option(0.75, "matched skeletons below this OKS are a finding", low=0.0, high=1.0)
    point_similarity: float = option(0.5, "a keypoint pair below this similarity disagrees", low=0.0, high=1.0,
                                     low_open=True)
    classwise: bool = option(True, "match only same-class skeletons", label="Class-wise matching")
    sigmas: tuple | None = option(None, "per-keypoint OKS sigmas (default: COCO's 17)", cli=False, form=False)
    flip_pairs: tuple | None = option(None, "left/right keypoint index pairs (default: from the skeleton)", cli=False,
                                      form=False)
    area_attribute: str | None = option(None, "label attribute with the OKS area in pixels squared", kind="name")
    box_attribute: str | None = option(None, "label attribute with the object's relative [x, y, w, h] box", kind="name")
    area_factor: float = option(1.0, "OKS area = factor x box area when no area attribute", low=0.0, low_open=True)
    compare_occlusion: bool = option(True, "compare occluded (1) vs visible (2) flags where both annotators give "
                                     "them", label="Compare occlusion flags")
    min_score: float = option(0.5, "findings (and tags) are emitted for scores >= this", low=0.0, high=1.0)
    batch_size: int = option(KEYPOINT_READ_BATCH, "samples read per batch (bounds memory; results do not "
                             "depend on it)", low=1, high=10**9, form=False)

    def validate(self) -> None:
        if len(self.fields) < 2 or len(set(self.fields)) != len(self.fields) or not all(
                isinstance(f, str) and f for f in self.fields):
            raise ValueError(f"fields must be two or more distinct field names, got {list(self.fields)!r}")


def audit_keypoint_agreement(samples, fields, audit_key: str = "keypoint_agreement", save: bool = True,
                             progress=None, **params) -> AuditResult:
    """Agreement between annotators' Keypoints fields (see the module docstring).

    ``params`` are :class:`KeypointAgreementConfig` fields. Writes (when ``save``) ``<key>_oks``
    on every label (mean over the other fields of its matched symmetric OKS, 0 where unmatched;
    with two fields also ``<key>_match_id``, the counterpart's id or ""),
    tags ``<key>:<kind>``, per-sample counts, saved views and the run.

    Returns:
        AuditResult: ``metrics`` ``mean_oks`` (matched pairs), ``object_f1`` (2 x matched / all
        skeletons, over field pairs), ``n_<kind>``; ``tables["per_keypoint"]`` (mean similarity,
        disagreements, one-sided labels, swaps, occlusion flags compared and differing, the
        state alpha ``flag_alpha`` per keypoint) and ``tables["per_field_pair"]``; ``metrics["flag_alpha"]``.

    Example:
        >>> r = audit_keypoint_agreement(ds, ["annotator_a", "annotator_b"])   # doctest: +SKIP
        >>> r.tables["per_keypoint"]                                            # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    for name in ("sigmas", "flip_pairs"):
        if params.get(name) is not None:
            params[name] = tuple(map(tuple, params[name])) if name == "flip_pairs" else tuple(map(float, params[name]))
    config = KeypointAgreementConfig(fields=tuple(fields), **params)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress)


def _read_and_compute(samples, config: KeypointAgreementConfig, report) -> AuditOutput:
    """Every field read ``config.batch_size`` samples at a time, each batch matched and its
    findings made there (everything is per image), only per-label numbers kept across batches."""
    from iou_audit.table import ReadLayout

    report.report(0.0, "reading keypoints")
    attributes = [[config.area_attribute, config.box_attribute]] * len(config.fields)
    layout, parts, skel, done, total = ReadLayout(), [], None, 0, max(len(samples), 1)
    n_rows = dict.fromkeys(config.fields, 0)
    for k, tables in iter_keypoint_batches(samples, config.fields, attributes, config.batch_size):
        if skel is None:
            skel = skeleton(samples, config.fields[0], k, config.sigmas, config.flip_pairs)
        objs = [keypoint_objects(t, k, config.area_attribute, config.box_attribute, config.area_factor)
                for t in tables]
        parts.append(agreement_part(objs, *skel, config))
        for f, t in zip(config.fields, tables):
            layout.add_table(f, t)
            n_rows[f] += len(t)
        done += tables[0].num_samples
        report.report(0.3 * done / total, f"matching annotators ({done} samples)")
    names, sigmas, pairs = skel
    check_unique_label_ids(layout, n_rows)
    out = finish_agreement(parts, names, sigmas, config)
    out.layout = layout
    out.config_extra = {"keypoint_names": names, "sigmas_used": sigmas.tolist(), "flip_pairs_used": pairs.tolist()}
    return out


def _mirrored(o: KeypointObjects, order: np.ndarray) -> KeypointObjects:
    return replace(o, points=o.points[:, order], labeled=o.labeled[:, order])


def _states(labeled: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Point states for alpha: 0 not labeled, else its flag (1 occluded, 2 visible), 2 without one.

    Example:
        >>> _states(np.array([[False, True, True]]), np.array([[0.0, 1.0, np.nan]])).tolist()
        [[0, 1, 2]]
    """
    return np.where(labeled, np.where(flags == 1, 1, 2), 0).astype(np.int64)


def _flags(o: KeypointObjects, rows: np.ndarray, k: int) -> np.ndarray:
    """The COCO flags of rows of ``o`` (NaN where not given)."""
    return np.full((len(rows), k), np.nan) if o.flags is None else o.flags[rows]


def compute_keypoint_agreement(objs: list, names: list, sigmas: np.ndarray, pairs: np.ndarray,
                               config: KeypointAgreementConfig) -> AuditOutput:
    """The audit on arrays (no database access)."""
    return finish_agreement([agreement_part(objs, names, sigmas, pairs, config)], names, sigmas, config)


@dataclass
class AgreementPart:
    """What one batch of samples contributes: finding frames (in the order of one read), per
    field pair the matched OKS, counts and per-keypoint sums, and the values to write."""

    frames: list
    pair_counts: list  # per field pair: {"field_a", "field_b", "skeletons_a", "skeletons_b", "matched"}
    pair_oks: list  # per field pair: (matched,) symmetric OKS
    per_keypoint: dict  # name -> (K,) sums over the field pairs
    label_values: dict


def agreement_part(objs: list, names: list, sigmas: np.ndarray, pairs: np.ndarray,
                   config: KeypointAgreementConfig) -> AgreementPart:
    """One batch of every field's skeletons (no database access)."""
    k = len(sigmas)
    order = flip_order(pairs, k)
    frames, pair_counts, oks_sum = [], [], [np.zeros(len(o)) for o in objs]
    keypoint = {name: np.zeros(k, np.int64) for name in ("compared", "disagreements", "labeled_by_one", "swapped",
                                                         "occlusion_compared", "occlusion_disagreements")}
    keypoint["similarity_sum"], keypoint["similarity_n"] = np.zeros(k), np.zeros(k, np.int64)
    keypoint["state_confusion"] = np.zeros((k, N_STATES, N_STATES), np.int64)
    all_matched = []
    last_match = None
    for ia, ib in combinations(range(len(objs)), 2):
        a, b = objs[ia], objs[ib]
        ta, tb = a.table, b.table
        values, po = symmetric_oks(a, b, sigmas)
        best = np.maximum(values, symmetric_oks(_mirrored(a, order), b, sigmas)[0]) if len(pairs) else values
        _, ra, rb = batched_pair_rows(ta.offsets, len(ta), tb.offsets, len(tb))
        active = a.labeled.any(axis=1)[ra] & b.labeled.any(axis=1)[rb]
        best = np.where(active, best, 0.0)
        labels = dict(labels1=ta.label, labels2=tb.label) if config.classwise else {}
        m1, _, m2, _ = batched_match(best, po, ta.offsets, tb.offsets, None, config.oks_thresh, method="hungarian",
                                     **labels)
        # unmatched skeletons (with something labeled), on their own field
        best_a, best_b = np.zeros(len(ta)), np.zeros(len(tb))
        np.maximum.at(best_a, ra, best)
        np.maximum.at(best_b, rb, best)
        for objs_x, objs_y, m, bx in ((a, b, m1, best_a), (b, a, m2, best_b)):
            rows = np.flatnonzero((m < 0) & objs_x.labeled.any(axis=1))
            frames.append(_frame("unmatched_object", objs_x, rows, objs_y, np.full(len(rows), -1), 1.0 - bx[rows],
                                 bx[rows], [f"no skeleton of {objs_y.table.field!r} matches it (best OKS {v:.2f})"
                                            for v in bx[rows]]))
        last_match = (m1, m2)
        pa = np.flatnonzero(m1 >= 0)
        pb = m1[pa]
        pair_oks = values[pair_index(po, ta.offsets, tb.offsets, ta.sample_index, pa, pb)]
        oks_sum[ia][pa] += pair_oks
        oks_sum[ib][pb] += pair_oks
        all_matched.append(pair_oks)
        low = np.flatnonzero(pair_oks < config.low_oks)
        frames.append(_frame("low_oks_object", a, pa[low], b, pb[low], 1.0 - pair_oks[low], pair_oks[low],
                             [f"OKS {v:.2f} with {tb.field!r}" for v in pair_oks[low]]))
        # per keypoint of the matched pairs
        area = (a.area[pa] + b.area[pb]) / 2
        la, lb = a.labeled[pa], b.labeled[pb]
        both = la & lb
        sim = keypoint_similarity(a.points[pa], b.points[pb], area, both, sigmas)
        crossed = keypoint_similarity(a.points[pa][:, order], b.points[pb], area, la[:, order] & lb, sigmas)
        swapped, s_rows, s_n, s_gain, s_cross, s_straight = left_right_swaps(sim, crossed, both, pairs,
                                                                              config.point_similarity)
        bad = both & (np.nan_to_num(sim, nan=1.0) < config.point_similarity) & ~swapped
        r, c = np.nonzero(bad)
        frames.append(_frame("keypoint_disagreement", a, pa[r], b, pb[r], 1.0 - sim[r, c], pair_oks[r],
                             [f"{names[cc]} ({cc}): similarity {v:.2f}" for cc, v in zip(c, sim[r, c])]))
        r, c = np.nonzero(la ^ lb)
        frames.append(_frame("visibility_disagreement", a, pa[r], b, pb[r], np.full(len(r), VISIBILITY_SCORE),
                             pair_oks[r], [f"{names[cc]} ({cc}): labeled in {(ta.field if la[rr, cc] else tb.field)!r} "
                                           f"only" for rr, cc in zip(r, c)]))
        frames.append(_frame("left_right_swap", a, pa[s_rows], b, pb[s_rows], s_gain, pair_oks[s_rows],
                             [f"{names[pairs[n][0]]} <-> {names[pairs[n][1]]}: crossed similarity {cv:.2f}, straight "
                              f"{sv:.2f}" for n, cv, sv in zip(s_n, s_cross, s_straight)]))
        # occluded vs visible, where both labeled the point and both give flags
        fa, fb = _flags(a, pa, k), _flags(b, pb, k)
        flagged = both & np.isin(fa, tuple(FLAG_NAMES)) & np.isin(fb, tuple(FLAG_NAMES)) & ~swapped
        occl = flagged & (fa != fb) if config.compare_occlusion else np.zeros_like(flagged)
        r, c = np.nonzero(occl)
        frames.append(_frame("occlusion_disagreement", a, pa[r], b, pb[r], np.full(len(r), OCCLUSION_SCORE),
                             pair_oks[r], [f"{names[cc]} ({cc}): {FLAG_NAMES[int(fa[rr, cc])]} in {ta.field!r}, "
                                           f"{FLAG_NAMES[int(fb[rr, cc])]} in {tb.field!r}" for rr, cc in zip(r, c)]))
        # Krippendorff's alpha of the point states: this pair's (K, 3, 3) confusion
        sa, sb = _states(la, fa), _states(lb, fb)
        np.add.at(keypoint["state_confusion"], (np.broadcast_to(np.arange(k), sa.shape), sa, sb), 1)
        keypoint["occlusion_compared"] += flagged.sum(axis=0)
        keypoint["occlusion_disagreements"] += occl.sum(axis=0)
        keypoint["similarity_sum"] += np.nansum(sim, axis=0)
        keypoint["similarity_n"] += np.isfinite(sim).sum(axis=0)
        for name, mask in (("compared", both), ("disagreements", bad), ("labeled_by_one", la ^ lb),
                           ("swapped", swapped)):
            keypoint[name] += mask.sum(axis=0)
        pair_counts.append({"field_a": ta.field, "field_b": tb.field, "skeletons_a": int(a.labeled.any(axis=1).sum()),
                            "skeletons_b": int(b.labeled.any(axis=1).sum()), "matched": len(pa)})

    others = len(objs) - 1
    label_values = {o.table.field: {"oks": dict(zip(o.table.label_id, (s / max(others, 1)).tolist()))}
                    for o, s in zip(objs, oks_sum)}
    if len(objs) == 2:  # with two annotators, each label's counterpart
        (a, b), (m1, m2) = objs, last_match
        label_values[a.table.field]["match_id"] = dict(zip(a.table.label_id, ids_at(b.table, m1)))
        label_values[b.table.field]["match_id"] = dict(zip(b.table.label_id, ids_at(a.table, m2)))
    return AgreementPart(frames, pair_counts, all_matched, keypoint, label_values)


def finish_agreement(parts: list, names: list, sigmas: np.ndarray, config: KeypointAgreementConfig) -> AuditOutput:
    """The batches' parts joined: findings (in the order one read gives), metrics and tables."""
    frames = [p.frames[i] for i in range(len(parts[0].frames)) for p in parts]
    pair_rows = []
    for n, counts in enumerate(parts[0].pair_counts):
        row = {**counts, **{c: sum(p.pair_counts[n][c] for p in parts) for c in ("skeletons_a", "skeletons_b",
                                                                                 "matched")}}
        oks = np.concatenate([p.pair_oks[n] for p in parts])
        n_ab = row["skeletons_a"] + row["skeletons_b"]
        row.update(mean_oks=float(oks.mean()) if len(oks) else float("nan"),
                   object_f1=2 * row["matched"] / n_ab if n_ab else float("nan"))
        pair_rows.append(row)
    kp = {c: sum(p.per_keypoint[c] for p in parts) for c in parts[0].per_keypoint}
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = np.where(kp["similarity_n"] > 0, kp["similarity_sum"] / np.maximum(kp["similarity_n"], 1), np.nan)
    coincidence = kp["state_confusion"] + np.swapaxes(kp["state_confusion"], 1, 2)
    per_kp = pd.DataFrame({
        "keypoint": names, "sigma": sigmas, "compared": kp["compared"].astype(int), "mean_similarity": mean_sim,
        "disagreements": kp["disagreements"].astype(int), "labeled_by_one": kp["labeled_by_one"].astype(int),
        "swapped": kp["swapped"].astype(int), "occlusion_compared": kp["occlusion_compared"].astype(int),
        "occlusion_disagreements": kp["occlusion_disagreements"].astype(int),
        "flag_alpha": np.atleast_1d(nominal_alpha(coincidence)) if len(names) else np.zeros(0),
    })
    per_pair = pd.DataFrame(pair_rows)
    findings = make_findings(pd.concat([f for f in frames if len(f)], ignore_index=True)
                             if any(len(f) for f in frames) else None, audit=AUDIT)
    findings = findings[findings["score"] >= config.min_score]
    findings = findings.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    counts = findings["kind"].value_counts()
    matched = np.concatenate([o for p in parts for o in p.pair_oks]) if parts[0].pair_oks else np.zeros(0)
    total = per_pair["skeletons_a"].sum() + per_pair["skeletons_b"].sum() if len(per_pair) else 0
    metrics = {"mean_oks": float(matched.mean()) if len(matched) else float("nan"),
               "object_f1": float(2 * per_pair["matched"].sum() / total) if total else float("nan"),
               "flag_alpha": float(nominal_alpha(coincidence.sum(axis=0))),
               **{f"n_{kind}": int(counts.get(kind, 0)) for kind in KINDS}}
    label_values: dict = {}
    for p in parts:
        for field, attrs in p.label_values.items():
            for name, by_id in attrs.items():
                label_values.setdefault(field, {}).setdefault(name, {}).update(by_id)
    return AuditOutput(findings, label_values=label_values, metrics=metrics,
                       tables={"per_keypoint": per_kp, "per_field_pair": per_pair})
