"""Where audit_predictions' time goes: wall, CPU and (optionally) mongod CPU per phase on the bench's data.

Run: ``python bench/phases_predictions.py [--samples 5000] [--reps 3] [--full] [--held] [--mongod-pid PID]``

Builds the dataset of ``bench_predictions.py`` (same seed), then runs the audit ``--reps`` times
(the first one warms up numba's cached loops; delete_audit between runs, not timed) with its phases
wrapped by timers, and prints the totals of every run and the phases of the last. ``--full`` adds
COCO AP and TIDE (the bench's "ours" is without), ``--held`` keeps the added ``fo.Sample`` objects
(the held-samples case: each write refreshes them, ``iou_audit.table.bulk.refresh_held``).
``--mongod-pid``: also the CPU time of that mongod process per phase (only meaningful when no
other client uses it). Nested phases are included in their parents.
"""
from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

P = "iou_audit.audits.predictions"
PHASES = [  # (module, function or Class.method)
    (f"{P}.audit", "read_pairs"),
    (f"{P}.audit", "compute_prediction_audit"),
    (f"{P}.core", "match_tables"),
    (f"{P}.core", "classify_errors_batched"),
    (f"{P}.core", "calibrate_scores"),
    (f"{P}.audit", "build_findings"),
    ("iou_audit.audits.runner", "save_audit"),
    ("iou_audit.results.runs", "_plan"),
    ("iou_audit.results.runs", "prepare_writes"),
    ("iou_audit.results.runs", "_save_results"),
    ("iou_audit.table.write", "PreparedWrites.run"),
    ("iou_audit.table.bulk", "bulk_write"),
    ("iou_audit.table.bulk", "refresh_held"),
    ("fiftyone.core.dataset", "Dataset.save_view"),
]


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of process ``pid`` (NaN when None or gone)."""
    if pid is None:
        return float("nan")
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrap_phases(acc: dict, mongod_pid: int | None) -> None:
    """Replace each phase function by a timer around it (wall, own CPU, mongod CPU, calls)."""
    for module, attr in PHASES:
        owner = importlib.import_module(module)
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(owner, cls)
        fn = getattr(owner, name)

        def timed(*a, _fn=fn, _label=attr, **k):
            t, c, m = time.perf_counter(), time.process_time(), process_cpu(mongod_pid)
            try:
                return _fn(*a, **k)
            finally:
                x = acc[_label]
                x[0] += time.perf_counter() - t
                x[1] += time.process_time() - c
                x[2] += process_cpu(mongod_pid) - m
                x[3] += 1

        setattr(owner, name, functools.wraps(fn)(timed))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="with COCO AP and TIDE")
    ap.add_argument("--held", action="store_true", help="keep the added fo.Sample objects")
    ap.add_argument("--mongod-pid", type=int, default=None)
    args = ap.parse_args(argv)

    from bench_predictions import make_dataset

    from iou_audit.audits.predictions.audit import audit_predictions
    from iou_audit.results import delete_audit

    acc: dict = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    wrap_phases(acc, args.mongod_pid)
    ds, held = make_dataset(args.samples, keep=True)
    held = held if args.held else None
    kwargs = {} if args.full else dict(coco_metrics=False, tide=False)
    try:
        for r in range(args.reps):
            if "bench" in ds.list_runs():
                delete_audit(ds, "bench")
            acc.clear()
            t, c, m = time.perf_counter(), time.process_time(), process_cpu(args.mongod_pid)
            audit_predictions(ds, "pred", "gt", audit_key="bench", **kwargs)
            print(f"run {r}: wall {time.perf_counter() - t:.2f} s, CPU {time.process_time() - c:.2f} s, "
                  f"mongod CPU {process_cpu(args.mongod_pid) - m:.2f} s, load average {os.getloadavg()[0]:.1f}",
                  flush=True)
        print(f"phases of the last run ({args.samples} samples, {len(held) if held else 0} held):")
        print(f"  {'phase':28s} {'wall s':>7s} {'CPU s':>7s} {'mongod':>7s} calls")
        for label, (w, c, m, n) in acc.items():
            print(f"  {label:28s} {w:7.2f} {c:7.2f} {m:7.2f} {n:5d}")
    finally:
        ds.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
