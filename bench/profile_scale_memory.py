"""Where an audit's peak memory goes: RSS at the entry and exit of each phase, and each phase's peak.

Runs one audit (as ``bench_scale.py`` runs it, results written) on a cached ``bench_scale`` dataset
and wraps the audit's phase functions (read, match, merge, statistics, findings, write): a thread
samples this process's RSS every 20 ms, and each phase reports RSS at entry, at exit and its peak
(the innermost phase running when the sample was taken owns it). Diagnostic only: no targets.

    python bench/profile_scale_memory.py --db-dir /work/scale-cache/db --audit agreement --n 25000
"""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import threading
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
MB = 1 << 20

PHASES = {
    "agreement": [
        "iou_audit.audits.agreement.audit:read_parts",
        "iou_audit.audits.agreement.core:agreement_from_parts",
        "iou_audit.audits.agreement.core:merge_parts",
        "iou_audit.audits.agreement.core:pair_table",
        "iou_audit.audits.agreement.core:per_image_and_class",
        "iou_audit.audits.agreement.core:annotator_reliability",
        "iou_audit.audits.agreement.core:_alpha_observations",
        "iou_audit.audits.agreement.core:pair_alphas",
        "iou_audit.audits.agreement.kalpha:nominal_alpha_ci",
        "iou_audit.audits.agreement.core:threshold_curve",
        "iou_audit.audits.agreement.core:agreement_findings",
        "iou_audit.audits.agreement.coco_map:map_table",
        "iou_audit.audits.runner:save_audit",
        "iou_audit.results.runs:make_findings",
        "iou_audit.results.runs:_plan",
        "iou_audit.results.runs:_save_results",
        "iou_audit.results.runs:delete_audit",
    ],
    "predictions": [
        "iou_audit.audits.predictions.audit:read_pairs",
        "iou_audit.audits.predictions.audit:concat_tables",
        "iou_audit.audits.predictions.audit:check_label_ids",
        "iou_audit.audits.predictions.core:prediction_pair_ious",
        "iou_audit.audits.predictions.core:batched_match",
        "iou_audit.audits.predictions.core:classify_errors_batched",
        "iou_audit.audits.predictions.metrics:match_counts",
        "iou_audit.audits.predictions.core:_metrics.confusion_cells",
        "iou_audit.audits.predictions.core:_metrics.coco_metrics",
        "iou_audit.audits.predictions.core:tide_attribution",
        "iou_audit.audits.predictions.audit:build_findings",
        "iou_audit.audits.predictions.audit:label_batches",
        "iou_audit.audits.runner:save_audit",
        "iou_audit.results.runs:make_findings",
        "iou_audit.results.runs:_plan",
        "iou_audit.results.runs:_save_results",
        "iou_audit.results.runs:delete_audit",
    ],
}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Tracker:
    def __init__(self):
        self.stack: list[str] = []
        self.peaks: dict[str, int] = {}
        self.rows: list[tuple] = []
        self.stop = threading.Event()
        self.peak = 0

    def sample(self):
        while not self.stop.is_set():
            r = rss()
            self.peak = max(self.peak, r)
            if self.stack:
                self.peaks[self.stack[-1]] = max(self.peaks.get(self.stack[-1], 0), r)
            self.stop.wait(0.02)

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def inner(*a, **k):
            self.stack.append(name)
            r0, t0 = rss(), time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
                self.rows.append((len(self.stack), name, r0, rss(), self.peaks.pop(name, r0), time.perf_counter() - t0))
                if self.stack:
                    top = self.stack[-1]
                    self.peaks[top] = max(self.peaks.get(top, 0), self.rows[-1][4])
        return inner


def patch(tracker: Tracker, target: str) -> None:
    mod_name, attr = target.split(":")
    obj = importlib.import_module(mod_name)
    *path, last = attr.split(".")
    for p in path:
        obj = getattr(obj, p)
    setattr(obj, last, tracker.wrap(attr, getattr(obj, last)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-dir", required=True)
    ap.add_argument("--audit", choices=sorted(PHASES), required=True)
    ap.add_argument("--n", type=int, default=25000, help="dataset size (a cached bench_scale dataset)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.abspath(args.db_dir)
    import sys

    import fiftyone as fo

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_scale import WARMUP, run_audit

    from iou_audit.results import delete_audit, list_audits

    ds = fo.load_dataset(f"iou_audit_bench_scale_{args.n}")
    key = f"scale_{args.audit}"
    if key in list_audits(ds):
        delete_audit(ds, key)
    run_audit(args.audit, ds.limit(WARMUP), save=False)
    tracker = Tracker()
    for target in PHASES[args.audit]:
        patch(tracker, target)
    base = rss()
    threading.Thread(target=tracker.sample, daemon=True).start()
    t = time.perf_counter()
    run_audit(args.audit, ds, save=not args.no_save)
    wall = time.perf_counter() - t
    tracker.stop.set()
    print(f"{args.audit} {args.n}: {wall:.1f} s; RSS before {base / MB:.0f} MB, peak {tracker.peak / MB:.0f} MB")
    print(f"{'phase':48s} {'entry MB':>9s} {'exit MB':>9s} {'peak MB':>9s} {'s':>7s}")
    for depth, name, r0, r1, pk, dt in tracker.rows:
        print(f"{'  ' * depth + name:48s} {r0 / MB:9.0f} {r1 / MB:9.0f} {pk / MB:9.0f} {dt:7.2f}")
    if key in list_audits(ds):
        delete_audit(ds, key)


if __name__ == "__main__":
    main()
