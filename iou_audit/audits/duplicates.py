"""Duplicate, conflicting, contained, degenerate and out-of-bounds labels within one label field.

Kinds (one finding row each, ``score`` in 0..1, higher = more suspicious):

- ``duplicate``: two labels of the same class with IoU >= ``iou_thresh``; the *later* label of the
  pair is flagged (``other_label_id`` is the earlier one), as ``fiftyone.utils.iou.find_duplicates``
  (method "simple") does. Score = IoU.
- ``class_conflict``: two labels of different classes with IoU >= ``conflict_iou`` (0.95: the same
  object given two classes). The later label is flagged. Score = IoU.
- ``contained``: same class, IoU below ``iou_thresh`` but intersection-over-smaller >= ``contain_ios``
  (a box drawn inside another one of its class). The smaller label is flagged. Score = IoS.
- ``degenerate_box``: zero or negative width/height, or a NaN/inf coordinate. Score 1.
- ``out_of_bounds``: a valid box reaching outside the image [0, 1]^2 beyond
  ``iou_audit.table.model.BOUNDS_TOLERANCE``. Score = fraction of its area outside the image.

Geometry: boxes by default; instance masks (pixel IoU of FiftyOne's cropped masks) where both
labels of a pair have a mask; filled polylines (shapely polygon IoU) for Polylines fields, open
polylines by their bounding boxes. Box IoU > 0 is the prefilter: a mask or polygon lies inside
its box, so pairs whose boxes do not intersect cannot overlap.

Default ``iou_thresh = 0.75`` (evidence, measured with this module's box kernel on BCCD, 4,888
human boxes of 364 images): the IoU of same-class neighbours that are distinct cells never
exceeds 0.593 (2,412 touching pairs: median 0.043, 99th percentile 0.444, then 0.59, 0.54, 0.53),
then there is an empty gap up to 0.83; above it sit only 8 pairs, 7 of them a copy of a box shifted
by (2, 2) px (IoU 0.915-0.933) and one box drawn inside another (IoU 0.83, IoS 1.0). 0.75 lies in
that gap with a margin on both sides, and is the value of FiftyOne's dedup recipe (max_iou > 0.75,
PR #1394). Encord Active's 0.6 would sit 0.007 above the largest legitimate BCCD overlap;
FiftyOne's ``find_duplicates`` default 0.999 only finds exact copies and misses all 8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, kind_counts, option
from iou_audit.geometry.boxes import batched_self_pairs, valid_boxes
from iou_audit.results.findings import FINDING_COLUMNS
from iou_audit.table.model import BOUNDS_TOLERANCE, LabelTable, require_frame_sizes
from iou_audit.vocabulary import GEOMETRIES, canonical_geometry

AUDIT = "duplicates"
KINDS = ("duplicate", "class_conflict", "contained", "degenerate_box", "out_of_bounds")
DEFAULT_IOU_THRESH = 0.75
#: Which labels get the ``<key>_max_iou`` attribute (see :func:`duplicate_findings`).
MAX_IOU_LABELS = ("flagged", "overlapping")
#: Slack on threshold comparisons, for IoUs that float arithmetic puts an ulp below the threshold.
THRESH_TOLERANCE = 1e-9
DEFAULT_CONFLICT_IOU = 0.95
DEFAULT_CONTAIN_IOS = 0.95


def box_problems(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Degenerate and out-of-bounds boxes of an (L, 4) relative ``xyxy`` array.

    Returns:
        ``(degenerate, out_of_bounds, outside_fraction)``: (L,) bool, (L,) bool, (L,) float64
        (share of the box's area outside [0, 1]^2; 0 for degenerate boxes).

    Example:
        >>> d, o, f = box_problems(np.array([[.1, .1, .1, .5], [.5, .5, 1.5, 1.], [.1, .1, .2, .2]]))
        >>> d.tolist(), o.tolist(), f.round(2).tolist()
        ([True, False, False], [False, True, False], [0.0, 0.5, 0.0])
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    degenerate = ~valid_boxes(b)
    with np.errstate(invalid="ignore"):
        outside = ((b < -BOUNDS_TOLERANCE) | (b > 1 + BOUNDS_TOLERANCE)).any(axis=1) & ~degenerate
        clipped = np.clip(b, 0.0, 1.0)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        inside = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
        fraction = np.where(degenerate, 0.0, 1.0 - inside / np.where(degenerate, 1.0, area))
    return degenerate, outside, np.clip(fraction, 0.0, 1.0)


def _degenerate_detail(box: np.ndarray, width: float, height: float) -> str:
    if not np.isfinite(box).all():
        return "non-finite coordinate"
    w, h = box[2] - box[0], box[3] - box[1]
    parts = []
    for name, size, px in (("width", w, width), ("height", h, height)):
        if size <= 0:
            word = "zero" if size == 0 else "negative"
            parts.append(f"{word} {name}" + (f" ({size * px:.1f} px)" if np.isfinite(px) else ""))
    return ", ".join(parts)


def _ios_from_crowd(c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU, IoS) from c1 = I/A1 and c2 = I/A2: IoU = I/(A1+A2-I) = c1 c2 / (c1 + c2 - c1 c2)."""
    den = c1 + c2 - c1 * c2
    iou = np.divide(c1 * c2, den, out=np.zeros_like(c1), where=den > 0)
    return iou, np.maximum(c1, c2)


