"""Sharded audits on 2 delegated workers versus one process, same data, same MongoDB server.

Set-up (as a deployment runs it): one ``mongod`` started here as its own process with its own
port and data directory (FiftyOne's bundled binary), ``FIFTYONE_DATABASE_URI`` pointing at it for
this process and for 2 ``fiftyone delegated launch`` worker processes (``iou_audit.shards.workers``).
Data: ``bench_scale``'s seeded generator (annotators ``a``, ``b``, ``c``, predictions ``pred``,
``split``, 32 x 32 PNGs), ``--samples`` samples (default 10,000: about 620,000 labels).

Per audit (duplicates on ``a``; agreement of ``a``, ``b``, ``c`` with mAP; predictions ``pred`` vs
``a`` with COCO AP and TIDE; splits on ``split`` hashing every file), after an untimed warm-up of
both paths on the first 400 samples (numba cache load, imports, in this process and in each
worker):
- single: the audit's public function in this process, writing its results;
- sharded w: the ``run_sharded_audit`` operator (plan + queue ``--shards`` shards; each shard writes
  its own samples' values) until the merge, run by whichever worker takes it, has written the
  rest of the run: wall time from the operator call to the merge's end, and, from the plan, the
  shards' phase (first start to last end, their writes included), the slowest shard write, the
  merge's own time split into its compute (parts read one at a time) and its write;
- sharded m (the peer, ``--no-peer`` skips it): the same with ``shard_writes=False``: the merge
  writes everything, as before the shards wrote (splits always runs this way: its shards have
  nothing of their own to write).
Each path runs ``--repeats`` times per audit (medians reported). Every run's findings, tables and
metrics are checked identical to the single-process run's before a ratio is printed.
On a shared machine the ratio depends on the other load (printed: the load average), so the
script also reports the CPU seconds of this process and of the workers.

    python bench/bench_shards.py                       # 10,000 samples, every audit, 3 repeats
    python bench/bench_shards.py --quick               # 2,000 samples
    python bench/bench_shards.py --samples 20000 --audits agreement,predictions --shards 4
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AUDITS = ("duplicates", "agreement", "predictions", "splits")
PARAMS = {
    "duplicates": {"label_field": "a"},
    "agreement": {"label_fields": ["a", "b", "c"]},
    "predictions": {"pred_field": "pred", "gt_field": "a"},
    "splits": {"split_field": "split", "label_field": "a"},
}


def start_mongod(dbpath: str):
    """A mongod of our own (FiftyOne's bundled binary) on a free port; ``(process, uri)``."""
    import importlib.util

    mongod = os.path.join(os.path.dirname(importlib.util.find_spec("fiftyone").origin), "db", "bin", "mongod")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([mongod, "--dbpath", dbpath, "--port", str(port), "--bind_ip", "127.0.0.1", "--quiet",
                             "--logpath", os.path.join(dbpath, "mongod.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"mongodb://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"mongod did not start; see {dbpath}/mongod.log")
            time.sleep(0.2)


def single(audit: str, samples, key: str, save: bool = True):
    if audit == "duplicates":
        from iou_audit.audits.duplicates import audit_duplicates

        return audit_duplicates(samples, "a", audit_key=key, save=save)
    if audit == "agreement":
        from iou_audit.audits.agreement import audit_agreement

        return audit_agreement(samples, ["a", "b", "c"], audit_key=key, save=save)
    if audit == "predictions":
        from iou_audit.audits.predictions import audit_predictions

        return audit_predictions(samples, "pred", "a", audit_key=key, save=save)
    from iou_audit.audits.splits import audit_splits

    return audit_splits(samples, split_field="split", label_field="a", audit_key=key, save=save)


def sharded(audit: str, ds, samples, key: str, n_shards: int, shard_writes: bool = True) -> tuple[float, dict]:
    import fiftyone.operators as foo

    from iou_audit.shards.workers import wait_merged

    t0 = time.perf_counter()
    params = {"audit": audit, "audit_key": key, "n_shards": n_shards, "shard_writes": shard_writes, **PARAMS[audit]}
    ctx = dict(dataset=ds, params=params)
    if samples is not ds:
        ctx["view"] = samples
    res = foo.execute_operator("@iou-audit/iou-audit/run_sharded_audit", ctx=ctx)
    plan = wait_merged(res.result["plan_id"], poll=0.05)
    wall = time.perf_counter() - t0
    ds.reload()  # the run was written by a worker process
    if plan["merge"]["state"] != "done":
        raise SystemExit(f"sharded {audit} did not merge: {plan['merge']} {[s['error'] for s in plan['shards']]}")
    return wall, plan


def _cpu(pids, children: bool = True) -> float:
    """CPU seconds (user + system) of the processes ``pids`` (and, with ``children``, their trees)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            for q in [p] + (p.children(recursive=True) if children else []):
                t = q.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _same(a, b) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(a.findings, b.findings, check_exact=True)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    assert repr(a.metrics) == repr(b.metrics), (a.metrics, b.metrics)


def uptime() -> str:
    """``uptime``'s load averages (the machine is shared: every number comes with its load)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _median(values) -> float:
    import statistics

    return float(statistics.median(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="2,000 samples")
    parser.add_argument("--audits", default=",".join(AUDITS))
    parser.add_argument("--shards", type=int, default=2, help="shards per run (default: one per worker)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path per audit (medians reported)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the sharded run whose merge writes everything (shard_writes=False)")
    args = parser.parse_args(argv)
    n = 2000 if args.quick else args.samples
    audits = [a for a in args.audits.split(",") if a]
    tmp = tempfile.mkdtemp(prefix="iou-audit-bench-shards-")
    dbpath, image_dir, log_dir = (os.path.join(tmp, d) for d in ("db", "images", "logs"))
    for d in (dbpath, image_dir, log_dir):
        os.makedirs(d)
    mongod, uri = start_mongod(dbpath)
    os.environ["FIFTYONE_DATABASE_URI"] = uri  # before fiftyone is imported; the workers inherit it
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ["FIFTYONE_PLUGINS_DIR"] = REPO  # the operators, here and in the workers
    sys.path.insert(0, HERE)
    sys.path.insert(0, REPO)
    workers = []
    try:
        import bench_scale

        from iou_audit.results import delete_audit, load_audit
        from iou_audit.shards import delete_plan
        from iou_audit.shards.adapters import sharded_audit
        from iou_audit.shards.workers import start_workers, stop_workers

        bench_scale.ensure_images(image_dir, n)
        ds = bench_scale.build_dataset("bench_shards", n, image_dir)
        print(f"dataset: {n} samples, {ds.info['n_labels']} labels; mongod {uri} (own process, data dir {dbpath})",
              flush=True)
        print(f"uptime at start: {uptime()}", flush=True)
        workers = start_workers(args.workers, log_dir, repo=REPO)
        warm = ds.limit(400)
        for audit in audits:  # untimed: imports, numba cache, in this process and in every worker
            single(audit, warm, f"warm_{audit}", save=False)
            for _ in range(args.workers):
                _, plan = sharded(audit, ds, warm, f"warm_{audit}", args.workers)
                delete_audit(ds, f"warm_{audit}")
                delete_plan(plan["_id"])
        rows = []
        for audit in audits:
            key = f"bench_{audit}"
            writes_apply = sharded_audit(audit).local is not None
            paths = ["writes"] + (["merge_writes"] if writes_apply and not args.no_peer else [])
            t = {"single": [], **{p: [] for p in paths}}
            detail = {p: [] for p in paths}
            cpu = {"single": [], **{p: [] for p in paths}}
            loads = []
            for rep in range(args.repeats):
                here = [os.getpid()]
                c0 = _cpu(here, children=False)
                t0 = time.perf_counter()
                single(audit, ds, key)
                t["single"].append(time.perf_counter() - t0)
                cpu["single"].append(_cpu(here, children=False) - c0)
                ref = load_audit(ds, key)
                delete_audit(ds, key)
                for path in paths:
                    t_sharded, plan = sharded(audit, ds, ds, key, args.shards, shard_writes=(path == "writes"))
                    _same(ref, load_audit(ds, key))
                    starts = [s["started_at"] for s in plan["shards"]]
                    ends = [s["finished_at"] for s in plan["shards"]]
                    m = plan["merge"]
                    detail[path].append({
                        "phase": (max(ends) - min(starts)).total_seconds(), "merge": m["seconds"],
                        "shard_write": max((s.get("write_seconds") or 0.0) for s in plan["shards"]),
                        "merge_compute": m.get("compute_seconds"), "merge_write": m.get("write_seconds"),
                        "workers": len({s["worker"] for s in plan["shards"]})})
                    # CPU of the critical path (the slowest shard, then the merge): what the wall
                    # time would be on free cores, without the other load (mongod not counted)
                    cpu[path].append(max(s["cpu_seconds"] for s in plan["shards"]) + m["cpu_seconds"])
                    t[path].append(t_sharded)
                    delete_audit(ds, key)
                    delete_plan(plan["_id"])
                loads.append(os.getloadavg()[0])
                d = detail[paths[0]][-1]
                print(f"{audit:12s} #{rep + 1}: single {t['single'][-1]:6.2f} s | "
                      + " | ".join(f"sharded[{p}] {t[p][-1]:6.2f} s" for p in paths)
                      + f" | shards {d['phase']:.2f} s (write {d['shard_write']:.2f} s) on {d['workers']} workers, "
                      f"merge {d['merge']:.2f} s | load {loads[-1]:.1f} | identical results", flush=True)
            med = {k: _median(v) for k, v in t.items()}
            rows.append((audit, paths, med, {k: _median(v) for k, v in cpu.items()},
                         {p: {k: _median([x[k] for x in detail[p] if x[k] is not None] or [float("nan")])
                              for k in detail[p][0]} for p in paths}, _median(loads)))
        print(f"\n{n} samples, {args.shards} shards on {args.workers} workers, {os.cpu_count()} CPUs, "
              f"medians of {args.repeats} runs; uptime at end: {uptime()}")
        print(f"{'audit':12s} {'path':13s} {'wall s':>7s} {'speed-up':>9s} {'shards s':>9s} {'shard write':>12s} "
              f"{'merge s':>8s} {'merge compute':>14s} {'merge write':>12s} {'CPU crit.':>10s} {'CPU speed-up':>13s} "
              f"{'load':>5s}")
        for audit, paths, med, cmed, dmed, load in rows:
            print(f"{audit:12s} {'single':13s} {med['single']:7.2f} {'':>9s} {'':>9s} {'':>12s} {'':>8s} {'':>14s} "
                  f"{'':>12s} {cmed['single']:10.1f} {'':>13s} {load:5.1f}")
            for p in paths:
                d = dmed[p]
                print(f"{audit:12s} {'sharded ' + ('w' if p == 'writes' else 'm'):13s} {med[p]:7.2f} "
                      f"{med['single'] / med[p]:8.2f}x {d['phase']:9.2f} {d['shard_write']:12.2f} {d['merge']:8.2f} "
                      f"{d['merge_compute']:14.2f} {d['merge_write']:12.2f} {cmed[p]:10.1f} "
                      f"{cmed['single'] / cmed[p]:12.2f}x {load:5.1f}")
        print("sharded w: shards write their samples' values, the merge the rest (default); sharded m: the merge "
              "writes everything (shard_writes=False)")
    finally:
        if workers:
            stop_workers(workers)
        mongod.terminate()
        try:
            mongod.wait(timeout=30)
        except subprocess.TimeoutExpired:
            mongod.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
