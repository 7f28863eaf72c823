"""Label-error benchmark: find injected label errors from simulated predictions; ours vs cleanlab vs FiftyOne.

Run: ``python bench/bench_label_errors.py [--quick] [--seeds 0 1 2]``

Inputs (real ground truth, simulated errors and predictions, all seeded):
- BCCD (364 images, FiftyOne's VOC importer via ``iou_audit.ingest``) and the 100 COCO val2014
  reference images (non-crowd labels), from ``../shared/data``;
- label errors injected by ``iou_audit.simulate.predictions.inject_label_errors`` (half of the images get
  errors of one kind: drop, spurious, shift, rescale, swap, duplicate; see that module's docstring);
- predictions of the simulated imperfect detector ``simulate_detections`` run on the *clean* labels
  (misses, hard objects with low confidence, box noise, class confusion, duplicates, background boxes).

Both fields are written into a FiftyOne dataset and every method reads the same fields in the same run:
- ours: ``compute_prediction_audit`` on the tables read back; image score = 1 - image quality;
- cleanlab: ``cleanlab.object_detection.rank.get_label_quality_scores`` (pixel xyxy, per-class
  prediction arrays); image score = 1 - its label quality score;
- FiftyOne brain: ``compute_mistakenness(pred, label_field)``; image score = the sample's
  ``mistakenness`` (its documented per-sample score; None/-1 -> 0);
- "best-field" rows, which assume one already knows the kind of error sought: FiftyOne's most fitting
  output per kind (drop: ``possible_missing`` count; spurious, duplicate: ``possible_spurious`` count;
  shift, rescale: max ``mistakenness_loc``; swap: ``mistakenness``) and ours (the number of the
  matching kind's findings per image, i.e. the ``<key>_<kind>`` sample counts the audit writes, score >= 0.5,
  ties broken by the image's top score of that kind).

Label level (ours and FiftyOne only; cleanlab's public ``get_label_quality_scores`` scores images): each
injected label (all kinds but drop) against the clean labels; ours = 1 - label quality, FiftyOne =
max(mistakenness, mistakenness_loc, 1 if possible_spurious).

Scoring per error kind: the pool is the images with that kind plus all clean images; ties are broken
by one fixed random permutation shared by all methods. P@k at k = half the positives (purity of the top
of the queue), R@k at k = twice the positives (coverage with a budget of 2x), AUROC (Mann-Whitney).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("IOU_AUDIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_bccd(limit=None):
    from iou_audit.ingest import ingest
    from iou_audit.table import read_label_table

    ds = ingest(DATA / "bccd", splits="none", persistent=False)
    field = ds.info["iou_audit_ingest"]["label_fields"][0]
    if limit:
        keep = ds.limit(limit).values("id")
        ds.exclude(keep).delete_samples() if False else ds.delete_samples(ds.exclude(keep))
    return ds, read_label_table(ds, field, masks=False)


def load_coco():
    import fiftyone as fo

    from iou_audit.audits.predictions.coco_io import load_coco_tables

    d = DATA / "coco-val2014-100"
    _, gt = load_coco_tables(d / "instances_val2014_100.json", d / "instances_val2014_fakebbox100_results.json")
    gt = gt.take(~gt.iscrowd)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/nonexistent/coco_{sid}.jpg",
                              metadata=fo.ImageMetadata(width=int(w), height=int(h)))
                    for sid, w, h in zip(gt.sample_ids, gt.width, gt.height)])
    return ds, gt


def cleanlab_scores(gt, pred, classes, sizes):
    from cleanlab.object_detection.rank import get_label_quality_scores

    code = {c: i for i, c in enumerate(classes)}
    K = len(classes)
    labels, preds = [], []
    for s in range(len(gt.offsets) - 1):
        W, H = sizes[s]
        scale = np.array([W, H, W, H])
        a, b = gt.offsets[s], gt.offsets[s + 1]
        labels.append({"bboxes": gt.box[a:b] * scale, "labels": np.array([code[x] for x in gt.label[a:b]], int)})
        a, b = pred.offsets[s], pred.offsets[s + 1]
        pb = pred.box[a:b] * scale
        pl = np.array([code[x] for x in pred.label[a:b]], int)
        preds.append([np.c_[pb[pl == k], pred.confidence[a:b][pl == k]].reshape(-1, 5) for k in range(K)])
    q = get_label_quality_scores(labels, preds, verbose=False)
    return 1.0 - np.asarray(q, float)


def fo_scores(ds, gt_field, pred_field):
    import fiftyone.brain as fob

    fob.compute_mistakenness(ds, pred_field, label_field=gt_field, progress=False)
    m = np.array([(-1 if v is None else v) for v in ds.values("mistakenness")], float)
    m = np.maximum(m, 0)
    miss = np.array(ds.values("possible_missing"), float)
    spur = np.array(ds.values("possible_spurious"), float)
    loc = np.array([max([x for x in (v or []) if x is not None], default=0.0)
                    for v in ds.values(f"{gt_field}.detections.mistakenness_loc")], float)
    best = {"drop": miss, "spurious": spur, "duplicate": spur, "shift": loc, "rescale": loc, "swap": m}
    # per label: max of class mistakenness, localization mistakenness and the possible_spurious flag
    flat = lambda path: [x for v in ds.values(path) for x in (v or [])]  # noqa: E731
    per_label = np.array([max(0.0 if a is None else a, 0.0 if b is None else b, 1.0 if c else 0.0)
                          for a, b, c in zip(flat(f"{gt_field}.detections.mistakenness"),
                                             flat(f"{gt_field}.detections.mistakenness_loc"),
                                             flat(f"{gt_field}.detections.possible_spurious"))])
    return m, best, per_label


def ranking_metrics(score, positive, pool, tiebreak):
    s, y, t = score[pool], positive[pool], tiebreak[pool]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    order = np.lexsort((t, -s))
    k1, k2 = max(1, n_pos // 2), 2 * n_pos
    p_at = y[order[:k1]].mean()
    r_at = y[order[:k2]].sum() / max(n_pos, 1)
    from scipy.stats import rankdata

    ranks = rankdata(s)
    auroc = (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1)
    return p_at, r_at, auroc, n_pos


def run_one(name, ds, clean, seed, rows, label_rows):
    from iou_audit.audits.predictions.core import compute_prediction_audit
    from iou_audit.audits.predictions.errors import group_max
    from iou_audit.simulate.predictions import (
        KINDS,
        boxes_from_table,
        inject_label_errors,
        simulate_detections,
        to_detections,
    )
    from iou_audit.table import read_label_table

    classes = sorted(set(clean.label.tolist()))
    cb = boxes_from_table(clean)
    noisy, image_kind, _ = inject_label_errors(cb, classes, seed=seed)
    sim = simulate_detections(cb, classes, seed=seed)
    ds.set_values("noisy_gt", to_detections(noisy))
    ds.set_values("sim_predictions", to_detections(sim))
    gt = read_label_table(ds, "noisy_gt", masks=False)
    pred = read_label_table(ds, "sim_predictions", masks=False)
    sizes = np.c_[gt.width, gt.height]
    timings = {}
    t0 = time.perf_counter()
    a = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    ours = 1.0 - a.image_quality
    timings["ours"] = time.perf_counter() - t0
    S = len(gt.sample_ids)
    e = a.errors

    def count_then_max(idx, v):  # findings per image (score >= 0.5), ties broken by the top score
        return np.bincount(idx, v >= 0.5, minlength=S) + 0.5 * group_max(idx, v, S)[0]

    ours_best = {"drop": count_then_max(pred.sample_index, e.possible_missing),
                 "spurious": count_then_max(gt.sample_index, e.possible_spurious),
                 "duplicate": count_then_max(gt.sample_index, e.possible_spurious),
                 "shift": count_then_max(gt.sample_index, e.mislocated),
                 "rescale": count_then_max(gt.sample_index, e.mislocated),
                 "swap": count_then_max(gt.sample_index, e.class_swap)}
    t0 = time.perf_counter()
    cl = cleanlab_scores(gt, pred, classes, sizes)
    timings["cleanlab"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fo_m, fo_best, fo_label = fo_scores(ds, "noisy_gt", "sim_predictions")
    timings["fo-brain"] = time.perf_counter() - t0
    tiebreak = np.random.default_rng(seed + 7).permutation(len(ours))
    clean_img = image_kind == ""
    for kind in KINDS:
        pos = image_kind == kind
        if not pos.any():
            continue
        pool = pos | clean_img
        for method, score in (("ours", ours), ("cleanlab", cl), ("fo-brain", fo_m),
                              ("ours best-field", ours_best[kind]), ("fo-brain best-field", fo_best[kind])):
            p, r, auc, n = ranking_metrics(score, pos, pool, tiebreak)
            rows.append((name, seed, kind, method, n, p, r, auc))
    # label level (ours and FiftyOne score every label; cleanlab's public API scores images only)
    label_err = np.asarray(noisy.error, dtype=object)
    tb = np.random.default_rng(seed + 11).permutation(len(label_err))
    for kind in KINDS:
        pos = label_err == kind
        if not pos.any():
            continue
        pool = pos | (label_err == "")
        for method, score in (("ours", 1.0 - a.label_quality), ("fo-brain", fo_label)):
            p, r, auc, n = ranking_metrics(score, pos, pool, tb)
            label_rows.append((name, seed, kind, method, n, p, r, auc))
    print(f"[{name} seed {seed}] seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="BCCD's first 80 images and one seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="noise/detector seeds")
    args = ap.parse_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    import pandas as pd

    rows, label_rows = [], []
    datasets = [("bccd", *load_bccd(80 if args.quick else None)), ("coco100", *load_coco())]
    for name, ds, clean in datasets:
        for seed in seeds:
            run_one(name, ds, clean, seed, rows, label_rows)
        ds.delete()
    df = pd.DataFrame(rows, columns=["data", "seed", "kind", "method", "n_pos", "P@k", "R@2k", "AUROC"])
    summary = df.groupby(["data", "kind", "method"], sort=False)[["n_pos", "P@k", "R@2k", "AUROC"]].mean()
    pd.set_option("display.width", 160)
    print(summary.round(3).to_string())
    best = summary["AUROC"].unstack("method")
    best = best[["ours", "cleanlab", "fo-brain", "ours best-field", "fo-brain best-field"]]
    best["single score: ours ahead"] = best["ours"] > best[["cleanlab", "fo-brain"]].max(axis=1)
    best["best-field: ours ahead"] = best["ours best-field"] > best["fo-brain best-field"]
    print()
    print(best.round(3).to_string())
    lf = pd.DataFrame(label_rows, columns=["data", "seed", "kind", "method", "n_pos", "P@k", "R@2k", "AUROC"])
    lab = lf.groupby(["data", "kind", "method"], sort=False)["AUROC"].mean().unstack("method")
    lab["ours ahead"] = lab["ours"] > lab["fo-brain"]
    print()
    print("label level (AUROC; injected labels vs clean labels):")
    print(lab.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