def _mask_pair_overlaps(table: LabelTable, ri: np.ndarray, rj: np.ndarray):
    """Mask (IoU, IoS) of the given row pairs, each pair treated as its own one-to-one "sample"."""
    from iou_audit.geometry.masks import batched_cropped_mask_iou

    require_frame_sizes(table.take(np.union1d(ri, rj)), "mask IoU")
    sizes = np.stack([table.width, table.height], axis=1)[table.sample_index[ri]]
    one = np.arange(len(ri) + 1)
    crowd = np.ones(len(ri), dtype=bool)
    mi, mj = [table.masks[k] for k in ri], [table.masks[k] for k in rj]
    try:
        c1, _ = batched_cropped_mask_iou(mi, table.box[ri], one, mj, table.box[rj], one, sizes, crowd2=crowd)
    except ValueError as e:
        from iou_audit.overlaps import raise_for_bad_mask

        raise_for_bad_mask(table, e)  # raises naming the field, sample and label of a mask that is not 2-D
        raise
    c2, _ = batched_cropped_mask_iou(mj, table.box[rj], one, mi, table.box[ri], one, sizes, crowd2=crowd)
    return _ios_from_crowd(c1, c2)


def _polygon_pair_overlaps(table: LabelTable, ri: np.ndarray, rj: np.ndarray):
    """Polygon (IoU, IoS) of the given row pairs, each pair treated as its own one-to-one "sample"."""
    from iou_audit.geometry.polygons import batched_polygon_iou

    one = np.arange(len(ri) + 1)
    crowd = np.ones(len(ri), dtype=bool)
    pi, pj = [table.polygons[k] for k in ri], [table.polygons[k] for k in rj]
    c1, _ = batched_polygon_iou(pi, one, pj, one, crowd2=crowd)  # I / area(i)
    c2, _ = batched_polygon_iou(pj, one, pi, one, crowd2=crowd)  # I / area(j)
    return _ios_from_crowd(c1, c2)


