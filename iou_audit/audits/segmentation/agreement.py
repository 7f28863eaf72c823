"""Agreement between two or more Segmentation fields (annotators, or a model against the labels).

Per pair of fields and per image: the class confusion matrix (rows: the earlier field in
``fields``), per-class IoU, mIoU over the classes present in either map, frequency-weighted IoU
(weights: the earlier field's class frequencies), pixel accuracy; per image and over the dataset,
Krippendorff's nominal alpha over pixels (every field a coder). Scores: :mod:`iou_audit.geometry.semantic`;
reading: :mod:`iou_audit.table.segmentation`.

Only samples where every field has a mask are compared; the others are counted (``n_skipped``)
and, when some fields have a mask and others not, reported as ``missing_mask``.

Findings (sample-level: ``label_id`` is empty; ``field``/``other_field`` name the pair):
- ``low_miou``: an image whose mIoU for a pair is below ``low_miou`` (score 1 - mIoU);
- ``class_missing``: a class with at least ``min_class_pixels`` pixels in one field of a pair and
  none in the other (score 1: its IoU is 0; ``field`` is the one that has it);
- ``missing_mask``: some fields have a mask for the sample and others do not (score 1).

Writes (when ``save``): per sample ``<key>_miou``, ``<key>_pixel_accuracy``, ``<key>_fwiou``
(mean over field pairs), ``<key>_alpha`` and, with ``boundary``, ``<key>_boundary_iou`` (per pair
the mean over the classes present in either map of the classes' Boundary IoU, Cheng et al. 2021;
mean over pairs); with ``regions_field``, a new Detections field of the
connected regions (>= ``min_region_pixels``) where the first two fields disagree, each with its
instance mask, ``label`` "<class in field 1> vs <class in field 2>" (the region's most frequent
pair) and a ``pixels`` attribute; with ``consensus_field``, a new Segmentation field with the
pixel-wise majority (tie: the earliest field's value); with ``heatmap_field``, a new Heatmap field
(uint8, range [0, 255]) of 255 x the share of fields that do not give the majority value. The new
fields are in the run's manifest,
so ``delete_audit`` removes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, kind_counts, option
from iou_audit.audits.segmentation.regions import class_boundary_iou, disagreement_regions, majority_consensus
from iou_audit.geometry.semantic import (
    class_iou,
    coincidence_matrix,
    frequency_weighted_iou,
    mean_iou,
    nominal_alpha,
    pixel_accuracy,
    value_confusion_matrix,
)
from iou_audit.results import AuditResult, make_findings
from iou_audit.table.segmentation import RESIZES, int_to_hex, iter_segmentation_batches, mask_targets

AUDIT = "segmentation_agreement"
KINDS = ("low_miou", "class_missing", "missing_mask")


@dataclass(frozen=True)
class SegmentationAgreementConfig(AuditConfig):
    """Parameters of the segmentation agreement audit."""

    fields: tuple = option((), "two or more Segmentation fields (annotators, or labels then predictions)",
                           kind="fields")
    low_miou: float = option(0.5, "images whose mIoU is below this are a finding", low=0.0, high=1.0)
    min_class_pixels: int = option(1, "a class is present in a map from this many pixels", low=1)
    regions_field: str | None = option(None, "write the regions where the first two fields disagree to this new "
                                       "Detections field", kind="new_field")
    min_region_pixels: int = option(64, "smallest region of disagreement written", low=1)
    consensus_field: str | None = option(None, "write the pixel-wise majority to this new Segmentation field",
                                         kind="new_field")
    heatmap_field: str | None = option(None, "write a per-pixel disagreement heatmap (share of fields not with the "
                                       "majority) to this new Heatmap field", kind="new_field")
    boundary: bool = option(False, "also compute Boundary IoU per image (mean over classes present; slower)")
    boundary_dilation: float = option(0.02, "Boundary IoU band width as a fraction of the image diagonal", low=0.0,
                                      high=1.0, low_open=True)
    resize: str = option("error", "masks of different sizes: an error, or nearest-neighbour resized to the first "
                         "field's size (as evaluate_segmentations)", choices=RESIZES)
    batch_size: int = option(128, "samples read per batch (bounds memory)", low=1)
    workers: int = option(4, "threads decoding mask_path files", low=1)

    def validate(self) -> None:
        if len(self.fields) < 2 or len(set(self.fields)) != len(self.fields) or not all(
                isinstance(f, str) and f for f in self.fields):
            raise ValueError(f"fields must be two or more distinct field names, got {list(self.fields)!r}")
        new = [n for n in (self.regions_field, self.consensus_field, self.heatmap_field) if n]
        if set(new) & set(self.fields) or len(set(new)) != len(new):
            raise ValueError(f"regions_field, consensus_field and heatmap_field must be new, distinct names, got {new}")


def audit_segmentation_agreement(samples, fields, audit_key: str = "segmentation_agreement", save: bool = True,
                                 progress=None, **params) -> AuditResult:
    """Agreement between Segmentation fields (see the module docstring).

    Returns:
        AuditResult: ``metrics`` ``miou``, ``fwiou``, ``pixel_accuracy`` (of the dataset's summed
        confusion, mean over field pairs), ``mean_image_miou``, ``alpha`` (pixels of every compared
        image, all fields as coders), ``n_images``, ``n_skipped``, ``n_regions``, ``n_<kind>``;
        ``tables``: ``per_class`` (per pair and class: pixels in each field, IoU, images with the
        class in each field), ``confusion`` (per pair, the non-zero cells of the class confusion
        matrix), ``per_field_pair`` and ``per_image``.

    Example:
        >>> r = audit_segmentation_agreement(ds, ["seg_r1", "seg_r2"], regions_field="seg_disagree")  # doctest: +SKIP
        >>> r.metrics["miou"], r.tables["per_class"]                                               # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    config = SegmentationAgreementConfig(fields=tuple(fields), **params)
    return run_audit(AUDIT, samples, config, _read_and_compute, audit_key, save=save, progress=progress)


