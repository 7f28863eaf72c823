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
fields are built per image in the threads as the documents FiftyOne stores
(``iou_audit.table.raw_labels``), held until the save (masks compressed) and written in one bulk
(one update per sample); they are in the run's manifest, so ``delete_audit`` removes them.

Speed: masks are read batch by batch (the next batch decoding while this one is scored); the
per-image pixel work (confusion counts, regions, consensus, compression) runs in ``workers``
threads (compiled loops, OpenCV and libdeflate release the GIL); scores and findings are computed
for a whole batch at once on the images' confusion matrices stacked over their own values.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
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
    stack_value_confusions,
    value_confusion_matrix,
)
from iou_audit.results import AuditResult, make_findings
from iou_audit.table.npy_codec import stored_array_header
from iou_audit.table.raw_labels import (
    RawLabelField,
    detection_doc,
    detections_doc,
    heatmap_doc,
    segmentation_doc,
)
from iou_audit.table.segmentation import RESIZES, int_to_hex, iter_segmentation_batches, mask_targets, split_even

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
    per_image = {name: [] for name in _image_columns(fields, pairs, config)}
    frames = []
    regions, consensus, heatmaps = (RawLabelField("Detections"), RawLabelField("Segmentation"),
                                    RawLabelField("Heatmap"))
    skipped = 0
    n_samples = max(1, len(samples))
    done = 0
    keep = bool(config.boundary or config.regions_field or config.consensus_field or config.heatmap_field)
    # the confusion counts run in the reader's decoding threads, on each image's masks as soon as
    # they are decoded (compiled loops without the GIL; the masks still in cache); the masks are
    # kept only for the pixel work that needs them (boundary IoU, the new fields), in this pool
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for batch in iter_segmentation_batches(samples, fields, config.batch_size, config.workers, config.resize,
                                               per_sample=partial(_pair_confusions, pairs=pairs), keep_masks=keep):
            done += len(batch.sample_ids)
            rgb |= batch.rgb
            report.report(0.85 * done / n_samples, "comparing masks")
            full = []
            for i, sid in enumerate(batch.sample_ids):
                have = [p[i] for p in batch.present]
                if all(have):
                    full.append(i)
                    continue
                skipped += 1
                if any(have):
                    frames.append({"kind": "missing_mask", "sample_id": sid, "field": fields[have.index(True)],
                                   "other_field": fields[have.index(False)], "score": 1.0,
                                   "detail": "mask in " + ", ".join(repr(f) for f, h in zip(fields, have) if h)
                                             + "; none in " + ", ".join(repr(f) for f, h in zip(fields, have)
                                                                        if not h)})
            if not full:
                continue
            sids = [batch.sample_ids[i] for i in full]
            local = [batch.results[i] for i in full]
            _score_batch(sids, local, fields, pairs, classes, total, images_with, per_image, frames, names, rgb,
                         config)
            if not keep:
                continue
            raws = [[m[i] for m in batch.masks] for i in full]
            if config.boundary:
                per_image["boundary_iou"].extend(b for part in pool.map(
                    lambda part: [float(np.mean([class_boundary_iou(raw[a], raw[b], config.boundary_dilation)
                                                 for a, b in pairs])) for raw in part],
                    split_even(raws, config.workers)) for b in part)
            if config.regions_field or config.consensus_field or config.heatmap_field:
                _new_field_values(pool, sids, raws, [batch.stored[0][i] for i in full], fields, names, rgb, config,
                                  regions, consensus, heatmaps)
    report.report(0.88, "summarising")
    out = _summarise(fields, pairs, classes, names, rgb, total, images_with, per_image, frames, skipped, regions,
                     consensus, config)
    if config.heatmap_field:
        out.new_fields[config.heatmap_field] = heatmaps
    return out


def _image_columns(fields, pairs, config) -> list[str]:
    scores = ["miou", "pixel_accuracy", "fwiou", "alpha"] + (["boundary_iou"] if config.boundary else [])
    return ["sample_id", *scores] + [f"miou:{fields[a]}:{fields[b]}" for a, b in pairs]