def pair_overlaps(table: LabelTable, geometry: str = "auto"):
    """IoU and intersection-over-smaller of every same-sample label pair ``i < j``.

    Args:
        table: one label field (``iou_audit.table.LabelTable``).
        geometry: ``"boxes"``; ``"masks"`` (pairs where both labels have a mask use mask IoU);
            ``"polygons"`` (filled polylines use polygon IoU); ``"auto"`` picks masks when the table
            has masks, polygons for a Polylines field, else boxes.

    Returns:
        ``(rows_i, rows_j, iou, ios, used)``: global row indices, overlaps, and the geometry name
        used per pair (object array).

    Example:
        >>> from dataclasses import replace
        >>> t = replace(LabelTable.empty("gt", sample_ids=["s"]), offsets=np.array([0, 2]),
        ...             sample_index=np.array([0, 0]), label_id=np.array(["a", "b"], dtype=object),
        ...             label=np.array(["RBC", "RBC"], dtype=object), confidence=np.full(2, np.nan),
        ...             box=np.array([[0, 0, .2, .2], [0, 0, .2, .1]]), iscrowd=np.zeros(2, bool))
        >>> ri, rj, iou, ios, used = pair_overlaps(t)
        >>> ri.tolist(), rj.tolist(), iou.round(6).tolist(), ios.round(6).tolist(), used.tolist()
        ([0], [1], [0.5], [1.0], ['boxes'])
    """
    geometry = canonical_geometry(geometry)
    if geometry == "auto":
        has_masks = table.masks is not None and any(m is not None for m in table.masks)
        geometry = "masks" if has_masks else ("polygons" if table.label_type == "polylines" else "boxes")
    ri, rj, iou = batched_self_pairs(table.box, table.offsets, "iou")
    _, _, ios = batched_self_pairs(table.box, table.offsets, "ios")
    used = np.full(len(ri), "boxes", dtype=object)
    if geometry == "masks":
        if table.masks is None:
            raise ValueError(f"field {table.field!r} was read without masks; cannot use geometry='masks'")
        has = np.array([m is not None for m in table.masks], dtype=bool)
        sel = np.flatnonzero((iou > 0) & has[ri] & has[rj])
        if len(sel):
            iou[sel], ios[sel] = _mask_pair_overlaps(table, ri[sel], rj[sel])
            used[sel] = "masks"
    elif geometry == "polygons":
        if table.polygons is None:
            raise ValueError(f"field {table.field!r} is not a Polylines field; cannot use geometry='polygons'")
        filled = np.asarray(table.attributes.get("filled", np.ones(len(table), dtype=bool)), dtype=bool)
        sel = np.flatnonzero((iou > 0) & filled[ri] & filled[rj])
        if len(sel):
            iou[sel], ios[sel] = _polygon_pair_overlaps(table, ri[sel], rj[sel])
            used[sel] = "polygons"
    return ri, rj, iou, ios, used