class _Classes:
    """The growing list of pixel values seen, as global class indices."""

    def __init__(self):
        self.values: list[int] = []
        self.index: dict[int, int] = {}

    def add(self, values: np.ndarray) -> np.ndarray:
        for v in values.tolist():
            if v not in self.index:
                self.index[v] = len(self.values)
                self.values.append(v)
        return np.array([self.index[v] for v in values.tolist()], dtype=np.int64)


def _grow(matrix: np.ndarray, k: int) -> np.ndarray:
    if matrix.shape[0] == k:
        return matrix
    out = np.zeros((k, k), matrix.dtype)
    out[:matrix.shape[0], :matrix.shape[1]] = matrix
    return out


def _read_and_compute(samples, config: SegmentationAgreementConfig, report) -> AuditOutput:
    import fiftyone as fo

    fields = list(config.fields)
    pairs = list(combinations(range(len(fields)), 2))
    names: dict[int, str] = {}
    rgb = False
    for f in reversed(fields):  # the first field's target names win
        targets, is_rgb = mask_targets(samples, f)
        names.update(targets)
        rgb |= is_rgb
    classes = _Classes()
    total = {p: np.zeros((0, 0), np.int64) for p in pairs}
    images_with = {p: [np.zeros(0, np.int64), np.zeros(0, np.int64)] for p in pairs}
    per_image, frames = [], []
    regions, consensus, heatmaps = {}, {}, {}
    skipped = 0
    n_samples = max(1, len(samples))
    done = 0
    for batch in iter_segmentation_batches(samples, fields, config.batch_size, config.workers, config.resize):
        done += len(batch.sample_ids)
        rgb |= batch.rgb
        report.report(0.85 * done / n_samples, "comparing masks")
        full = []
        for i, sid in enumerate(batch.sample_ids):
            have = [m[i] is not None for m in batch.masks]
            if all(have):
                full.append(i)
                continue
            skipped += 1
            if any(have):
                frames.append({"kind": "missing_mask", "sample_id": sid, "field": fields[have.index(True)],
                               "other_field": fields[have.index(False)], "score": 1.0,
                               "detail": "mask in " + ", ".join(repr(f) for f, h in zip(fields, have) if h)
                                         + "; none in " + ", ".join(repr(f) for f, h in zip(fields, have) if not h)})
        if not full:
            continue
        for i in full:
            sid = batch.sample_ids[i]
            raw = [m[i] for m in batch.masks]
            row = {"sample_id": sid}
            mious, accs, fws, local = [], [], [], []
            for p in pairs:
                values, c = value_confusion_matrix(raw[p[0]], raw[p[1]])
                g = classes.add(values)
                local.append((values, c))
                fa, fb = fields[p[0]], fields[p[1]]
                miou, acc, fw = float(mean_iou(c)), float(pixel_accuracy(c)), float(frequency_weighted_iou(c))
                mious.append(miou)
                accs.append(acc)
                fws.append(fw)
                row[f"miou:{fa}:{fb}"] = miou
                if miou < config.low_miou:
                    frames.append({"kind": "low_miou", "sample_id": sid, "field": fa, "other_field": fb,
                                   "score": 1.0 - miou, "iou": miou, "detail": f"mIoU {miou:.3f}"})
                rows_px, cols_px = c.sum(axis=1), c.sum(axis=0)
                in_a, in_b = rows_px >= config.min_class_pixels, cols_px >= config.min_class_pixels
                k = len(classes.values)
                total[p] = _grow(total[p], k)
                for side in (0, 1):
                    images_with[p][side] = np.pad(images_with[p][side], (0, k - len(images_with[p][side])))
                total[p][np.ix_(g, g)] += c
                images_with[p][0][g] += in_a
                images_with[p][1][g] += in_b
                for have, lack, counts, f_have, f_lack in ((in_a, cols_px == 0, rows_px, fa, fb),
                                                           (in_b, rows_px == 0, cols_px, fb, fa)):
                    for cls in np.flatnonzero(have & lack):
                        label = _name(int(values[cls]), names, rgb)
                        frames.append({"kind": "class_missing", "sample_id": sid, "field": f_have,
                                       "other_field": f_lack, "label": label, "score": 1.0, "iou": 0.0,
                                       "detail": f"{label!r}: {int(counts[cls])} px in {f_have!r}, none in "
                                                 f"{f_lack!r}"})
            row.update(miou=float(np.mean(mious)), pixel_accuracy=float(np.mean(accs)),
                       fwiou=float(np.mean(fws)), alpha=_image_alpha(local, len(fields)))
            if config.boundary:
                row["boundary_iou"] = float(np.mean([class_boundary_iou(raw[a], raw[b], config.boundary_dilation)
                                                     for a, b in pairs]))
            per_image.append(row)
            if config.regions_field:
                dets = [fo.Detection(label=f"{_name(g['value_a'], names, rgb)} vs {_name(g['value_b'], names, rgb)}",
                                     bounding_box=g["box"], mask=g["mask"], pixels=g["pixels"])
                        for g in disagreement_regions(raw[0], raw[1], config.min_region_pixels)]
                regions[sid] = fo.Detections(detections=dets)
            if config.consensus_field or config.heatmap_field:
                voted, support = majority_consensus(raw)
                if config.consensus_field:
                    consensus[sid] = fo.Segmentation(mask=_storable(voted, rgb))
                if config.heatmap_field:
                    share = 1.0 - support / len(fields)  # 0: every field agrees
                    heatmaps[sid] = fo.Heatmap(map=np.round(255 * share).astype(np.uint8), range=[0, 255])
    report.report(0.88, "summarising")
    out = _summarise(fields, pairs, classes, names, rgb, total, images_with, per_image, frames, skipped, regions,
                     consensus, config)
    if config.heatmap_field:
        out.new_fields[config.heatmap_field] = heatmaps
    return out


