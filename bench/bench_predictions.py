"""Speed: audit_predictions (incl. writing per-label results) vs FiftyOne's evaluate_detections.

Run: ``python bench/bench_predictions.py [--quick] [--samples 5000] [--rounds 3] [--held]``

Data (seeded, synthetic, in a temporary dataset): ``--samples`` images x 15 ground-truth boxes (5
classes, random sizes 3-20 % of the image) and 17 predictions (13 jittered copies of labels, 10 % with
another class, plus 4 random boxes; uniform confidences).

Each round, interleaved, after clearing the previous round's results (not timed):
- ours: ``iou_audit.audit_predictions(ds, "pred", "gt", coco_metrics=False, tide=False)``, the scope
  of ``evaluate_detections``' default (which computes no mAP): reads both fields in bulk, matches (COCO
  greedy, IoU 0.5, classwise), TP/FP/FN, error types and quality, and writes ``<key>_iou`` and
  ``<key>_match_id`` on both fields plus quality/error attributes, tags, per-sample counts and quality,
  saved views and the run;
- ours full: the same with the defaults (adds COCO AP@[.5:.95] over 10 thresholds x 4 area ranges and
  the TIDE attribution);
- FiftyOne: ``ds.evaluate_detections("pred", gt_field="gt", eval_key="ev", iou=0.5, classwise=True)``
  (writes eval/eval_id/eval_iou on both fields and per-sample tp/fp/fn).
After each round the bench asserts identical TP/FP/FN totals and identical matched ids on every label.
Prints the median time of each and the ratio, with the load average and the process's CPU time.

``--held``: the caller still holds the ``fo.Sample`` objects it added (a notebook's case; FiftyOne
refreshes in-memory samples after writes, ours does it in one read-back, ``iou_audit.table.bulk.refresh_held``);
after the rounds the bench asserts that a held sample equals its stored document.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

CLASSES = ["a", "b", "c", "d", "e"]


def make_dataset(n_samples: int, seed: int = 0, keep: bool = False):
    """The seeded dataset; with ``keep``, ``(dataset, the list of fo.Sample objects added)``."""
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    samples = []
    for s in range(n_samples):
        wh = rng.uniform(0.03, 0.2, (15, 2))
        xy = rng.uniform(0, 1, (15, 2)) * (1 - wh)
        gl = rng.integers(0, 5, 15)
        gts = [fo.Detection(label=CLASSES[c], bounding_box=[*p, *q]) for p, q, c in zip(xy, wh, gl)]
        pick = rng.choice(15, 13, replace=False)
        pxy = xy[pick] + rng.normal(0, 0.1, (13, 2)) * wh[pick]
        pwh = wh[pick] * rng.uniform(0.85, 1.15, (13, 2))
        pl = np.where(rng.random(13) < 0.1, rng.integers(0, 5, 13), gl[pick])
        rwh = rng.uniform(0.03, 0.2, (4, 2))
        rxy = rng.uniform(0, 1, (4, 2)) * (1 - rwh)
        pxy, pwh = np.r_[pxy, rxy], np.r_[pwh, rwh]
        pl = np.r_[pl, rng.integers(0, 5, 4)]
        conf = rng.uniform(0.05, 1.0, 17)
        preds = [fo.Detection(label=CLASSES[c], bounding_box=[*p, *q], confidence=float(k))
                 for p, q, c, k in zip(pxy, pwh, pl, conf)]
        samples.append(fo.Sample(filepath=f"/nonexistent/{s:06d}.jpg",
                                 metadata=fo.ImageMetadata(width=640, height=480),
                                 gt=fo.Detections(detections=gts), pred=fo.Detections(detections=preds)))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    return (ds, samples) if keep else ds


def check_identical(ds, result, key):
    tp, fp, fn = ds.sum("ev_tp"), ds.sum("ev_fp"), ds.sum("ev_fn")
    ours = (result.metrics["tp"], result.metrics["fp"], result.metrics["fn"])
    assert ours == (tp, fp, fn), f"TP/FP/FN differ: ours {ours}, evaluate_detections {(tp, fp, fn)}"
    for field in ("pred", "gt"):
        a, b = ds.values([f"{field}.detections.ev_id", f"{field}.detections.{key}_match_id"])
        assert a == b, f"matched ids differ on {field}"
    return tp, fp, fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 samples, 2 rounds")
    ap.add_argument("--samples", type=int, default=5000, help="number of images (default 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    ap.add_argument("--held", action="store_true", help="keep the list of fo.Sample objects added (held samples)")
    args = ap.parse_args(argv)
    n, rounds = (200, 2) if args.quick else (args.samples, args.rounds)

    from iou_audit.audits.predictions.audit import audit_predictions
    from iou_audit.results import delete_audit

    t0 = time.perf_counter()
    ds, held = make_dataset(n, keep=True)
    if not args.held:
        held = None  # the added fo.Sample objects are dropped: FiftyOne holds none
    print(f"dataset: {n} samples x 15 gt / 17 pred boxes, built in {time.perf_counter() - t0:.1f} s; "
          f"{len(held) if held else 0} samples held", flush=True)
    key = "bench"
    ours_t, full_t, fo_t, cpu_t = [], [], [], []
    try:
        for r in range(rounds):
            if key in ds.list_runs():
                delete_audit(ds, key)
            t0 = time.perf_counter()
            audit_predictions(ds, "pred", "gt", audit_key=key)
            full_t.append(time.perf_counter() - t0)
            delete_audit(ds, key)
            if "ev" in ds.list_evaluations():
                ds.delete_evaluation("ev")
            t0, c0 = time.perf_counter(), time.process_time()
            result = audit_predictions(ds, "pred", "gt", audit_key=key, coco_metrics=False, tide=False)
            ours_t.append(time.perf_counter() - t0)
            cpu_t.append(time.process_time() - c0)
            t0 = time.perf_counter()
            ds.evaluate_detections("pred", gt_field="gt", eval_key="ev", iou=0.5, classwise=True, progress=False)
            fo_t.append(time.perf_counter() - t0)
            tp, fp, fn = check_identical(ds, result, key)
            print(f"round {r}: ours {ours_t[-1]:.2f} s (CPU {cpu_t[-1]:.2f} s; full {full_t[-1]:.2f} s), "
                  f"evaluate_detections {fo_t[-1]:.2f} s (identical TP {tp} FP {fp} FN {fn} and matched ids); "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
        if held:
            one = held[len(held) // 2]
            same = one.to_dict() == ds.select(one.id).first().to_dict()  # a SampleView: read from the database
            print(f"held samples: a held sample equals its stored document: {same}", flush=True)
            assert same, "a held sample differs from its stored document"
    finally:
        ds.delete()
    mo, mu, mf = statistics.median(ours_t), statistics.median(full_t), statistics.median(fo_t)
    print(f"median ({n} samples{', held' if held else ''}): evaluate_detections {mf:.2f} s; ours {mo:.2f} s, ratio {mf / mo:.1f}x; "
          f"ours with COCO AP@[.5:.95] and TIDE {mu:.2f} s, ratio {mf / mu:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
