"""Where audit_segmentation_agreement's time goes: wall and CPU time per phase on the bench's data.

Run: ``python bench/phases_segmentation.py [--samples 1000] [--size 512] [--new-fields]``

Builds the dataset of ``bench_segmentation.py`` (same seed), runs the audit once to warm up
(numba's compiled loops load from their cache), then once more with its phases wrapped by timers:
thread phases (decode, confusion counts, the new fields' documents) are summed over the threads,
so their wall time can exceed the total; CPU is each thread's own (``time.thread_time``).
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import threading
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PHASES = [  # (module, function, label)
    ("iou_audit.table.segmentation", "_decode_sample", "decode masks + confusion counts (threads)"),
    ("iou_audit.table.segmentation", "_finish_batch", "wait for decode, check sizes (main)"),
    ("iou_audit.audits.segmentation.agreement", "_pair_confusions", "  of which confusion counts (threads)"),
    ("iou_audit.audits.segmentation.agreement", "_score_batch", "scores and findings (main)"),
    ("iou_audit.audits.segmentation.agreement", "_image_new_fields", "regions/consensus/heatmap docs (threads)"),
    ("iou_audit.audits.segmentation.agreement", "_summarise", "tables and metrics (main)"),
    ("iou_audit.results.runs", "write_label_fields", "write new label fields (main)"),
    ("iou_audit.audits.runner", "save_audit", "save_audit: all writes (main)"),
]


def main(argv=None) -> int:
    import importlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--new-fields", action="store_true")
    args = ap.parse_args(argv)
    from bench_segmentation import make_dataset

    totals = collections.defaultdict(lambda: [0.0, 0.0, 0])
    lock = threading.Lock()
    for module, name, label in PHASES:
        mod = importlib.import_module(module)
        fn = getattr(mod, name)

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _label=label, **k):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return _fn(*a, **k)
            finally:
                with lock:
                    e = totals[_label]
                    e[0] += time.perf_counter() - t0
                    e[1] += time.thread_time() - c0
                    e[2] += 1
        setattr(mod, name, timed)
    from iou_audit.audits.segmentation import audit_segmentation_agreement
    from iou_audit.results import delete_audit

    extra = dict(regions_field="bench_regions", consensus_field="bench_consensus",
                 heatmap_field="bench_heatmap") if args.new_fields else {}
    ds = make_dataset(args.samples, args.size)
    try:
        audit_segmentation_agreement(ds, ["gt", "pred"], audit_key="warm", **extra)
        delete_audit(ds, "warm")
        totals.clear()
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        audit_segmentation_agreement(ds, ["gt", "pred"], audit_key="bench", **extra)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        ds.delete()
    print(f"{args.samples} pairs of {args.size}x{args.size}{' with new fields' if extra else ''}: total wall "
          f"{wall:.2f} s, process cpu {cpu:.2f} s (load average {load:.1f} on {os.cpu_count()} cpus)")
    for _, _, label in PHASES:
        if label in totals:
            w, c, calls = totals[label]
            print(f"  {label:45s} wall {w:7.2f} s  cpu {c:6.2f} s  calls {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