def duplicate_findings(
    table: LabelTable,
    iou_thresh: float = DEFAULT_IOU_THRESH,
    conflict_iou: float = DEFAULT_CONFLICT_IOU,
    contain_ios: float = DEFAULT_CONTAIN_IOS,
    geometry: str = "auto",
    audit: str = AUDIT,
    max_iou_labels: str = "flagged",
) -> tuple[pd.DataFrame, dict[str, dict[str, object]]]:
    """The duplicate audit's compute core: findings and per-label attributes of one table.

    Returns:
        ``(findings, label_attributes)``: a DataFrame with ``FINDING_COLUMNS`` and
        ``{"max_iou": {label_id: float}, "dup_of": {label_id: other_label_id}}``; ``max_iou`` is the
        largest IoU with another label of the same class in the sample, given for the labels of a
        duplicate / class_conflict / contained pair (``max_iou_labels="flagged"``, the default: the
        write stays proportional to the findings) or for every label that overlaps another of its
        class (``"overlapping"``: useful to choose a threshold, about 4x more labels written on
        dense data); ``dup_of`` only for labels flagged ``duplicate``.

    Example:
        >>> from dataclasses import replace
        >>> t = replace(LabelTable.empty("gt", sample_ids=["s"]), offsets=np.array([0, 3]),
        ...             sample_index=np.zeros(3, int), label_id=np.array(["a", "b", "c"], dtype=object),
        ...             label=np.array(["RBC"] * 3, dtype=object), confidence=np.full(3, np.nan),
        ...             box=np.array([[0, 0, .2, .2], [0, 0, .2, .19], [.5, .5, .5, .7]]),
        ...             iscrowd=np.zeros(3, bool))
        >>> findings, attrs = duplicate_findings(t)
        >>> findings[["kind", "label_id", "other_label_id", "score"]].values.tolist()
        [['duplicate', 'b', 'a', 0.95], ['degenerate_box', 'c', None, 1.0]]
        >>> attrs
        {'max_iou': {'a': 0.95, 'b': 0.95}, 'dup_of': {'b': 'a'}}
    """
    if max_iou_labels not in MAX_IOU_LABELS:
        raise ValueError(f"max_iou_labels must be one of {MAX_IOU_LABELS}, got {max_iou_labels!r}")
    for name, value in (("iou_thresh", iou_thresh), ("conflict_iou", conflict_iou), ("contain_ios", contain_ios)):
        if not 0.0 < float(value) <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    ri, rj, iou, ios, used = pair_overlaps(table, geometry)
    labels = table.label
    same = labels[ri] == labels[rj]

    max_iou = np.zeros(len(table))
    np.maximum.at(max_iou, ri[same], iou[same])
    np.maximum.at(max_iou, rj[same], iou[same])

    frames = []
    # IoU computed in floating point can land an ulp below a threshold the user typed exactly
    # (boxes with IoU 0.5 give 0.49999999999999994): compare with a tolerance far below any
    # meaningful IoU difference so such pairs fall on the side the threshold says.
    dup = same & (iou >= iou_thresh - THRESH_TOLERANCE)
    conflict = ~same & (iou >= conflict_iou - THRESH_TOLERANCE)
    contained = same & ~dup & (ios >= contain_ios - THRESH_TOLERANCE)
    area = (table.box[:, 2] - table.box[:, 0]) * (table.box[:, 3] - table.box[:, 1])
    # contained: flag the smaller label of the pair, the other one is its container
    j_smaller = area[rj] <= area[ri]
    for kind, mask, score in (("duplicate", dup, iou), ("class_conflict", conflict, iou),
                              ("contained", contained, ios)):
        k = np.flatnonzero(mask)
        flagged = np.where(j_smaller[k], rj[k], ri[k]) if kind == "contained" else rj[k]
        other = np.where(j_smaller[k], ri[k], rj[k]) if kind == "contained" else ri[k]
        detail = [f"{labels[a]} vs {labels[b]}: IoU {v:.3f}, IoS {s:.3f} ({g})"
                  for a, b, v, s, g in zip(flagged, other, iou[k], ios[k], used[k])]
        frames.append(_rows(table, audit, kind, flagged, other, score[k], iou[k], detail))

    degenerate, outside, fraction = box_problems(table.box)
    rows = np.flatnonzero(degenerate)
    w, h = table.width[table.sample_index[rows]], table.height[table.sample_index[rows]]
    frames.append(_rows(table, audit, "degenerate_box", rows, None, np.ones(len(rows)), None,
                        [_degenerate_detail(table.box[r], a, b) for r, a, b in zip(rows, w, h)]))
    rows = np.flatnonzero(outside)
    frames.append(_rows(table, audit, "out_of_bounds", rows, None, fraction[rows], None,
                        [f"xyxy {np.round(table.box[r], 4).tolist()}, {fraction[r]:.1%} outside" for r in rows]))
    findings = pd.concat(frames, ignore_index=True)

    # dup_of: the earlier label with the highest IoU, for each label flagged duplicate
    k = np.flatnonzero(dup)
    best = k[np.lexsort((-iou[k], rj[k]))]
    first = np.r_[True, rj[best][1:] != rj[best][:-1]] if len(best) else np.zeros(0, bool)
    dup_of = dict(zip(table.label_id[rj[best][first]], table.label_id[ri[best][first]]))
    touched = max_iou > 0
    if max_iou_labels == "flagged":
        involved = np.zeros(len(table), dtype=bool)
        pair_kinds = dup | conflict | contained
        involved[ri[pair_kinds]] = True
        involved[rj[pair_kinds]] = True
        touched &= involved
    return findings, {"max_iou": dict(zip(table.label_id[touched], max_iou[touched].tolist())), "dup_of": dup_of}


