"""Speed: audit_keypoint_predictions end to end (read, match, COCO keypoint AP, findings, writes)
vs FiftyOne's evaluate_detections on the same Keypoints fields and pycocotools / faster-coco-eval
COCOeval(iouType="keypoints") fed from the dataset.

Run: ``python bench/bench_keypoints.py [--quick] [--images 500] [--gt 8] [--dt 10] [--rounds 2] [--memory]``

Data (seeded, synthetic, in a temporary dataset): ``--images`` 640x480 images, each with ``--gt``
labeled persons (17 COCO keypoints, flags 0/1/2 with ~25 % unlabeled, a few persons without
labeled points; an ``area`` and a relative ``bbox`` attribute) and ``--dt`` predictions near them
(pixel noise 1-8 px; per-point ``confidence``, all equal: the instance score, as FiftyOne and
our audit take the mean point confidence).

Each round, interleaved, after clearing the previous round's results (not timed):
- ours: ``audit_keypoint_predictions(ds, "pred", "gt", area_attribute="area", box_attribute="bbox")``:
  reads both fields in batches, COCO keypoint AP/AR, findings, and writes ``<key>_oks`` and
  ``<key>_match_id`` on every label, tags, per-sample counts, saved views and the run; and again
  with ``save=False`` (the same computation, nothing written: compare with the COCOeval peers);
- FiftyOne: ``ds.evaluate_detections("pred", gt_field="gt", eval_key="ev", method="coco",
  compute_mAP=True, keypoint_sigmas=COCO's)``: its own OKS (relative coordinates, area from the
  points' extent, no flags), so different numbers; writes per-label TP/FP/FN, ids and IoUs;
- pycocotools and faster-coco-eval: the labels read with ``values()`` into COCO dicts (pixels, the
  flags, area, bbox), then ``COCOeval(..., "keypoints")`` evaluate / accumulate / summarize
  (nothing written). Their 10 stats must equal ours (checked each round, to 1e-12).
``--memory``: the peak Python/numpy allocation (tracemalloc) of our audit with the default batch
size and with one batch of everything (not timed).
Prints each round, the medians and the ratios (peer / ours), and the load average before and after
(the machine may be shared: compare sides of one run).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

K = 17
W, H = 640, 480
STATS = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large")


def make_dataset(n_images: int, n_gt: int, n_dt: int, seed: int = 0):
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_images):
        gts, preds = [], []
        for j in range(n_gt):
            x, y = rng.uniform(0, W - 200), rng.uniform(0, H - 200)
            w, h = rng.uniform(40, 200, 2)
            pts = np.stack([rng.uniform(x, x + w, K), rng.uniform(y, y + h, K)], axis=1)
            v = rng.choice([1, 2], K)
            v[rng.random(K) < 0.25] = 0
            if rng.random() < 0.05:
                v[:] = 0
            rel = [(float(px) / W, float(py) / H) if f else (float("nan"), float("nan"))
                   for (px, py), f in zip(pts, v)]
            gts.append(fo.Keypoint(label="person", points=rel, visible=v.tolist(), area=float(w * h * 0.6),
                                   bbox=[x / W, y / H, w / W, h / H]))
            if j < n_dt:
                noisy = np.clip(pts + rng.normal(0, rng.uniform(1, 8), (K, 2)), 0, [W - 1, H - 1])
                preds.append((noisy, float(rng.uniform(0.1, 1.0))))
        for _ in range(n_dt - len(preds)):  # spurious ones
            preds.append((rng.uniform(0, [W - 1, H - 1], (K, 2)), float(rng.uniform(0.0, 0.5))))
        samples.append(fo.Sample(
            filepath=f"/nonexistent/kp/{i:06d}.jpg", metadata=fo.ImageMetadata(width=W, height=H),
            gt=fo.Keypoints(keypoints=gts),
            pred=fo.Keypoints(keypoints=[fo.Keypoint(label="person", points=(p / [W, H]).tolist(), confidence=[sc] * K)
                                         for p, sc in preds])))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    return ds


def coco_from_dataset(ds) -> tuple[dict, list]:
    """The dataset's labels as COCO dicts (read with ``values()``: part of the peers' time)."""
    gt_pts, gt_vis, areas, boxes, pred_pts, scores = ds.values(
        ["gt.keypoints.points", "gt.keypoints.visible", "gt.keypoints.area", "gt.keypoints.bbox",
         "pred.keypoints.points", "pred.keypoints.confidence"])  # a prediction's score: its points' mean
    images, anns, results = [], [], []
    scale = np.array([W, H], dtype=np.float64)
    for i in range(len(gt_pts)):
        images.append({"id": i + 1, "width": W, "height": H})
        for p, v, a, b in zip(gt_pts[i] or [], gt_vis[i] or [], areas[i] or [], boxes[i] or []):
            px = np.nan_to_num(np.asarray(p, dtype=np.float64) * scale)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": a,
                         "bbox": [b[0] * W, b[1] * H, b[2] * W, b[3] * H], "num_keypoints": sum(f > 0 for f in v),
                         "keypoints": np.column_stack([px, v]).reshape(-1).tolist()})
        for p, s in zip(pred_pts[i] or [], scores[i] or []):
            px = np.asarray(p, dtype=np.float64) * scale
            results.append({"image_id": i + 1, "category_id": 1, "score": float(np.mean(s)),
                            "keypoints": np.column_stack([px, np.ones(K)]).reshape(-1).tolist()})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": [f"kp{k}" for k in range(K)]}]}, results


def run_cocoeval(ds, lib: str) -> dict:
    from iou_audit.geometry.keypoints import COCO_SIGMAS

    if lib == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    gt_json, results = coco_from_dataset(ds)
    coco = COCO()
    coco.dataset = gt_json
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = Eval(coco, coco.loadRes(results), "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STATS, ev.stats))


def run_ours(ds, **extra):
    from iou_audit.audits.keypoints import audit_keypoint_predictions

    return audit_keypoint_predictions(ds, "pred", "gt", audit_key="bench", area_attribute="area",
                                      box_attribute="bbox", **extra)


def run_fiftyone(ds):
    from iou_audit.geometry.keypoints import COCO_SIGMAS

    return ds.evaluate_detections("pred", gt_field="gt", eval_key="ev", method="coco", compute_mAP=True,
                                  keypoint_sigmas=list(COCO_SIGMAS), progress=False)


def clear(ds) -> None:
    from iou_audit.results import delete_audit

    if "bench" in ds.list_runs():
        delete_audit(ds, "bench")
    if "ev" in ds.list_evaluations():
        ds.delete_evaluation("ev")


def peak_memory(ds, batch_size: int) -> float:
    """Peak MB allocated (tracemalloc: Python objects and numpy arrays) by our audit, nothing saved."""
    import tracemalloc

    tracemalloc.start()
    try:
        run_ours(ds, batch_size=batch_size, save=False)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 images, 1 round")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--gt", type=int, default=8)
    ap.add_argument("--dt", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="also the peak allocation, default batch vs one batch")
    args = ap.parse_args(argv)
    n, rounds = (200, 1) if args.quick else (args.images, args.rounds)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ds = make_dataset(n, args.gt, args.dt)
    print(f"dataset: {n} images x {args.gt} persons x {args.dt} predictions x {K} keypoints, built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    times: dict[str, list] = {"ours": [], "ours, nothing saved": [], "FiftyOne evaluate_detections": [],
                              "pycocotools": [], "faster-coco-eval": []}
    try:
        run_ours(ds.limit(5), save=False)  # imports and compiled kernels outside the timers
        for r in range(rounds):
            clear(ds)
            t = time.perf_counter()
            ours = run_ours(ds)
            times["ours"].append(time.perf_counter() - t)
            t = time.perf_counter()
            run_ours(ds, save=False)
            times["ours, nothing saved"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fo_res = run_fiftyone(ds)
            times["FiftyOne evaluate_detections"].append(time.perf_counter() - t)
            for lib in ("pycocotools", "faster-coco-eval"):
                t = time.perf_counter()
                stats = run_cocoeval(ds, lib)
                times[lib].append(time.perf_counter() - t)
                if lib == "pycocotools":
                    diff = max(abs(ours.metrics[s] - stats[s]) for s in STATS)
                    assert diff <= 1e-12, f"COCO keypoint stats differ from pycocotools by {diff}"
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
                  + f" (AP ours {ours.metrics['AP']:.4f} = pycocotools, max stat difference {diff:.1e}; "
                  f"FiftyOne's own OKS mAP {fo_res.mAP():.4f}; {len(ours.findings)} findings)", flush=True)
        if args.memory:
            clear(ds)
            from iou_audit.audits.keypoints.objects import KEYPOINT_READ_BATCH

            batch = min(KEYPOINT_READ_BATCH, max(1, n // 5))
            print(f"peak allocation of ours (nothing saved): batch_size={batch} {peak_memory(ds, batch):.0f} MB; "
                  f"one batch of {n} images {peak_memory(ds, n):.0f} MB", flush=True)
    finally:
        ds.delete()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median of {rounds} round(s), {n} images x {args.gt} persons x {args.dt} predictions:")
    for k, v in med.items():
        ratio = "" if k.startswith("ours") else f"  {v / med['ours']:.1f}x ours"
        if "coco" in k:
            ratio += f", {v / med['ours, nothing saved']:.1f}x ours nothing saved"
        print(f"  {k:<30} {v:8.2f} s{ratio}")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
