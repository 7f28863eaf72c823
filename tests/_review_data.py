"""A small audited dataset for the review panel and evidence tests (imported by both).

Real BCCD images (the split audit hashes them) with synthetic labels on a 4 x 4 grid of cells:
boxes of different cells never overlap, so every matching (Hungarian, greedy, FiftyOne's) pairs the
same labels and an independent oracle can recompute each pair by hand. Fields:
- ``ann_a`` (clean labels), ``ann_b``, ``ann_c``: three annotators (drops, extras, class changes,
  boxes shifted to IoU ~0.67), audited as ``ag``;
- ``ground_truth`` = ``ann_a`` plus near-copies of some boxes (duplicates), audited as ``dups``;
- ``preds``: a detector (drops, class swaps, spurious boxes, duplicates) against ``ann_a``, audited
  as ``pr``; FiftyOne's ``evaluate_detections`` (keys ``fo_cm``: class-blind, ``fo_cw``: class-wise)
  ran first, as oracles;
- ``split``: train/val/test with one exact copy of an image in another split, audited as ``sp``.
"""
import shutil

import fiftyone as fo
import numpy as np
from fiftyone.utils.iou import compute_ious

CLASSES = ["RBC", "WBC", "Platelets"]
SIZE = 0.15


def _box(cell, dx=0.0, dy=0.0):
    r, c = divmod(int(cell), 4)
    return [0.25 * c + 0.05 + dx, 0.25 * r + 0.05 + dy, SIZE, SIZE]


def build(shared_data, tmp_path, n_images=10):
    from iou_audit.audits.agreement import audit_agreement
    from iou_audit.audits.duplicates import audit_duplicates
    from iou_audit.audits.predictions import audit_predictions
    from iou_audit.audits.splits import audit_splits

    src = sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[40:40 + n_images]
    paths = [str(shutil.copy(p, tmp_path / f"img{k}.jpg")) for k, p in enumerate(src)]
    paths.append(str(shutil.copy(paths[0], tmp_path / "copy_of_img0.jpg")))
    splits = (["train", "val", "test"] * n_images)[:n_images] + ["test"]  # the copy of img0 (train) in test
    rng = np.random.default_rng(7)
    samples = []
    for k, path in enumerate(paths):
        cells = rng.choice(16, size=7, replace=False)
        own, empty = cells[:5], list(cells[5:])
        labels = rng.choice(CLASSES, size=len(own))
        a = [fo.Detection(label=str(lab), bounding_box=_box(c)) for c, lab in zip(own, labels)]
        annotators = {"ann_a": a}
        for name in ("ann_b", "ann_c"):
            dets = []
            for c, lab in zip(own, labels):
                u = rng.uniform()
                if u < 0.12:
                    continue  # missed
                if u < 0.24:
                    lab = str(rng.choice([x for x in CLASSES if x != lab]))
                shift = 0.03 if rng.uniform() < 0.2 else 0.004  # 0.03 of a 0.15 box: IoU ~0.67
                dets.append(fo.Detection(label=str(lab), bounding_box=_box(c, shift, 0.0)))
            if rng.uniform() < 0.4:
                dets.append(fo.Detection(label=str(rng.choice(CLASSES)), bounding_box=_box(empty[0])))
            annotators[name] = dets
        gt = [fo.Detection(label=d.label, bounding_box=list(d.bounding_box)) for d in a]  # own ids
        if k % 3 == 0:
            x, y, w, h = gt[0].bounding_box
            gt.append(fo.Detection(label=gt[0].label, bounding_box=[x + 0.004, y, w, h]))
        preds = []
        for c, lab in zip(own, labels):
            u = rng.uniform()
            if u < 0.1:
                continue
            if u < 0.2:
                lab = str(rng.choice([x for x in CLASSES if x != lab]))
            conf = float(rng.uniform(0.3, 1.0))
            preds.append(fo.Detection(label=str(lab), bounding_box=_box(c, 0.005, 0.005), confidence=conf))
            if rng.uniform() < 0.1:
                preds.append(fo.Detection(label=str(lab), bounding_box=_box(c, 0.01, 0.0), confidence=conf / 2))
        if rng.uniform() < 0.5:
            preds.append(fo.Detection(label=str(rng.choice(CLASSES)), bounding_box=_box(empty[1]),
                                      confidence=float(rng.uniform(0.3, 1.0))))
        samples.append(fo.Sample(filepath=path, split=splits[k], ground_truth=fo.Detections(detections=gt),
                                 preds=fo.Detections(detections=preds),
                                 **{n: fo.Detections(detections=d) for n, d in annotators.items()}))
    ds = fo.Dataset()
    ds.add_samples(samples)
    ds.compute_metadata()
    # the oracles first, so their writes come before the audits' (staleness)
    ds.evaluate_detections("preds", gt_field="ann_a", eval_key="fo_cm", classwise=False, iou=0.5)
    ds.evaluate_detections("preds", gt_field="ann_a", eval_key="fo_cw", classwise=True, iou=0.5)
    audit_duplicates(ds, "ground_truth", audit_key="dups")
    audit_agreement(ds, ["ann_a", "ann_b", "ann_c"], audit_key="ag")
    audit_predictions(ds, "preds", "ann_a", audit_key="pr")
    audit_splits(ds, split_field="split", label_field="ann_a", audit_key="sp")
    return ds