def _rows(table, audit, kind, rows, other_rows, score, iou, detail) -> pd.DataFrame:
    n = len(rows)
    sample_id = table.sample_ids[table.sample_index[rows]] if n else np.zeros(0, dtype=object)
    return pd.DataFrame({
        "audit": np.full(n, audit, dtype=object),
        "kind": np.full(n, kind, dtype=object),
        "sample_id": sample_id,
        "field": np.full(n, table.field, dtype=object),
        "label_id": table.label_id[rows],
        "other_field": np.full(n, table.field if other_rows is not None else None, dtype=object),
        "other_label_id": table.label_id[other_rows] if other_rows is not None else np.full(n, None, dtype=object),
        "other_sample_id": sample_id if other_rows is not None else np.full(n, None, dtype=object),
        "label": table.label[rows],
        "score": np.asarray(score, dtype=np.float64),
        "iou": np.asarray(iou, dtype=np.float64) if iou is not None else np.full(n, np.nan),
        "detail": np.asarray(detail, dtype=object).reshape(n),
    }, columns=FINDING_COLUMNS)


@dataclass(frozen=True)
class DuplicatesConfig(AuditConfig):
    """Parameters of the duplicate audit (the defaults, the stored config, the CLI and the form)."""

    label_field: str = option(None, "Detections (boxes or instance masks) or Polylines (filled polygons) "
                              "field to audit", kind="field")
    iou_thresh: float = option(DEFAULT_IOU_THRESH, "same-class IoU at or above which the later label is a "
                               "duplicate", low=0.0, high=1.0, low_open=True, label="Duplicate IoU")
    conflict_iou: float = option(DEFAULT_CONFLICT_IOU, "different-class IoU at or above which a pair is a "
                                 "class conflict", low=0.0, high=1.0, low_open=True, label="Class-conflict IoU")
    contain_ios: float = option(DEFAULT_CONTAIN_IOS, "intersection over the smaller label at or above which "
                                "it is 'contained'", low=0.0, high=1.0, low_open=True, label="Containment")
    geometry: str = option("auto", "overlap geometry (auto: masks when present, polygons for Polylines, "
                           "else boxes)", choices=GEOMETRIES)
    max_iou_labels: str = option("flagged", "labels that get <key>_max_iou: those of flagged pairs, or "
                                 "every label overlapping another of its class", choices=MAX_IOU_LABELS)
    batch_size: int = option(2000, "samples read per batch (bounds memory; results do not depend on it)",
                             low=1, high=10**9, form=False)


