"""Speed: audit_segmentation_agreement (incl. its writes) vs FiftyOne's evaluate_segmentations.

Run: ``python bench/bench_segmentation.py [--quick] [--samples 1000] [--size 512] [--rounds 2] [--new-fields]``

Data (seeded, synthetic, in a temporary dataset): ``--samples`` images with two uint8 ``--size`` x
``--size`` label maps in the database, 8 classes in blocks of 32 px, the second map a copy with
10 % of its blocks changed and 2 % pixel noise.

Each round, interleaved, after clearing the previous round's results (not timed):
- ours: ``audit_segmentation_agreement(ds, ["gt", "pred"])``: reads both fields in batches,
  per-image confusion matrices, per-image mIoU/FWIoU/accuracy/alpha, per-class and confusion
  tables, findings, and writes four per-sample values, the findings' counts and the run; with
  ``--new-fields`` also the regions of disagreement (Detections with instance masks), the
  consensus (Segmentation) and the heatmap (Heatmap) fields;
- FiftyOne: ``ds.evaluate_segmentations("pred", gt_field="gt", eval_key="ev", mask_targets=...)``
  (per-sample confusion matrix, writes per-sample accuracy/precision/recall).
After each round the bench asserts the same dataset confusion matrix. Prints medians and the ratio,
the wall times and this process's CPU time (all its threads; not MongoDB's) of each side, and the
machine's load average before and after (the machine may be shared: compare sides of one run).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

K = 8


def make_dataset(n_samples: int, size: int, seed: int = 0):
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    blocks = size // 32
    samples = []
    for s in range(n_samples):
        coarse = rng.integers(0, K, (blocks, blocks), dtype=np.uint8)
        changed = np.where(rng.random(coarse.shape) < 0.1, rng.integers(0, K, coarse.shape), coarse).astype(np.uint8)
        a = np.kron(coarse, np.ones((32, 32), np.uint8))
        b = np.kron(changed, np.ones((32, 32), np.uint8))
        noise = rng.random(b.shape) < 0.02
        b[noise] = rng.integers(0, K, int(noise.sum()))
        samples.append(fo.Sample(filepath=f"/nonexistent/{s:06d}.jpg", gt=fo.Segmentation(mask=a),
                                 pred=fo.Segmentation(mask=b)))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    return ds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 samples, 1 round")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--new-fields", action="store_true", help="also write regions, consensus and heatmap fields")
    args = ap.parse_args(argv)
    extra = dict(regions_field="bench_regions", consensus_field="bench_consensus",
                 heatmap_field="bench_heatmap") if args.new_fields else {}
    load_before = os.getloadavg()
    n, rounds = (100, 1) if args.quick else (args.samples, args.rounds)

    from iou_audit.audits.segmentation import audit_segmentation_agreement
    from iou_audit.results import delete_audit

    t0 = time.perf_counter()
    ds = make_dataset(n, args.size)
    print(f"dataset: {n} pairs of {args.size}x{args.size} maps, built in {time.perf_counter() - t0:.1f} s", flush=True)
    targets = {v: str(v) for v in range(K)}
    ours_t, fo_t, ours_cpu, fo_cpu = [], [], [], []
    try:
        for r in range(rounds):
            if "bench" in ds.list_runs():
                delete_audit(ds, "bench")
            if "ev" in ds.list_evaluations():
                ds.delete_evaluation("ev")
            t0, c0 = time.perf_counter(), time.process_time()
            result = audit_segmentation_agreement(ds, ["gt", "pred"], audit_key="bench", **extra)
            ours_t.append(time.perf_counter() - t0)
            ours_cpu.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            fo_res = ds.evaluate_segmentations("pred", gt_field="gt", eval_key="ev", mask_targets=targets,
                                               progress=False)
            fo_t.append(time.perf_counter() - t0)
            fo_cpu.append(time.process_time() - c0)
            ours = np.zeros((K, K), np.int64)
            for ca, cb, px in result.tables["confusion"][["class_a", "class_b", "pixels"]].values:
                ours[int(ca), int(cb)] += px
            assert (ours == fo_res.pixel_confusion_matrix).all(), "dataset confusion matrices differ"
            print(f"round {r}: ours {ours_t[-1]:.2f} s (cpu {ours_cpu[-1]:.2f} s), evaluate_segmentations "
                  f"{fo_t[-1]:.2f} s (cpu {fo_cpu[-1]:.2f} s) (same confusion matrix; mIoU "
                  f"{result.metrics['miou']:.4f}; {result.metrics['n_regions']} regions)", flush=True)
    finally:
        ds.delete()
    mo, mf = statistics.median(ours_t), statistics.median(fo_t)
    co, cf = statistics.median(ours_cpu), statistics.median(fo_cpu)
    print(f"median ({n} pairs of {args.size}x{args.size}{', with new fields' if extra else ''}): "
          f"evaluate_segmentations {mf:.2f} s; ours {mo:.2f} s, ratio {mf / mo:.1f}x "
          f"(cpu: {cf:.2f} s / {co:.2f} s = {cf / co:.1f}x); load average before "
          f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
