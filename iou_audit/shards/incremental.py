"""Incremental re-audit: recompute only the shards whose samples changed since the run, merge again.

A sharded run keeps its parts (``merge_plan(keep_parts=True)``, the default). After edits,
:func:`rerun_changed` finds the samples whose ``last_modified_at`` is later than the end of the
run's merge (the run's own writes come before it), and the samples added or deleted since, and
recomputes the parts of exactly the shards that hold one of them (a shard keeps its id range;
samples after the last range form a new shard). Every other part is reused as stored. The merge
then recomputes every global statistic from all parts, so the result equals a full re-run
(tested, alpha and mAP included); the cost of the shard step is proportional to the shards
touched, so plans with many small shards re-run little.

For audits read in batches (``duplicates``) a shard must start at a multiple of ``batch_size``;
when samples were added or deleted before a shard, that shard and every later one are recomputed.
Edits made while the run itself was running (between a shard's read and the merge's end) are not
seen: run it when nobody edits, or re-run in full.
"""
from __future__ import annotations

from typing import Any

from iou_audit.shards import store
from iou_audit.shards.adapters import sharded_audit
from iou_audit.shards.run import ShardError, delete_plan, list_plans, merge_plan, run_shard


def latest_merged_plan(samples, audit_key: str) -> dict:
    """The newest plan of ``audit_key`` on the dataset that was merged and still has its parts."""
    from iou_audit.results import list_audits

    if audit_key not in list_audits(samples):
        raise ShardError(f"no complete iou-audit run {audit_key!r} to re-run incrementally")
    for plan in list_plans(samples, audit_key):
        if plan["merge"]["state"] == "done" and all(s.get("file_id") is not None for s in plan["shards"]):
            return plan
    raise ShardError(f"run {audit_key!r} has no merged sharded plan with its parts (run it with "
                     "iou_audit.shards.run_sharded(..., keep_parts=True) or the run_sharded_audit operator)")


def changed_shards(samples, plan: dict) -> tuple[list[dict], dict]:
    """The shards of a re-run: ``(shards, info)``; a shard to recompute is ``pending`` (its part
    is computed again), one to reuse keeps its ``file_id`` (``reused``). ``info`` counts what changed.

    A current sample belongs to the old range that holds its id (ids past the last range form a
    new shard). A shard is recomputed when one of its samples changed or its sample count did. For
    audits read in batches, from the first shard whose count changed on, the remaining samples are
    split again at multiples of ``batch_size`` (so every shard still reads the batches one pass reads).
    """
    import bisect

    from fiftyone import ViewField as F

    from iou_audit.shards.run import shard_ranges

    ids = samples.values("id")
    if not ids:
        raise ShardError("no samples to audit: the view is empty")
    if any(ids[i] <= ids[i - 1] for i in range(1, len(ids))):
        raise ShardError("the view no longer lists its samples in id order; plan a new sharded run")
    changed = set(samples.match(F("last_modified_at") > plan["merge"]["at"]).values("id"))
    spec = sharded_audit(plan["audit"])
    old = plan["shards"]
    his = [s["hi"] for s in old]
    members: list[list[str]] = [[] for _ in range(len(old) + 1)]
    for sid in ids:
        members[min(bisect.bisect_left(his, sid), len(old))].append(sid)
    counts_changed = [len(members[k]) != s["n_samples"] for k, s in enumerate(old)] + [bool(members[-1])]
    fresh = {"state": "pending", "error": None, "file_id": None, "bytes": 0, "seconds": None, "worker": None,
             "reused": False}
    shards = []
    if spec.batch_aligned and any(counts_changed):
        k0 = counts_changed.index(True)
        for k in range(k0):
            shards.append(_keep_or_redo(old[k], members[k], changed, fresh))
        rest = [sid for m in members[k0:] for sid in m]
        align = int(plan["params"].get("batch_size", 1))
        size = max(old[0]["n_samples"], 1)
        for a, b in shard_ranges(rest, max(1, -(-len(rest) // size)), align):
            shards.append({**fresh, "lo": rest[a], "hi": rest[b - 1], "n_samples": b - a})
    else:
        for k, s in enumerate(old):
            if members[k]:  # a range whose samples were all deleted is dropped
                shards.append(_keep_or_redo(s, members[k], changed, fresh))
        if members[-1]:
            shards.append({**fresh, "lo": members[-1][0], "hi": members[-1][-1], "n_samples": len(members[-1])})
    for i, s in enumerate(shards):
        s["index"] = i
    info = {"n_changed": len(changed), "n_samples": len(ids), "n_shards": len(shards),
            "n_recomputed": sum(not s["reused"] for s in shards)}
    return shards, info


def _keep_or_redo(shard: dict, mine: list[str], changed: set, fresh: dict) -> dict:
    if len(mine) == shard["n_samples"] and not any(sid in changed for sid in mine):
        return {**shard, "reused": True}
    return {**shard, **fresh, "lo": mine[0], "hi": mine[-1], "n_samples": len(mine)}


def rerun_changed(samples, audit_key: str, progress: Any = None) -> tuple:
    """Re-run the sharded run ``audit_key`` on the shards holding changed samples; merge into the
    stored run. Returns ``(AuditResult, info)`` (``info``: changed samples, shards recomputed)."""
    plan = latest_merged_plan(samples, audit_key)
    shards, info = changed_shards(samples, plan)
    if not info["n_recomputed"] and info["n_samples"] == plan["n_samples"]:
        from iou_audit.results import load_audit

        return load_audit(samples, audit_key), {**info, "plan_id": str(plan["_id"])}
    doc = {k: v for k, v in plan.items() if k not in ("_id", "shards", "merge")}
    doc.update(shards=shards, n_samples=info["n_samples"], created_at=store.now(), previous=plan["_id"],
               merge={"state": None, "error": None, "at": None})
    new_id = store.plans().insert_one(doc).inserted_id
    for s in shards:
        if not s["reused"]:
            run_shard(samples, new_id, s["index"])
    result = merge_plan(samples, new_id, progress=progress)
    delete_plan(plan["_id"])  # superseded; the parts the new plan reuses stay
    return result, {**info, "plan_id": str(new_id)}
