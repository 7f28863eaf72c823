"""Local ``fiftyone delegated launch`` workers for sharded runs (benchmarks, tests, one-machine use).

A deployment runs its workers however it runs services; this starts ``n`` on this machine, each
a separate process on the database ``FIFTYONE_DATABASE_URI`` names, with this checkout's plugin
(``FIFTYONE_PLUGINS_DIR``) and library (``PYTHONPATH``), and stops them again.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

READY = "Delegated operation service running"  # what `fiftyone delegated launch` prints once polling


def start_workers(n: int, log_dir, repo=None, timeout: float = 180.0) -> list[tuple[subprocess.Popen, pathlib.Path]]:
    """Start ``n`` workers; return ``[(process, log path)]`` once every one polls the queue.

    ``repo``: the checkout holding ``fiftyone.yml`` and ``iou_audit`` (default: this one).
    ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true`` lets the open-source App schedule on them.
    """
    repo = pathlib.Path(repo) if repo else pathlib.Path(__file__).resolve().parents[2]
    log_dir = pathlib.Path(log_dir)
    env = {**os.environ, "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true", "FIFTYONE_PLUGINS_DIR": str(repo),
           "PYTHONPATH": str(repo), "PYTHONUNBUFFERED": "1"}
    cli = pathlib.Path(sys.executable).with_name("fiftyone")
    workers = []
    for i in range(n):
        path = log_dir / f"worker{i}.log"
        with open(path, "w") as log:
            proc = subprocess.Popen([str(cli), "delegated", "launch"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(log_dir))
        workers.append((proc, path))
    deadline = time.time() + timeout
    for proc, path in workers:
        while READY not in path.read_text():
            if proc.poll() is not None or time.time() > deadline:
                stop_workers(workers)
                raise RuntimeError(f"worker {path.name} did not start (exit code {proc.poll()}):\n{path.read_text()[-3000:]}")
            time.sleep(0.3)
    return workers


def stop_workers(workers) -> None:
    """Terminate each worker's whole process tree, deepest first (FiftyOne's services start their
    own process groups, so stopping a parent alone can orphan its children); kill what survives."""
    import psutil

    procs = []
    for proc, _ in workers:
        try:
            parent = psutil.Process(proc.pid)
            procs += list(reversed(parent.children(recursive=True))) + [parent]
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    for proc, _ in workers:
        try:
            proc.wait(timeout=5)  # reap
        except subprocess.TimeoutExpired:
            pass


def wait_merged(plan_id, timeout: float = 3600.0, poll: float = 0.25) -> dict:
    """The plan once merged, or once a shard or the merge failed, or at ``timeout``."""
    from iou_audit.shards.run import get_plan

    deadline = time.time() + timeout
    while True:
        plan = get_plan(plan_id)
        if plan["merge"]["state"] in ("done", "failed") or any(s["state"] == "failed" for s in plan["shards"]):
            return plan
        if time.time() > deadline:
            return plan
        time.sleep(poll)
