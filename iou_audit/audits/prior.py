"""``audit_label_prior``: a labels-only suspicion for every label (no model, no second annotator).

A label unlike the other labels of its class is suspicious: its size or aspect ratio is an
outlier for its class (a class swap to a class of another size, a rescaled box, a box around the
wrong region), it overlaps a label of another class, or it crowds a same-class label (below the
duplicate threshold: pairs above it are the duplicates audit's). The numbers (robust class
z-scores with shrinkage, the two-component mixture fitted by EM, the posterior) are in
:mod:`iou_audit.audits.prior_scores`; the posterior is the label's score, calibrated on the data
itself (no constant says what an outlier is).

Kinds (findings for labels with posterior >= ``min_score``, named by the feature with the largest
log-likelihood ratio): ``size_outlier``, ``aspect_outlier``, ``cross_class_overlap``, ``crowded``.
Written on every label: ``<key>_suspicion`` (the posterior, read by the triage queue's combined
score, :mod:`iou_audit.review.suspicion`), ``<key>_z_area`` and ``<key>_z_aspect``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, kind_counts, option
from iou_audit.audits.duplicates import DEFAULT_IOU_THRESH
from iou_audit.audits.prior_scores import FEATURES, feature_z, raw_features, scale_mixture_em
from iou_audit.results.findings import FINDING_COLUMNS

AUDIT = "label_prior"
KINDS = ("size_outlier", "aspect_outlier", "cross_class_overlap", "crowded")
#: the kind named by each feature of :data:`iou_audit.audits.prior_scores.FEATURES`
FEATURE_KINDS = dict(zip(FEATURES, KINDS))
#: label attribute holding the prior's posterior (``<key>_<SCORE_ATTRIBUTE>``)
SCORE_ATTRIBUTE = "suspicion"
DEFAULT_SHRINKAGE = 10.0


@dataclass(frozen=True)
class LabelPriorConfig(AuditConfig):
    """Parameters of the labels-only prior (the defaults, the stored config, the CLI and the form)."""

    label_field: str = option(None, "Detections field to score", kind="field")
    shrinkage: float = option(DEFAULT_SHRINKAGE, "weight, in labels, of the global statistics in each class's "
                              "median, scale and overlap distribution", low=0.0, high=1e6, label="Shrinkage")
    dup_iou: float = option(DEFAULT_IOU_THRESH, "same-class IoU from which a pair is the duplicates audit's, not "
                            "crowding", low=0.0, high=1.0, low_open=True, label="Duplicate IoU")
    min_score: float = option(0.5, "findings (and tags) for posteriors >= this", low=0.0, high=1.0,
                              label="Minimum score")
    batch_size: int = option(2000, "samples read per batch (results do not depend on it)", low=1, high=10**9,
                             form=False)


def prior_output(labels: np.ndarray, raw: dict, shrinkage: float):
    """``(posterior, kind_index, z, metrics)`` of every label from the raw features of all batches."""
    z, censored = feature_z(raw, labels, shrinkage)
    post, pi, tau2, llr = scale_mixture_em(z, censored)
    kind = np.argmax(llr, axis=1) if len(llr) else np.zeros(0, int)
    metrics = {"error_share": float(pi), **{f"tau_{f}": float(np.sqrt(t)) for f, t in zip(FEATURES, tau2)}}
    return post, kind, z, metrics


def audit_label_prior(samples, label_field: str, shrinkage: float = DEFAULT_SHRINKAGE,
                      dup_iou: float = DEFAULT_IOU_THRESH, min_score: float = 0.5, audit_key: str = AUDIT,
                      batch_size: int = 2000, save: bool = True, progress=None):
    """Score every label of ``label_field`` by how unlike its class it is; save the scores.

    Args:
        samples: a FiftyOne dataset or view.
        label_field: a Detections field.
        shrinkage: weight (in labels) of the global statistics in each class's.
        dup_iou: same-class IoU from which a pair is left to the duplicates audit.
        min_score: findings (and tags ``<key>:<kind>``) for posteriors >= this.
        audit_key, batch_size, save, progress: as every audit (``iou_audit.audits.runner``).

    Returns:
        an ``iou_audit.results.AuditResult``; ``metrics``: ``n_labels``, ``error_share`` (the EM's
        estimate of the share of unusual labels), ``tau_<feature>`` (spread of the error component
        per feature; 1: the feature does not separate), ``n_<kind>``; ``tables["per_class"]``.

    Example:
        >>> r = audit_label_prior(ds, "ground_truth", audit_key="prior")        # doctest: +SKIP
        >>> r.findings.sort_values("score").tail(3)                             # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    config = LabelPriorConfig(label_field=label_field, shrinkage=shrinkage, dup_iou=dup_iou, min_score=min_score,
                              batch_size=batch_size)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress)