def _pair_confusions(raw: list, pairs: list) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """One image's ``(values, C)`` per field pair (:func:`value_confusion_matrix`); None unless every
    field has a mask."""
    if any(m is None for m in raw):
        return None
    return [value_confusion_matrix(raw[a], raw[b]) for a, b in pairs]


def _score_batch(sids, local, fields, pairs, classes, total, images_with, per_image, frames, names, rgb,
                 config) -> None:
    """Scores, findings and dataset totals of one batch of images, vectorized over the batch: the
    images' confusion matrices stacked over each image's own values (padded with absent classes)."""
    values, stack = stack_value_confusions(local)  # (n, V), (P, n, V, V)
    n, width = values.shape
    # global class ids in first-seen order (image by image, pair by pair) as the tables list them
    for vc in local:
        for v, _ in vc:
            classes.add(v)
    k = len(classes.values)
    slot = np.where(values >= 0, 0, k)  # padding -> a spare class k (dropped below)
    gid = np.array([classes.index[v] for v in values[values >= 0].tolist()], np.int64)
    slot[values >= 0] = gid
    miou, acc, fw = mean_iou(stack), pixel_accuracy(stack), frequency_weighted_iou(stack)  # (P, n) each
    rows_px, cols_px = stack.sum(axis=-1), stack.sum(axis=-2)  # (P, n, V)
    in_a, in_b = rows_px >= config.min_class_pixels, cols_px >= config.min_class_pixels
    missing = [(in_a & (cols_px == 0)), (in_b & (rows_px == 0))]  # present in one field, absent in the other
    low = miou < config.low_miou
    cells = (slot[:, :, None] * (k + 1) + slot[:, None, :]).ravel()
    for pi, p in enumerate(pairs):
        total[p] = _grow(total[p], k)
        grown = np.zeros((k + 1) ** 2, np.int64)
        np.add.at(grown, cells, stack[pi].ravel())
        total[p] += grown.reshape(k + 1, k + 1)[:k, :k]
        for side, present in enumerate((in_a, in_b)):
            counts = np.pad(images_with[p][side], (0, k - len(images_with[p][side])))
            counts += np.bincount(slot[present[pi]], minlength=k + 1)[:k]
            images_with[p][side] = counts
    # findings in image order, pair by pair: low mIoU, then classes missing from the second, the first
    flagged = np.flatnonzero(low.any(axis=0) | missing[0].any(axis=(0, 2)) | missing[1].any(axis=(0, 2)))
    for i in flagged.tolist():
        sid = sids[i]
        for pi, (a, b) in enumerate(pairs):
            fa, fb = fields[a], fields[b]
            if low[pi, i]:
                m = float(miou[pi, i])
                frames.append({"kind": "low_miou", "sample_id": sid, "field": fa, "other_field": fb,
                               "score": 1.0 - m, "iou": m, "detail": f"mIoU {m:.3f}"})
            for side, (f_have, f_lack, counts) in enumerate(((fa, fb, rows_px), (fb, fa, cols_px))):
                for cls in np.flatnonzero(missing[side][pi, i]).tolist():
                    label = _name(int(values[i, cls]), names, rgb)
                    frames.append({"kind": "class_missing", "sample_id": sid, "field": f_have,
                                   "other_field": f_lack, "label": label, "score": 1.0, "iou": 0.0,
                                   "detail": f"{label!r}: {int(counts[pi, i, cls])} px in {f_have!r}, none in "
                                             f"{f_lack!r}"})
    if len(fields) == 2:
        alpha = nominal_alpha(coincidence_matrix([stack[0]], 2))
    else:
        alpha = nominal_alpha(coincidence_matrix(list(stack), len(fields)))
    per_image["sample_id"].extend(sids)
    per_image["miou"].extend(np.mean(miou, axis=0).tolist())
    per_image["pixel_accuracy"].extend(np.mean(acc, axis=0).tolist())
    per_image["fwiou"].extend(np.mean(fw, axis=0).tolist())
    per_image["alpha"].extend(np.asarray(alpha, np.float64).reshape(n).tolist())
    for pi, (a, b) in enumerate(pairs):
        per_image[f"miou:{fields[a]}:{fields[b]}"].extend(miou[pi].tolist())