def _image_alpha(local: list, num_fields: int) -> float:
    """Pixel alpha of one image from its per-pair ``(values, confusion)`` (each over its own values)."""
    if num_fields == 2:
        return nominal_alpha(coincidence_matrix([local[0][1]], 2))
    values = np.unique(np.concatenate([v for v, _ in local]))
    mats = []
    for v, c in local:
        g = np.searchsorted(values, v)
        m = np.zeros((len(values), len(values)), np.int64)
        m[np.ix_(g, g)] = c
        mats.append(m)
    return nominal_alpha(coincidence_matrix(mats, num_fields))


def _name(value: int, names: dict, rgb: bool) -> str:
    return names.get(value, int_to_hex(value) if rgb else str(value))


def _storable(mask: np.ndarray, rgb: bool) -> np.ndarray:
    """Pixel values as FiftyOne stores a mask: RGB when the fields are RGB (values are 0xRRGGBB),
    else uint8/uint16 integers (RGB beyond 65,535)."""
    if not rgb and mask.min() >= 0 and mask.max() < 256:
        return mask.astype(np.uint8)
    if not rgb and mask.min() >= 0 and mask.max() < 65536:
        return mask.astype(np.uint16)
    return np.stack([(mask >> 16) & 255, (mask >> 8) & 255, mask & 255], axis=-1).astype(np.uint8)