def _read_and_compute(samples, config: LabelPriorConfig, report) -> AuditOutput:
    from iou_audit.table import ReadLayout, check_label_field, iter_label_tables

    field = config.label_field
    label_type, _ = check_label_field(samples, field)
    if label_type != "detections":
        raise ValueError(f"audit_label_prior needs a Detections field; {field!r} is {label_type}")
    parts: dict[str, list] = {k: [] for k in ("label_id", "label", "sample_id")}
    raws: list[dict] = []
    total, done = len(samples), 0
    for t in iter_label_tables(samples, field, batch_size=config.batch_size, masks=False):
        raws.append(raw_features(t.box, t.offsets, t.label, t.sample_index, t.width, t.height, config.dup_iou))
        parts["label_id"].append(t.label_id)
        parts["label"].append(t.label)
        parts["sample_id"].append(t.sample_ids[t.sample_index])
        done += t.num_samples
        report.report(0.6 * done / max(total, 1), f"{done}/{total} samples")
    cat = {k: (np.concatenate(v) if v else np.zeros(0, dtype=object)) for k, v in parts.items()}
    raw = {k: (np.concatenate([r[k] for r in raws]) if raws else np.zeros(0)) for k in
           ("log_area", "log_aspect", "cross_overlap", "crowding", "border", "valid")}
    report.report(0.7, "fitting the mixture")
    post, kind, z, metrics = prior_output(cat["label"], raw, config.shrinkage)
    findings = _findings(field, cat, post, kind, z, config.min_score)
    metrics = {**kind_counts(findings, KINDS), **metrics, "n_labels": int(len(post))}
    ids = cat["label_id"].tolist()
    values = {SCORE_ATTRIBUTE: dict(zip(ids, np.round(post, 6).tolist())),
              "z_area": dict(zip(ids, np.round(z[:, 0], 4).tolist())),
              "z_aspect": dict(zip(ids, np.round(z[:, 1], 4).tolist()))}
    layout = ReadLayout()
    layout.add(field, ids, cat["sample_id"].tolist())
    return AuditOutput(findings, label_values={field: values}, metrics=metrics, layout=layout,
                       tables={"per_class": _per_class(cat["label"], raw, post)})


def _findings(field: str, cat: dict, post: np.ndarray, kind: np.ndarray, z: np.ndarray,
              min_score: float) -> pd.DataFrame:
    g = np.flatnonzero(post >= min_score)
    names = np.array(KINDS, dtype=object)[kind[g]]
    words = {"size_outlier": "area z {:+.1f} in its class", "aspect_outlier": "aspect z {:+.1f} in its class",
             "cross_class_overlap": "overlap with another class, z {:+.1f}", "crowded": "crowds a same-class label, z {:+.1f}"}
    detail = [words[k].format(z[i, kk]) for k, i, kk in zip(names, g, kind[g])]
    n = len(g)
    return pd.DataFrame({
        "audit": np.full(n, AUDIT, dtype=object), "kind": names, "sample_id": cat["sample_id"][g],
        "field": np.full(n, field, dtype=object), "label_id": cat["label_id"][g],
        "other_field": np.full(n, "", dtype=object), "other_label_id": np.full(n, "", dtype=object),
        "other_sample_id": np.full(n, "", dtype=object), "label": cat["label"][g],
        "score": post[g].astype(np.float64), "iou": np.full(n, np.nan), "detail": np.asarray(detail, dtype=object),
    }, columns=FINDING_COLUMNS).sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _per_class(labels: np.ndarray, raw: dict, post: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"label": labels.astype(str), "log_area": raw["log_area"], "log_aspect": raw["log_aspect"],
                          "suspicion": post})
    out = frame.groupby("label").agg(n=("suspicion", "size"), median_log_area=("log_area", "median"),
                                     median_log_aspect=("log_aspect", "median"), mean_suspicion=("suspicion", "mean"))
    return out.reset_index()