def _new_field_values(pool, sids, raws, stored_first, fields, names, rgb, config, regions, consensus, heatmaps
                      ) -> None:
    """The regions, consensus and heatmap documents of a batch, image by image in the threads
    (``stored_first``: the first field's stored mask bytes per image, None for a file)."""
    work = partial(_images_new_fields, n_fields=len(fields), names=names, rgb=rgb, config=config)
    done = [out for part in pool.map(work, split_even(list(zip(raws, stored_first)), config.workers))
            for out in part]
    for sid, (dets, voted, heat) in zip(sids, done):
        if dets is not None:
            regions.docs[sid] = dets
        if voted is not None:
            consensus.docs[sid] = voted
        if heat is not None:
            heatmaps.docs[sid] = heat


def _images_new_fields(items, **kwargs) -> list[tuple]:
    return [_image_new_fields(raw, stored, **kwargs) for raw, stored in items]


def _image_new_fields(raw, stored_first, n_fields, names, rgb, config) -> tuple[dict | None, dict | None, dict | None]:
    """One image's stored documents (``iou_audit.table.raw_labels``) of the requested new fields.
    With two fields the consensus is the first field's map (its tie rule), so its stored bytes are
    reused when they hold the array the consensus would store (same dtype and shape)."""
    dets = voted = heat = None
    if config.regions_field:
        dets = detections_doc([
            detection_doc(f"{_name(g['value_a'], names, rgb)} vs {_name(g['value_b'], names, rgb)}", g["box"],
                          g["mask"], pixels=g["pixels"])
            for g in disagreement_regions(raw[0], raw[1], config.min_region_pixels)])
    if n_fields == 2 and (config.consensus_field or config.heatmap_field):
        if config.consensus_field:
            if stored_first is not None and _stored_as(stored_first, raw[0], rgb):
                voted = segmentation_doc(None, stored=stored_first)
            else:
                voted = segmentation_doc(_storable(raw[0], rgb))
        if config.heatmap_field:  # support 1 where the two differ: half the fields not with the majority
            heat = heatmap_doc((raw[0] != raw[1]).view(np.uint8) * _shades(2)[1], (0, 255))
    elif config.consensus_field or config.heatmap_field:
        winner, support = majority_consensus(raw)
        if config.consensus_field:
            voted = segmentation_doc(_storable(winner, rgb))
        if config.heatmap_field:
            heat = heatmap_doc(_shades(n_fields)[support], (0, 255))
    return dets, voted, heat


def _name(value: int, names: dict, rgb: bool) -> str:
    return names.get(value, int_to_hex(value) if rgb else str(value))


def _shades(n_fields: int) -> np.ndarray:
    """Heatmap value per support count ``0 .. n_fields``: 255 x the share of fields not with the
    majority (0: every field agrees)."""
    return np.round(255 * (1.0 - np.arange(n_fields + 1) / n_fields)).astype(np.uint8)


def _stored_as(stored: bytes, mask: np.ndarray, rgb: bool) -> bool:
    """Whether ``stored`` (a Segmentation's stored mask of ``mask``'s values) holds exactly the array
    :func:`_storable` would store for ``mask``: same dtype and shape, 2-D integer values."""
    dtype, shape, _ = stored_array_header(stored)
    if rgb or len(shape) != 2 or tuple(shape) != mask.shape:
        return False
    if dtype == np.uint8:
        return True
    return dtype == np.uint16 and mask.size > 0 and int(mask.max()) >= 256


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
               "n_regions": sum(len(d["detections"]) for d in regions.docs.values()), **kind_counts(findings, KINDS)}
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
