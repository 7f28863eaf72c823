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
- sharded: the ``run_sharded_audit`` operator (plan + queue ``--shards`` shards) until the merge,
  run by whichever worker takes it, has written the run: wall time from the operator call to the
  merge's end, and, from the plan, the shards' phase (first start to last end) and the merge's
  own time.
The two runs' findings, tables and metrics are checked identical before a ratio is printed.
On a shared machine the ratio depends on the other load (printed: the load average), so the
script also reports the CPU seconds of this process and of the workers.

    python bench/bench_shards.py                       # 10,000 samples, every audit
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


def sharded(audit: str, ds, samples, key: str, n_shards: int) -> tuple[float, dict]:
    import fiftyone.operators as foo

    from iou_audit.shards.workers import wait_merged

    t0 = time.perf_counter()
    ctx = dict(dataset=ds, params={"audit": audit, "audit_key": key, "n_shards": n_shards, **PARAMS[audit]})
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="2,000 samples")
    parser.add_argument("--audits", default=",".join(AUDITS))
    parser.add_argument("--shards", type=int, default=2, help="shards per run (default: one per worker)")
    parser.add_argument("--workers", type=int, default=2)
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
        from iou_audit.shards.workers import start_workers, stop_workers

        bench_scale.ensure_images(image_dir, n)
        ds = bench_scale.build_dataset("bench_shards", n, image_dir)
        print(f"dataset: {n} samples, {ds.info['n_labels']} labels; mongod {uri} (own process, data dir {dbpath})",
              flush=True)
        workers = start_workers(args.workers, log_dir, repo=REPO)
        worker_pids = [p.pid for p, _ in workers]
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
            here, db = [os.getpid()], [mongod.pid]
            c0, m0 = _cpu(here, children=False), _cpu(db)
            t0 = time.perf_counter()
            single(audit, ds, key)
            t_single = time.perf_counter() - t0
            cpu_single, db_single = _cpu(here, children=False) - c0, _cpu(db) - m0
            ref = load_audit(ds, key)
            delete_audit(ds, key)
            cw0, c0, m0 = _cpu(worker_pids), _cpu(here, children=False), _cpu(db)
            t_sharded, plan = sharded(audit, ds, ds, key, args.shards)
            cpu_workers, cpu_here = _cpu(worker_pids) - cw0, _cpu(here, children=False) - c0
            db_sharded = _cpu(db) - m0
            _same(ref, load_audit(ds, key))
            starts = [s["started_at"] for s in plan["shards"]]
            ends = [s["finished_at"] for s in plan["shards"]]
            phase = (max(ends) - min(starts)).total_seconds()
            used = len({s["worker"] for s in plan["shards"]})
            # CPU of the critical path (the slowest shard, then the merge): what the wall time would
            # be on free cores, without the other load of a shared machine (mongod not counted)
            critical = max(s["cpu_seconds"] for s in plan["shards"]) + plan["merge"]["cpu_seconds"]
            delete_audit(ds, key)
            delete_plan(plan["_id"])
            load = os.getloadavg()[0]
            rows.append((audit, t_single, t_sharded, cpu_single, critical, load))
            print(f"{audit:12s} single {t_single:7.2f} s | sharded {t_sharded:7.2f} s "
                  f"(shards {phase:.2f} s on {used} workers, merge {plan['merge']['seconds']:.2f} s) | "
                  f"speed-up {t_single / t_sharded:.2f}x | CPU s: single {cpu_single:.1f} (+ mongod {db_single:.1f}), "
                  f"sharded: workers {cpu_workers:.1f} + caller {cpu_here:.1f} (+ mongod {db_sharded:.1f}) | "
                  f"critical path {critical:.1f} (CPU speed-up {cpu_single / critical:.2f}x) | "
                  f"load {load:.1f} | identical results", flush=True)
        print(f"\n{n} samples, {args.shards} shards on {args.workers} workers, {os.cpu_count()} CPUs")
        print(f"{'audit':12s} {'single s':>9s} {'sharded s':>10s} {'speed-up':>9s} {'CPU single':>11s} "
              f"{'CPU critical':>13s} {'CPU speed-up':>13s} {'load':>5s}")
        for audit, t1, t2, c1, c2, load in rows:
            print(f"{audit:12s} {t1:9.2f} {t2:10.2f} {t1 / t2:8.2f}x {c1:11.1f} {c2:13.1f} {c1 / c2:12.2f}x {load:5.1f}")
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
