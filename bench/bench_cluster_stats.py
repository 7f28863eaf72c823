"""Is the array fast path of the agreement cluster tables (``cluster_stats.cluster_table_arrays``)
worth keeping? It exists to give the pandas path's numbers bit for bit, faster.

Same data as ``bench_agreement`` (3 annotators x N samples x B boxes, simulated annotators b, c).
Timed, alternating, median of rounds: the whole ``audit_agreement`` (read, compute, write) with the
array path, and with the pandas path (``cluster_table_arrays`` made to decline, as it does for
non-string labels), plus the two cluster-table calls alone. Prints the share of the audit the
array path saves; the rule (issue 10) is: keep it only if that is > 5 %.

    python bench/bench_cluster_stats.py            # 5,000 x 15, 3 rounds
    python bench/bench_cluster_stats.py --quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.rounds = 300, 2

    import bench_agreement

    import iou_audit.audits.agreement.cluster_stats as cs
    from iou_audit.audits.agreement import stats

    ds = bench_agreement.build(args.samples, args.boxes)
    fast_fn = cs.cluster_table_arrays
    table_time = {"arrays": 0.0, "pandas": 0.0}
    orig_cluster_table = stats.cluster_table

    def timed_cluster_table(*a, **k):
        t0 = time.perf_counter()
        out = orig_cluster_table(*a, **k)
        table_time[current[0]] += time.perf_counter() - t0
        return out

    current = ["arrays"]
    import iou_audit.audits.agreement.parts as parts

    parts.cluster_table = timed_cluster_table
    times = {"arrays": [], "pandas": [], "arrays_table": [], "pandas_table": []}
    bench_agreement.run_ours(ds)  # warm-up: numba compile, first run's schema work
    results = {}
    for r in range(args.rounds):
        for mode in (("arrays", "pandas") if r % 2 == 0 else ("pandas", "arrays")):
            current[0] = mode
            cs.cluster_table_arrays = fast_fn if mode == "arrays" else (lambda *a, **k: None)
            table_time[mode] = 0.0
            t0 = time.perf_counter()
            results[mode] = bench_agreement.run_ours(ds)
            times[mode].append(time.perf_counter() - t0)
            times[f"{mode}_table"].append(table_time[mode])
    cs.cluster_table_arrays = fast_fn
    parts.cluster_table = orig_cluster_table
    same = results["arrays"].findings.equals(results["pandas"].findings) and all(
        results["arrays"].tables[k].equals(results["pandas"].tables[k]) for k in results["arrays"].tables)
    med = {k: statistics.median(v) for k, v in times.items()}
    saved = med["pandas"] - med["arrays"]
    print(f"agreement audit, 3 x {args.samples} x {args.boxes}, median of {args.rounds} rounds")
    print(f"  whole audit, array path : {med['arrays']:.3f} s   (cluster tables {med['arrays_table']:.3f} s)")
    print(f"  whole audit, pandas path: {med['pandas']:.3f} s   (cluster tables {med['pandas_table']:.3f} s)")
    print(f"  saved by the array path : {saved:.3f} s = {100 * saved / med['pandas']:.1f}% of the audit "
          f"(cluster tables alone: {100 * (med['pandas_table'] - med['arrays_table']) / med['pandas']:.1f}%); "
          f"results identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
