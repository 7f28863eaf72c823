"""``audit_agreement``: read K annotators from FiftyOne, run the agreement core, write the results.

Reads: per batch of ``batch_size`` samples, one ``iter_label_tables`` read per annotator field (or
one field split by an annotator attribute); one ``values()`` call for the coverage field. Memory:
geometry and IoU blocks O(batch), per-label results O(labels) (see ``parts.py``). Writes (through ``iou_audit.results.save_audit``):
label attributes ``<key>_iou`` (mean IoU with the other members of its object),
``<key>_n_annotators`` (annotators who drew the object) and, for masks, ``<key>_boundary_iou``; label tags ``<key>:<kind>``; per-sample ``<key>_f1``,
``<key>_mean_iou``, ``<key>_alpha`` and finding counts; a saved view per kind; a custom run holding
config, findings, tables and metrics. The optional consensus field is written with one
``set_values`` call and recorded in the run's manifest. Input label fields are never modified except for those attributes and tags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.audits.agreement.cluster_stats import quorum_count
from iou_audit.audits.agreement.consensus import consensus_labels
from iou_audit.audits.agreement.core import Agreement, agreement_from_parts, agreement_parts
from iou_audit.audits.agreement.findings import KINDS
from iou_audit.audits.base import AuditConfig, AuditOutput, option
from iou_audit.results import AuditResult
from iou_audit.results.batched import plain_values, table_batches
from iou_audit.table import iter_label_tables, read_label_table, split_by_attribute
from iou_audit.table.read import check_label_field
from iou_audit.vocabulary import GEOMETRIES, METHODS, canonical_geometry, canonical_method

AUDIT = "agreement"
__all__ = ["AUDIT", "KINDS", "AgreementConfig", "audit_agreement"]


def read_annotators(samples, label_fields: str | Sequence[str], annotator_attr: str | None = None):
    """``(tables, names, fields)``: one LabelTable per annotator, same sample order (whole view at once;
    ``audit_agreement`` reads through :func:`iter_annotator_batches`).

    ``label_fields`` is a list of K >= 2 fields (one per annotator; names = field names), or one
    field whose labels carry ``annotator_attr`` (names = its values, sorted).
    """
    if isinstance(label_fields, str):
        label_fields = [label_fields]
    label_fields = list(label_fields)
    if annotator_attr is None:
        _check_fields(label_fields)
        tables = [read_label_table(samples, f) for f in label_fields]
        return tables, label_fields, label_fields
    if len(label_fields) != 1:
        raise ValueError(f"with annotator_attr, pass exactly one label field, got {label_fields}")
    field = label_fields[0]
    split = split_by_attribute(read_label_table(samples, field, attributes=[annotator_attr]), annotator_attr)
    if None in split:
        n = len(split[None].label_id)
        raise ValueError(f"{n} labels of field {field!r} have no {annotator_attr!r} attribute, e.g. label {split[None].label_id[0]}")
    names = sorted(split, key=str)
    if len(names) < 2:
        raise ValueError(f"field {field!r} has labels of {len(names)} annotator(s) {names} in {annotator_attr!r}; need >= 2")
    return [split[n] for n in names], [str(n) for n in names], [field] * len(names)


def iter_annotator_batches(samples, label_fields: str | Sequence[str], annotator_attr: str | None = None,
                           batch_size: int = 2000, names: Sequence[str] | None = None):
    """``(names, fields, batches)``: ``batches`` yields one list of K LabelTables per batch of
    ``batch_size`` samples (view order; every annotator's table covers the same samples).

    With ``annotator_attr`` the annotator names are read first (one ``distinct``), so a batch where
    an annotator drew nothing still gets its (empty) table; ``names`` passes them instead (a shard
    of a sharded run uses the names of the whole view, ``iou_audit.shards``).
    """
    if isinstance(label_fields, str):
        label_fields = [label_fields]
    label_fields = list(label_fields)
    if annotator_attr is None:
        _check_fields(label_fields)
        iters = [iter_label_tables(samples, f, batch_size=batch_size) for f in label_fields]
        return label_fields, label_fields, (list(ts) for ts in zip(*iters))
    if len(label_fields) != 1:
        raise ValueError(f"with annotator_attr, pass exactly one label field, got {label_fields}")
    field = label_fields[0]
    _, list_path = check_label_field(samples, field)
    if names is None:
        names = sorted((v for v in samples.distinct(f"{list_path}.{annotator_attr}") if v is not None), key=str)
    names = list(names)
    if len(names) < 2:
        raise ValueError(f"field {field!r} has labels of {len(names)} annotator(s) {names} in {annotator_attr!r}; need >= 2")

    def batches():
        for t in iter_label_tables(samples, field, batch_size=batch_size, attributes=[annotator_attr]):
            split = split_by_attribute(t, annotator_attr)
            if None in split:
                n = len(split[None].label_id)
                raise ValueError(f"{n} labels of field {field!r} have no {annotator_attr!r} attribute, e.g. label {split[None].label_id[0]}")
            yield [split[n] if n in split else t.take(np.zeros(0, np.int64)) for n in names]

    return [str(n) for n in names], [field] * len(names), batches()


def _check_fields(label_fields: list) -> None:
    if len(label_fields) < 2:
        raise ValueError(f"agreement needs >= 2 label fields (one per annotator) or annotator_attr; got {label_fields}")
    if len(set(label_fields)) != len(label_fields):
        raise ValueError(f"label_fields lists a field twice: {label_fields}")


def read_coverage(samples, coverage_field: str, names: Sequence[str]) -> np.ndarray:
    """(S, K) bool from a per-sample list of annotator names; a missing list means all covered."""
    values = samples.values(coverage_field)
    known = set(names)
    cov = np.ones((len(values), len(names)), dtype=bool)
    for s, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, str):
            v = [v]
        unknown = set(v) - known
        if unknown:
            raise ValueError(f"coverage field {coverage_field!r} names unknown annotators {sorted(unknown)} "
                             f"(sample #{s}); annotators are {list(names)}")
        cov[s] = [n in v for n in names]
    return cov


@dataclass(frozen=True)
class AgreementConfig(AuditConfig):
    """Parameters of the agreement audit (the defaults, the stored config, the CLI and the form)."""

    label_fields: tuple = option((), "label fields, one per annotator (or a single field with annotator_attr)",
                                 kind="fields")
    iou_thresh: float = option(0.5, "IoU needed for two labels to match", low=0.0, high=1.0, low_open=True,
                               label="Match IoU")
    method: str = option("hungarian", "one-to-one matching: optimal Hungarian or greedy", choices=METHODS)
    quorum: float | None = option(None, "annotators needed for an object to count as found: a fraction q "
                                  "(ceil(q*n)) or a count; default a strict majority of the annotators who "
                                  "labelled the image", kind="quorum")
    consensus_field: str | None = option(None, "write fused consensus labels to this new field", kind="new_field")
    annotator_attr: str | None = option(None, "label attribute naming the annotator, when all annotators share "
                                        "one field", kind="name")
    coverage_field: str | None = option(None, "per-sample list of the annotators who labelled it (others: not "
                                        "labelled, not 'empty')", kind="name")
    geometry: str = option("auto", "overlap geometry (auto: masks when every annotator has them, polygons for "
                           "Polylines, else boxes)", choices=GEOMETRIES)
    low_iou: float = option(0.75, "a label whose mean IoU with the other annotators' is below this is "
                            "low_agreement", low=0.0, high=1.0, label="Low-agreement IoU")
    compute_map: bool = option(True, "also compute the inter-annotator mAP@[.5:.95]", label="Inter-annotator mAP")
    batch_size: int = option(2000, "samples read and matched per batch (bounds memory; results do not depend "
                             "on it)", low=1, high=10**9, form=False)

    def validate(self) -> None:
        if self.quorum is not None:  # the audit's own rule, applied before anything is read
            if isinstance(self.quorum, bool) or not isinstance(self.quorum, (int, float)):
                raise TypeError(f"quorum must be None, a fraction or a count, got {self.quorum!r}")
            quorum_count(np.array([1]), self.quorum)


def audit_agreement(
    samples,
    label_fields: str | Sequence[str],
    iou_thresh: float = AgreementConfig.iou_thresh,
    method: str = AgreementConfig.method,
    quorum: float | int | None = None,
    consensus_field: str | None = None,
    audit_key: str = "agreement",
    annotator_attr: str | None = None,
    coverage_field: str | None = None,
    geometry: str = AgreementConfig.geometry,
    low_iou: float = AgreementConfig.low_iou,
    compute_map: bool = True,
    save: bool = True,
    progress=None,
    batch_size: int = AgreementConfig.batch_size,
    keep_parts=False,
) -> AuditResult:
    """Multi-annotator agreement audit of a FiftyOne collection.

    Args:
        samples: dataset or view.
        label_fields: one Detections/Polylines field per annotator, or one field + ``annotator_attr``.
        iou_thresh: a pair of labels can match only at IoU >= this (default 0.5).
        method: ``"hungarian"`` (default, optimal) or ``"greedy"``.
        quorum: annotators needed for an object to count as found: None = strict majority of the
            covering annotators, a float q = ceil(q * n), an int = that count.
        consensus_field: if given, a new Detections field with the fused labels (recorded in the
            run: ``delete_audit`` removes it, a re-run with the same key replaces it).
        audit_key: prefix of everything written, and the run's key.
        annotator_attr: label attribute naming the annotator when all are in one field.
        coverage_field: per-sample list of the annotators who labelled the sample; the others are
            "not labelled" (excluded), not "found nothing".
        geometry: ``"auto"`` (masks if present, else polygons for Polylines, else boxes), or
            ``"boxes"``/``"masks"``/``"polygons"``.
        low_iou: clusters whose mean pairwise IoU is below this are ``low_agreement`` findings.
        compute_map: also compute the inter-annotator mAP@[.5:.95].
        save: write results into the dataset (False: compute only).
        progress: None, True (a tqdm bar), a callable ``(fraction, label)`` or an operator context.
        batch_size: samples read and matched at a time. Geometry (masks, polygons) and IoU blocks
            are held for one batch only; per-label results (O(labels)) are kept to compute the
            global statistics, which equal those of a single pass.
        keep_parts: True (or a number of samples per part) keeps the run's parts so
            ``iou_audit.rerun_changed`` can later re-run only the changed samples (same stored run;
            see ``iou_audit.shards.plain``).

    Returns:
        AuditResult with findings, tables (pairs, matrix_f1, matrix_f1_class, matrix_mean_iou,
        per_image, per_class, annotators, threshold_curve, map_pairs) and metrics (alpha_nominal,
        alpha_interval, f1, f1_class, mean_iou, map, map50, boundary_iou for masks, counts).
    """
    from iou_audit.audits.runner import run_audit

    fields = (label_fields,) if isinstance(label_fields, str) else tuple(label_fields)
    config = AgreementConfig(label_fields=fields, iou_thresh=iou_thresh, method=canonical_method(method),
                             quorum=quorum, consensus_field=consensus_field, annotator_attr=annotator_attr,
                             coverage_field=coverage_field, geometry=canonical_geometry(geometry), low_iou=low_iou,
                             compute_map=bool(compute_map), batch_size=batch_size)
    if save and consensus_field:  # refused before the matching, not after it
        _check_consensus_name(samples, consensus_field, audit_key)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress,
                     keep_parts=keep_parts)


def _check_consensus_name(samples, name: str, audit_key: str) -> None:
    from iou_audit.results.runs import check_new_field

    check_new_field(fop.root_dataset(samples), name, audit_key)


def _read_and_compute(samples, config: AgreementConfig, report) -> AuditOutput:
    names, fields, parts, geometry = read_parts(samples, config, report)
    return output_from_parts(parts, names, fields, geometry, config)


def read_parts(samples, config: AgreementConfig, report, names: Sequence[str] | None = None):
    """``(names, fields, parts, geometry)``: read and match ``samples`` batch by batch, keeping each
    batch's O(labels) part (``core.agreement_parts``); ``names``: the annotator names of an
    ``annotator_attr`` field when already known (a shard of a sharded run)."""
    report.report(0.0, "reading labels")
    label_fields = config.label_fields[0] if len(config.label_fields) == 1 else list(config.label_fields)
    names, fields, tables_iter = iter_annotator_batches(samples, label_fields, config.annotator_attr,
                                                        config.batch_size, names=names)
    coverage = read_coverage(samples, config.coverage_field, names) if config.coverage_field else None
    n_samples = max(len(samples), 1)
    state = {"start": 0}

    def batches():
        for tables in tables_iter:
            n = len(tables[0].offsets) - 1
            cov = None if coverage is None else coverage[state["start"]:state["start"] + n]
            state["start"] += n
            report.report(0.6 * state["start"] / n_samples, f"matching {len(names)} annotators ({state['start']} samples)")
            yield tables, cov

    parts, geometry = agreement_parts(
        batches(), iou_thresh=config.iou_thresh, method=config.method, quorum=config.quorum, geometry=config.geometry,
        compute_map=config.compute_map, consensus=bool(config.consensus_field))
    return names, fields, parts, geometry


def output_from_parts(parts: list, names, fields, geometry: str, config: AgreementConfig) -> AuditOutput:
    """The audit's output from the parts of every batch, in view order (``core.agreement_from_parts``)."""
    r: Agreement = agreement_from_parts(
        parts, names=names, fields=fields, iou_thresh=config.iou_thresh, quorum=config.quorum, geometry=geometry,
        low_iou=config.low_iou, compute_map=config.compute_map)
    tables = r.label_tables
    new_fields = {config.consensus_field: consensus_values(tables, r)} if config.consensus_field else {}
    # per-label values written batch by batch from the O(labels) arrays (no per-label dicts)
    label_batches = table_batches(tables, fields, r.label_values, config.batch_size)
    return AuditOutput(r.findings, label_batches=label_batches, sample_values=_sample_fields(r),
                       new_fields=new_fields, tables=r.tables, metrics=r.metrics,
                       config_extra={"annotators": names, "geometry": r.geometry})


def _sample_fields(r: Agreement) -> dict:
    img = r.tables["per_image"]
    return {col: dict(zip(img.sample_id.tolist(), plain_values(img[col].to_numpy(dtype=float))))
            for col in ("f1", "mean_iou", "alpha")}


def consensus_values(tables, r: Agreement) -> dict:
    """``{sample_id: fo.Detections}`` of the fused labels (written by the runner in one ``set_values``)."""
    import fiftyone as fo

    fused = r.consensus if r.consensus is not None else consensus_labels(tables, r.cluster_table, r.members, r.geometry)
    per_sample: list[list] = [[] for _ in range(len(tables[0].sample_ids))]
    for row in fused.itertuples():
        x1, y1, x2, y2 = (float(v) for v in row.box)
        det = fo.Detection(label=str(row.label), bounding_box=[x1, y1, x2 - x1, y2 - y1],
                           confidence=float(row.confidence), members=list(row.members),
                           n_annotators=int(row.n_annotators))
        if row.mask is not None:
            det.mask = row.mask
        per_sample[row.sample_index].append(det)
    return {sid: fo.Detections(detections=d) for sid, d in zip(tables[0].sample_ids, per_sample)}