def audit_duplicates(
    samples,
    label_field: str,
    iou_thresh: float = DEFAULT_IOU_THRESH,
    audit_key: str = AUDIT,
    conflict_iou: float = DEFAULT_CONFLICT_IOU,
    contain_ios: float = DEFAULT_CONTAIN_IOS,
    geometry: str = "auto",
    batch_size: int = 2000,
    save: bool = True,
    progress=None,
    max_iou_labels: str = "flagged",
    keep_parts=False,
):
    """Find duplicate, class-conflicting, contained, degenerate and out-of-bounds labels; save them.

    Reads ``label_field`` of ``samples`` (a dataset or view) in batches of ``batch_size`` samples
    (memory bounded by the batch), computes the findings on whole batches at once and, when
    ``save``, writes them under ``audit_key`` with ``iou_audit.results.save_audit``: label tags
    ``<audit_key>:<kind>``, label attributes ``<audit_key>_max_iou`` (labels overlapping another
    label of their class) and
    ``<audit_key>_dup_of`` (flagged duplicates), per-sample counts, a saved view per kind and a
    custom run. Original labels are not modified.

    Args:
        samples: a FiftyOne dataset or view.
        label_field: a Detections (boxes or instance masks) or Polylines field.
        iou_thresh: same-class IoU at or above which the later label is a duplicate (see the module
            docstring for why 0.75).
        audit_key: name of the run; re-running with the same key replaces it.
        conflict_iou: different-class IoU at or above which a pair is a class conflict.
        contain_ios: same-class intersection-over-smaller at or above which the smaller label is
            ``contained`` (when its IoU is below ``iou_thresh``).
        geometry: ``"auto"``, ``"boxes"``, ``"masks"`` or ``"polygons"`` (see :func:`pair_overlaps`).
        batch_size: samples read per batch.
        save: write the results into the dataset (False: compute only).
        progress: None, True (a tqdm bar), a callable ``progress(fraction, label)`` or an operator
            context (see ``iou_audit.progress``).
        max_iou_labels: ``"flagged"`` writes ``<audit_key>_max_iou`` on the labels of flagged pairs,
            ``"overlapping"`` on every label overlapping another of its class.
        keep_parts: True (or a number of samples per part) keeps the run's parts so
            ``iou_audit.rerun_changed`` can later re-run only the changed samples (same stored run;
            see ``iou_audit.shards.plain``).

    Returns:
        an ``iou_audit.results.AuditResult`` (findings, per-kind counts in ``metrics``).

    Example:
        >>> result = audit_duplicates(dataset, "ground_truth", audit_key="dups")   # doctest: +SKIP
        >>> result.summary()                                                        # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    config = DuplicatesConfig(label_field=label_field, iou_thresh=iou_thresh, conflict_iou=conflict_iou,
                              contain_ios=contain_ios, geometry=canonical_geometry(geometry),
                              max_iou_labels=max_iou_labels, batch_size=batch_size)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress,
                     keep_parts=keep_parts)


def _read_and_compute(samples, config: DuplicatesConfig, report) -> AuditOutput:
    """Read the field batch by batch and run :func:`duplicate_findings` on each batch."""
    from iou_audit.results import concat_findings
    from iou_audit.table import ReadLayout, check_label_field, iter_label_tables

    field = config.label_field
    _, label_type = check_label_field(samples, field)
    attributes = ("filled",) if label_type == "polylines" else ()
    masks = False if config.geometry in ("boxes", "polygons") else "auto"
    frames, label_attrs, layout = [], {"max_iou": {}, "dup_of": {}}, ReadLayout()
    total, done, n_labels = len(samples), 0, 0
    for table in iter_label_tables(samples, field, batch_size=config.batch_size, attributes=attributes,
                                   masks=masks):
        findings, attrs = duplicate_findings(table, config.iou_thresh, config.conflict_iou, config.contain_ios,
                                             config.geometry, max_iou_labels=config.max_iou_labels)
        frames.append(findings)
        for name, values in attrs.items():
            label_attrs[name].update(values)
        # where the labels to write are, so the write need not look for them again
        touched = set(findings["label_id"]) | set(findings["other_label_id"]) | set(attrs["max_iou"])
        rows = np.fromiter((lid in touched for lid in table.label_id.tolist()), bool, len(table))
        layout.add(field, table.label_id[rows].tolist(), table.sample_ids[table.sample_index[rows]].tolist())
        done += table.num_samples
        n_labels += len(table)
        report.report(0.9 * done / max(total, 1), f"{done}/{total} samples")
    findings = concat_findings(frames)
    metrics = kind_counts(findings, KINDS)
    metrics["n_labels"] = n_labels
    return AuditOutput(findings, label_values={field: label_attrs}, metrics=metrics, layout=layout)
