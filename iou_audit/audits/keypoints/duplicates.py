"""``audit_keypoint_duplicates``: the same person's skeleton drawn twice in one Keypoints field.

Every pair of same-class skeletons of an image is compared with the symmetric OKS (the mean of
COCO's OKS each way, :func:`iou_audit.audits.keypoints.compare.symmetric_oks`); a pair at or
above ``oks_thresh`` is a ``duplicate_skeleton`` finding on the later label of the pair (its
``other_label_id`` the earlier one; score and ``iou`` the OKS). Crowd labels are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.audits.keypoints.compare import symmetric_oks
from iou_audit.audits.keypoints.objects import (
    KEYPOINT_READ_BATCH,
    check_unique_label_ids,
    iter_keypoint_batches,
    keypoint_objects,
    skeleton,
)
from iou_audit.geometry.boxes import batched_pair_rows
from iou_audit.results import AuditResult, make_findings

AUDIT = "keypoint_duplicates"
KINDS = ("duplicate_skeleton",)


@dataclass(frozen=True)
class KeypointDuplicatesConfig(AuditConfig):
    """Parameters of the duplicate-skeleton audit."""

    field: str = option(None, "Keypoints field to check", kind="field")
    oks_thresh: float = option(0.8, "symmetric OKS at which two skeletons are the same one", low=0.0, high=1.0,
                               low_open=True, label="Duplicate OKS")
    same_label_only: bool = option(True, "compare only skeletons of the same class")
    sigmas: tuple | None = option(None, "per-keypoint OKS sigmas (default: COCO's 17)", cli=False, form=False)
    box_attribute: str | None = option(None, "label attribute with the object's relative [x, y, w, h] box", kind="name")
    area_attribute: str | None = option(None, "label attribute with the OKS area in pixels squared", kind="name")
    area_factor: float = option(1.0, "OKS area = factor x box area when no area attribute", low=0.0, low_open=True)
    batch_size: int = option(KEYPOINT_READ_BATCH, "samples read per batch (bounds memory; results do not "
                             "depend on it)", low=1, high=10**9, form=False)

    def validate(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ValueError(f"field must be a non-empty field name, got {self.field!r}")


def audit_keypoint_duplicates(samples, field: str, audit_key: str = "keypoint_duplicates", save: bool = True,
                              progress=None, **params) -> AuditResult:
    """Find skeletons drawn twice (see the module docstring).

    ``params`` are :class:`KeypointDuplicatesConfig` fields (``oks_thresh``, ``sigmas``, ...).
    Writes (when ``save``) tags ``<key>:duplicate_skeleton``, ``<key>_oks`` (the best duplicate OKS)
    on flagged labels, per-sample counts, a saved view and the run.

    Example:
        >>> audit_keypoint_duplicates(ds, "ground_truth").summary()          # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    if params.get("sigmas") is not None:
        params["sigmas"] = tuple(map(float, params["sigmas"]))
    config = KeypointDuplicatesConfig(field=field, **params)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress)


def _read_and_compute(samples, config: KeypointDuplicatesConfig, report) -> AuditOutput:
    """The field read ``config.batch_size`` samples at a time; each batch's pairs compared there."""
    from iou_audit.table import ReadLayout

    report.report(0.0, "reading keypoints")
    layout, frames, names, sigmas, done, n_labels = ReadLayout(), [], None, None, 0, 0
    total = max(len(samples), 1)
    for k, (table,) in iter_keypoint_batches(samples, [config.field], [[config.area_attribute, config.box_attribute]],
                                             config.batch_size):
        if names is None:
            names, sigmas, _ = skeleton(samples, config.field, k, config.sigmas, ())
        objs = keypoint_objects(table, k, config.area_attribute, config.box_attribute, config.area_factor)
        frames.append(duplicate_frame(objs, sigmas, config))
        layout.add_table(config.field, table)
        n_labels += len(table)
        done += table.num_samples
        report.report(0.3 + 0.6 * done / total, f"comparing skeletons ({done} samples)")
    check_unique_label_ids(layout, {config.field: n_labels})
    findings = make_findings(pd.concat(frames, ignore_index=True), audit=AUDIT)
    findings = findings.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    best: dict = {}
    for lid, x in zip(findings["label_id"], findings["score"]):
        best[lid] = max(best.get(lid, 0.0), float(x))
    return AuditOutput(findings, label_values={config.field: {"oks": best}} if best else {}, layout=layout,
                       metrics={"n_labels": n_labels, "n_duplicate_skeleton": len(findings)},
                       config_extra={"keypoint_names": names, "sigmas_used": sigmas.tolist()})


def duplicate_frame(objs, sigmas: np.ndarray, config: KeypointDuplicatesConfig) -> pd.DataFrame:
    """The duplicate pairs among one batch's skeletons (no database access), as finding rows."""
    table = objs.table
    values, _ = symmetric_oks(objs, objs, sigmas) if len(table) else (np.zeros(0), None)
    _, ri, rj = batched_pair_rows(table.offsets, len(table), table.offsets, len(table))
    keep = (ri < rj) & (values >= config.oks_thresh) & ~table.iscrowd[ri] & ~table.iscrowd[rj]
    if config.same_label_only:
        keep &= table.label[ri] == table.label[rj]
    ri, rj, v = ri[keep], rj[keep], values[keep]
    return pd.DataFrame({
        "kind": "duplicate_skeleton", "sample_id": table.sample_ids[table.sample_index[rj]] if len(rj) else [],
        "field": table.field, "label_id": table.label_id[rj], "other_field": table.field,
        "other_label_id": table.label_id[ri], "label": table.label[rj], "score": v, "iou": v,
        "detail": [f"OKS {x:.3f} with another {lab or 'skeleton'} of the image" for x, lab in zip(v, table.label[rj])],
    })