def _summarise(fields, pairs, classes, names, rgb, total, images_with, per_image, frames, skipped, regions, consensus,
               config) -> AuditOutput:
    labels = [_name(v, names, rgb) for v in classes.values]
    class_rows, conf_rows, pair_rows = [], [], []
    for p in pairs:
        fa, fb = fields[p[0]], fields[p[1]]
        c = total[p]
        iou = class_iou(c) if c.size else np.zeros(0)
        for cls, label in enumerate(labels):
            class_rows.append({"field_a": fa, "field_b": fb, "class": label, "value": classes.values[cls],
                               "pixels_a": int(c[cls].sum()), "pixels_b": int(c[:, cls].sum()),
                               "iou": float(iou[cls]), "images_a": int(images_with[p][0][cls]),
                               "images_b": int(images_with[p][1][cls])})
        for i, j in zip(*np.nonzero(c)):
            conf_rows.append({"field_a": fa, "field_b": fb, "class_a": labels[i], "class_b": labels[j],
                              "pixels": int(c[i, j])})
        pair_rows.append({"field_a": fa, "field_b": fb, "miou": float(mean_iou(c)) if c.size else float("nan"),
                          "fwiou": float(frequency_weighted_iou(c)) if c.size else float("nan"),
                          "pixel_accuracy": float(pixel_accuracy(c)) if c.size else float("nan")})
    per_pair = pd.DataFrame(pair_rows)
    scores = ["miou", "pixel_accuracy", "fwiou", "alpha"] + (["boundary_iou"] if config.boundary else [])
    image_frame = pd.DataFrame(per_image, columns=["sample_id", *scores]
                               + [f"miou:{fields[a]}:{fields[b]}" for a, b in pairs])
    findings = make_findings(pd.DataFrame(frames) if frames else None, audit=AUDIT)
    findings = findings.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    k = len(classes.values)
    alpha = (nominal_alpha(coincidence_matrix([_grow(total[p], k) for p in pairs], len(fields)))
             if k else float("nan"))
    metrics = {"miou": float(per_pair["miou"].mean()), "fwiou": float(per_pair["fwiou"].mean()),
               "pixel_accuracy": float(per_pair["pixel_accuracy"].mean()),
               "mean_image_miou": float(image_frame["miou"].mean()) if len(image_frame) else float("nan"),
               "alpha": alpha,
               **({"boundary_iou": float(image_frame["boundary_iou"].mean()) if len(image_frame) else float("nan")}
                  if config.boundary else {}),
               "n_images": len(image_frame), "n_skipped": skipped,
               "n_regions": sum(len(d.detections) for d in regions.values()), **kind_counts(findings, KINDS)}
    sample_values = {name: dict(zip(image_frame["sample_id"], image_frame[name].tolist()))
                     for name in scores} if len(image_frame) else {}
    new_fields = {}
    if config.regions_field:
        new_fields[config.regions_field] = regions
    if config.consensus_field:
        new_fields[config.consensus_field] = consensus
    return AuditOutput(findings, sample_values=sample_values, new_fields=new_fields, metrics=metrics,
                       tables={"per_class": pd.DataFrame(class_rows), "confusion": pd.DataFrame(conf_rows),
                               "per_field_pair": per_pair, "per_image": image_frame})