def label_ids(view, field):
    """Every label id of a Detections field in a view (FiftyOne's ``values``)."""
    return {i for ids in view.values(f"{field}.detections.id") for i in (ids or [])}


def planted_duplicates(ds):
    """``({class: {label ids}}, {label id: sample id})`` of the planted duplicate pairs."""
    # every third sample got a near-copy of its first box (IoU 0.95)
    planted, holder = {}, {}
    for s in ds.iter_samples():
        name = s.filepath.rsplit("/", 1)[-1]
        if name.startswith("copy") or int(name[3:-4]) % 3:
            continue
        first, copy = s.ground_truth.detections[0], s.ground_truth.detections[-1]
        planted.setdefault(first.label, set()).update({first.id, copy.id})
        holder[first.id] = holder[copy.id] = s.id
    return planted, holder


def pairwise_oracle(ds, a, b, iou_thresh=0.5, low_iou=0.75):
    """Labels of a and b on which they disagree: FiftyOne's compute_ious, then scipy's maximum-IoU
    one-to-one assignment over the pairs with IoU >= iou_thresh; flagged are the unmatched labels and
    both labels of a matched pair of different classes or IoU < low_iou. (On this module's grid every
    box overlaps at most one box of the other annotator, so the assignment is unique; on real data,
    e.g. the demo's BCCD, ties need two equal assignment totals.)"""
    from scipy.optimize import linear_sum_assignment

    out, samples = {a: set(), b: set()}, set()
    for s in ds.select_fields([a, b]).iter_samples():
        da = s[a].detections if s[a] is not None else []
        db = s[b].detections if s[b] is not None else []
        ious = np.asarray(compute_ious(da, db), float) if da and db else np.zeros((len(da), len(db)))
        weight = np.where(ious >= iou_thresh, ious, 0.0)
        r, c = linear_sum_assignment(weight, maximize=True) if weight.size else (np.empty(0, int),) * 2
        keep = weight[r, c] > 0
        r, c = r[keep], c[keep]
        flagged = {(a, d.id) for i, d in enumerate(da) if i not in set(r.tolist())}
        flagged |= {(b, d.id) for j, d in enumerate(db) if j not in set(c.tolist())}
        for i, j in zip(r, c):
            if da[i].label != db[j].label or ious[i, j] < low_iou:
                flagged |= {(a, da[i].id), (b, db[j].id)}
        for f, i in flagged:
            out[f].add(i)
        if flagged:
            samples.add(s.id)
    return out, samples
