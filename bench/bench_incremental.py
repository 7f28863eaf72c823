"""Keeping parts (``keep_parts=True``) and re-running changed samples only (``iou_audit.rerun_changed``).

On bench_duplicates.py's and bench_agreement.py's datasets (default 5,000 samples x 15 boxes), per
audit, in the same process and rounds:
- plain:       ``audit_duplicates(ds, "gt")`` / ``audit_agreement(ds, ["a", "b", "c"])`` (no parts);
- keep_parts:  the same with ``keep_parts=True`` (parts computed, stored in GridFS, merged, written);
  its disk: the parts' bytes (pickles in GridFS) per 1,000 samples;
- then, after an edit, ``rerun_changed`` vs the full re-run under the same key (``keep_parts=True``
  again; both replace the stored run, so both delete and rewrite its results), for
  ``--edit one`` (labels of 10 consecutive samples changed: one part) and ``--edit spread``
  (1% of the samples, spread over the dataset: every part). Each re-run's stored findings and
  metrics are asserted equal to the full re-run's.
Medians of ``--rounds`` printed with ratios; the machine is shared, so compare within one run.

    python bench/bench_incremental.py                 # 5,000 x 15, 3 rounds
    python bench/bench_incremental.py --quick         # 600 samples, 1 round: checks that it runs
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _edit(ds, field: str, rows) -> None:
    """Drop the first label of ``field`` on the samples at ``rows`` (one bulk write)."""
    ids = ds.values("id")
    chosen = [ids[r] for r in rows]
    view = ds.select(chosen, ordered=True)
    values = view.values(field)
    for v in values:
        v.detections = v.detections[1:]
    view.set_values(field, values)


def _same(a, b) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(a.findings, b.findings, check_exact=True)
    assert set(a.metrics) == set(b.metrics)
    for k, v in a.metrics.items():
        w = b.metrics[k]
        assert v == w or (isinstance(v, float) and np.isnan(v) and np.isnan(w)), (k, v, w)


def bench_audit(name: str, ds, run, field: str, rounds: int, edits: list[str]) -> None:
    from iou_audit import rerun_changed, shards
    from iou_audit.results import delete_audit

    n = len(ds)
    times = {"plain": [], "keep_parts": []}
    for r in range(rounds):  # alternating order within a round
        order = ("plain", "keep_parts") if r % 2 == 0 else ("keep_parts", "plain")
        for which in order:
            key = f"b_{which}"
            t, _ = _timed(lambda: run(ds, key, keep_parts=(which == "keep_parts")))
            times[which].append(t)
            if which == "keep_parts":
                plan = shards.list_plans(ds, key)[0]
                part_bytes = sum(s["bytes"] for s in plan["shards"])
                n_parts = len(plan["shards"])
            delete_audit(ds, key)
    plain, keep = statistics.median(times["plain"]), statistics.median(times["keep_parts"])
    print(f"{name}: {n} samples; plain {plain:.2f} s, keep_parts {keep:.2f} s ({keep / plain:.2f}x, "
          f"+{100 * (keep / plain - 1):.0f}%); parts: {n_parts} of {n // n_parts} samples, "
          f"{part_bytes / 2**20:.1f} MB ({part_bytes / 2**20 / n * 1000:.2f} MB per 1,000 samples)", flush=True)

    rng = np.random.default_rng(1)
    run(ds, "b_inc", keep_parts=True)
    for edit in edits:
        full_t, inc_t, recomputed = [], [], []
        for r in range(rounds):
            rows = (np.arange(10) + int(rng.integers(0, n - 10)) if edit == "one"
                    else rng.choice(n, max(1, n // 100), replace=False))
            _edit(ds, field, rows)
            t, (res, info) = _timed(lambda: rerun_changed(ds, "b_inc"))
            inc_t.append(t)
            recomputed.append(f"{info['n_recomputed']}/{info['n_shards']}")
            t, full = _timed(lambda: run(ds, "b_inc", keep_parts=True))  # the same key: what it replaces
            full_t.append(t)
            _same(full, res)
        f, i = statistics.median(full_t), statistics.median(inc_t)
        print(f"  edit {edit!r} ({'10 consecutive samples' if edit == 'one' else '1% spread'}): full re-run "
              f"{f:.2f} s, rerun_changed {i:.2f} s ({f / i:.2f}x faster; parts recomputed {', '.join(recomputed)}); "
              "same findings and metrics", flush=True)
    delete_audit(ds, "b_inc")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--audits", nargs="+", default=["duplicates", "agreement"])
    parser.add_argument("--quick", action="store_true", help="600 samples, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.rounds = 600, 1
    import bench_agreement
    import bench_duplicates

    from iou_audit import audit_agreement, audit_duplicates

    if "duplicates" in args.audits:
        ds, held = bench_duplicates.build(args.samples, args.boxes)
        del held
        for batch_size in (2000, 500):
            bench_audit(f"duplicates (batch_size {batch_size})", ds,
                        lambda d, key, keep_parts, b=batch_size: audit_duplicates(d, "gt", iou_thresh=0.75, audit_key=key,
                                                                                  batch_size=b, keep_parts=keep_parts),
                        "gt", args.rounds, ["one", "spread"])
        ds.delete()
    if "agreement" in args.audits:
        ds = bench_agreement.build(args.samples, args.boxes)
        bench_audit("agreement", ds,
                    lambda d, key, keep_parts: audit_agreement(d, ["a", "b", "c"], audit_key=key, keep_parts=keep_parts),
                    "b", args.rounds, ["one", "spread"])
        ds.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
