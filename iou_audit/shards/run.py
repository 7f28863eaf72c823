"""Plan, run and merge a sharded audit (see the package docstring)."""
from __future__ import annotations

import hashlib
import math
import os
import socket
import time
from typing import Any

from bson import ObjectId

from iou_audit import fiftyone_private as fop
from iou_audit.progress import make_progress
from iou_audit.shards import store
from iou_audit.shards.adapters import sharded_audit


class ShardError(RuntimeError):
    """A sharded run cannot go on (a shard failed or is missing, or the view changed); nothing was written."""


def shard_ranges(ids: list[str], n_shards: int, align: int = 1) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of ``n_shards`` (at most) consecutive runs of ``ids``, each starting at a
    multiple of ``align``.

    Example:
        >>> shard_ranges(list("abcdefg"), 3)
        [(0, 3), (3, 6), (6, 7)]
        >>> shard_ranges(list("abcdefg"), 3, align=4)
        [(0, 4), (4, 7)]
    """
    if int(n_shards) < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards!r}")
    n = len(ids)
    size = max(1, math.ceil(n / int(n_shards)))
    size = math.ceil(size / align) * align
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _id_view(samples, lo: str, hi: str):
    from fiftyone import ViewField as F

    return samples.match((F("_id") >= ObjectId(lo)) & (F("_id") <= ObjectId(hi)))


def ids_digest(ids) -> str:
    """A short fingerprint of a shard's sample ids, in order (an incremental re-run reuses a part only
    while its shard holds exactly the same samples).

    Example:
        >>> ids_digest(["a", "b"]) == ids_digest(["a", "b"]) != ids_digest(["a", "c"])
        True
    """
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:20]


def plan_audit(samples, audit: str, audit_key: str, n_shards: int = 2, since=None, origin: str = "sharded",
               shard_writes: bool | None = None, **params) -> str:
    """Plan a sharded run of ``audit`` over ``samples``: validate, split, store; returns the plan id.

    ``params`` are the audit's parameters (its config dataclass, e.g. ``label_field`` for
    duplicates). The samples are split into ``n_shards`` consecutive runs of sample ids (at
    multiples of ``batch_size`` for audits read in batches, so every shard reads the batches one
    pass reads). The view must list its samples in id order (a dataset, or a view that filters
    without sorting): the shards select their samples by id range. ``origin``: ``"sharded"``, or
    ``"plain"`` for a one-process run keeping its parts (``iou_audit.shards.plain``).
    ``shard_writes`` (default: True for ``"sharded"``): each shard writes its own samples' values
    under the running run (``iou_audit.shards.writes``), the merge only what needs the global
    statistics; False: the merge writes everything (one ``save_audit``).
    """
    from iou_audit.results.runs import check_audit_key

    spec = sharded_audit(audit)
    config = spec.make_config(params)
    check_audit_key(audit_key)
    if getattr(config, "consensus_field", None):  # refused before any shard runs, as one pass refuses it
        from iou_audit.audits.agreement.audit import _check_consensus_name

        _check_consensus_name(samples, config.consensus_field, audit_key)
    ids = samples.values("id")
    if not ids:
        raise ValueError("no samples to audit: the view is empty")
    unordered = next((i for i in range(1, len(ids)) if ids[i] <= ids[i - 1]), None)
    if unordered is not None:
        raise ValueError(f"a sharded run (or one keeping its parts) needs the samples in id order (parts select id "
                         f"ranges); sample #{unordered} ({ids[unordered]}) comes after {ids[unordered - 1]}: drop the "
                         "sort_by/shuffle stage")
    shared = {**spec.prepare(samples, config), "audit_key": audit_key}
    align = int(getattr(config, "batch_size", 1)) if spec.batch_aligned else 1
    shards = [{"index": i, "lo": ids[a], "hi": ids[b - 1], "n_samples": b - a, "state": "pending", "error": None,
               "file_id": None, "bytes": 0, "seconds": None, "worker": None, "digest": ids_digest(ids[a:b])}
              for i, (a, b) in enumerate(shard_ranges(ids, n_shards, align))]
    dataset = fop.root_dataset(samples)
    doc = {"dataset": dataset.name, "dataset_id": fop.dataset_id(dataset), "audit": audit, "audit_key": audit_key,
           "params": config.to_params(), "shared": shared, "n_samples": len(ids), "shards": shards,
           "created_at": store.now(), "since": since, "origin": origin, "merge": {"state": None, "error": None, "at": None},
           "shard_writes": bool(origin == "sharded" if shard_writes is None else shard_writes) and spec.local is not None}
    return str(store.plans().insert_one(doc).inserted_id)


def get_plan(plan_id) -> dict:
    doc = store.plans().find_one({"_id": ObjectId(str(plan_id))})
    if doc is None:
        raise ShardError(f"no sharded-run plan {plan_id!r} in this database")
    return doc


def list_plans(dataset, audit_key: str | None = None) -> list[dict]:
    """The plans of ``dataset`` (newest first), optionally of one audit key."""
    query: dict = {"dataset_id": fop.dataset_id(fop.root_dataset(dataset))}
    if audit_key is not None:
        query["audit_key"] = audit_key
    return list(store.plans().find(query).sort("created_at", -1))


def _check_samples(plan: dict, samples) -> None:
    dataset = fop.root_dataset(samples)
    if fop.dataset_id(dataset) != plan["dataset_id"]:
        raise ShardError(f"plan {plan['_id']} is for dataset {plan['dataset']!r}, not {dataset.name!r}")


def run_shard(samples, plan_id, index: int, progress: Any = None) -> dict:
    """Compute shard ``index`` of the plan over ``samples`` (the planned view) and store its part.

    Returns the shard's entry of the plan (state ``done``, part size, seconds). A failure marks
    the shard ``failed`` with the error (the merge then refuses, naming it) and is re-raised.
    """
    plan = get_plan(plan_id)
    _check_samples(plan, samples)
    index = int(index)
    if not 0 <= index < len(plan["shards"]):
        raise ShardError(f"plan {plan_id} has {len(plan['shards'])} shards; there is no shard {index}")
    shard = plan["shards"][index]
    spec = sharded_audit(plan["audit"])
    config = spec.make_config(plan["params"])
    key = {"_id": plan["_id"]}
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started = store.now()
    store.plans().update_one(key, {"$set": {f"shards.{index}.state": "running", f"shards.{index}.worker": worker,
                                            f"shards.{index}.error": None, f"shards.{index}.started_at": started}})
    start, cpu_start = time.perf_counter(), time.process_time()
    report = make_progress(progress, desc=f"{plan['audit']} shard {index}")
    try:
        view = _id_view(samples, shard["lo"], shard["hi"])
        ids = view.values("id")
        if len(ids) != shard["n_samples"] or shard.get("digest", ids_digest(ids)) != ids_digest(ids):
            raise ShardError(f"shard {index} of plan {plan_id} now holds {len(ids)} samples, planned "
                             f"{shard['n_samples']} (or other samples): the view changed since the plan; plan again")
        part = spec.part(view, config, plan["shared"], report)
        writes = bool(plan.get("shard_writes"))
        file_id, size = store.put_part(plan["_id"], index, part)
        extra: dict = {}
        if writes:  # this shard's own samples' values, under the running run (iou_audit.shards.writes)
            from fiftyone import ViewField as F

            from iou_audit.shards.writes import write_shard

            # edits made since the read started, before this write sets last_modified_at again
            extra["dirty"] = view.match(F("last_modified_at") > started).values("id")
            t_write = time.perf_counter()
            local = spec.local(part, config, plan["shared"], view)
            del part
            report.report(0.9, "writing this shard's values")
            write_shard(samples, view, plan, local, spec.findings_local)
            extra.update(seen_at=store.now(), wrote=True, write_seconds=time.perf_counter() - t_write)
    except BaseException as e:
        store.plans().update_one(key, {"$set": {f"shards.{index}.state": "failed",
                                                f"shards.{index}.error": f"{type(e).__name__}: {e}"}})
        raise
    finally:
        report.close()
    old = shard.get("file_id")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    store.plans().update_one(key, {"$set": {f"shards.{index}.state": "done", f"shards.{index}.file_id": file_id,
                                            f"shards.{index}.bytes": size, f"shards.{index}.seconds": seconds,
                                            f"shards.{index}.cpu_seconds": cpu,
                                            f"shards.{index}.finished_at": store.now(),
                                            **{f"shards.{index}.{k}": v for k, v in extra.items()}}})
    if old is not None and old != file_id:  # a re-run shard replaces its earlier part
        store.delete_part(old)
    return {**shard, "state": "done", "file_id": str(file_id), "bytes": size, "seconds": seconds}


def claim_merge(plan_id) -> bool:
    """True for exactly one caller once every shard is done (atomic), so one merge gets queued."""
    done = store.plans().find_one_and_update(
        {"_id": ObjectId(str(plan_id)), "merge.state": None, "shards": {"$not": {"$elemMatch": {"state": {"$ne": "done"}}}}},
        {"$set": {"merge.state": "claimed"}})
    return done is not None


def missing_shards(plan: dict) -> list[str]:
    """Why the plan cannot be merged yet: one entry per shard that is not done."""
    out = []
    for s in plan["shards"]:
        if s["state"] == "failed":
            out.append(f"shard {s['index']} failed ({s['error']})")
        elif s["state"] != "done":
            out.append(f"shard {s['index']} is {s['state']}")
    return out


#: More samples edited while the parts were computed than this: the plan records "all" (the next
#: incremental re-run recomputes every part) instead of their ids.
MAX_DIRTY_IDS = 100_000


def modified_since_read(samples, plan: dict):
    """Ids of the samples modified after their shard's part started reading them (edits made while
    the parts were computed, which the parts may not have seen), or None when more than
    ``MAX_DIRTY_IDS``. Taken when the merge starts, before its writes, which set the samples'
    ``last_modified_at`` again."""
    import bisect

    from fiftyone import ViewField as F

    shards = plan["shards"]
    seen = [s.get("seen_at") or s.get("started_at") for s in shards]
    if not shards or any(t is None for t in seen):
        return []
    ids, times = samples.match(F("last_modified_at") > min(seen)).values(["id", "last_modified_at"])
    his = [s["hi"] for s in shards]
    out = []
    for sid, t in zip(ids, times):
        k = bisect.bisect_left(his, sid)
        if k < len(shards) and shards[k]["lo"] <= sid and t > seen[k]:
            out.append(sid)
    # a shard that wrote its own values recorded the edits made between its read and its write
    out = sorted(set(out).union(*(s.get("dirty") or () for s in shards)))
    return out if len(out) <= MAX_DIRTY_IDS else None


def merge_plan(samples, plan_id, save: bool = True, progress: Any = None, keep_parts: bool = True):
    """Combine every shard's part and store the run once, through the audit's normal save path.

    Refuses (:class:`ShardError`, nothing written, any earlier run under the key untouched) when a
    shard failed or has not run. ``keep_parts`` keeps the parts for an incremental re-run
    (:func:`iou_audit.shards.incremental.rerun_changed`); :func:`delete_plan` removes them.
    Returns the :class:`iou_audit.results.AuditResult`.
    """
    from iou_audit.audits.runner import run_audit

    plan = get_plan(plan_id)
    _check_samples(plan, samples)
    missing = missing_shards(plan)
    if missing:
        raise ShardError(f"cannot merge plan {plan_id} ({plan['audit']} {plan['audit_key']!r}): "
                         + "; ".join(missing) + (". The run stays incomplete (never listed as complete; the shards that "
                                                 "ran wrote their samples' values)" if plan.get("shard_writes") else
                                                 ". No run was written") + "; re-run those shards, then merge.")
    if len(samples) != plan["n_samples"]:
        raise ShardError(f"the view holds {len(samples)} samples, the plan {plan['n_samples']}: merge with the "
                         "view the plan was made for")
    spec = sharded_audit(plan["audit"])
    config = spec.make_config(plan["params"])
    wrote = bool(plan.get("shard_writes")) and all(s.get("wrote") for s in plan["shards"])
    if save and not wrote and getattr(config, "consensus_field", None):  # shards that wrote checked it
        from iou_audit.audits.agreement.audit import _check_consensus_name

        _check_consensus_name(samples, config.consensus_field, plan["audit_key"])
    key = {"_id": plan["_id"]}
    started = store.now()
    dirty = modified_since_read(samples, plan)  # before this merge's own writes overwrite their times
    store.plans().update_one(key, {"$set": {"merge.state": "running", "merge.error": None,
                                            "merge.started_at": started, "merge.dirty": dirty}})
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        parts = (store.get_part(s["file_id"]) for s in plan["shards"])  # read one at a time, streamed
        if wrote:
            result = _finish(samples, plan, spec, config, parts, save, progress)
        else:
            output = spec.merge(parts, config, plan["shared"], samples)
            result = run_audit(plan["audit"], samples, config, lambda s, c, r: output, plan["audit_key"], save=save,
                               progress=progress, _plan_id=plan["_id"])
    except BaseException as e:
        store.plans().update_one(key, {"$set": {"merge.state": "failed", "merge.error": f"{type(e).__name__}: {e}"}})
        raise
    store.plans().update_one(key, {"$set": {"merge.state": "done", "merge.at": store.now(),
                                            "merge.seconds": time.perf_counter() - start,
                                            "merge.cpu_seconds": time.process_time() - cpu_start}})
    if not keep_parts:
        delete_plan(plan_id)
    return result


def _finish(samples, plan: dict, spec, config, parts, save: bool, progress: Any):
    """The merge of a plan whose shards wrote their own samples' values: the global statistics,
    then the rest of the run (``iou_audit.shards.writes.finish_run``)."""
    from iou_audit.audits.runner import run_audit
    from iou_audit.results import AuditResult
    from iou_audit.shards.writes import finish_run

    report = make_progress(progress, desc=f"{plan['audit']} merge")
    output = spec.merge(parts, config, plan["shared"], samples, shard_wrote=True)
    if not save:  # nothing more to write: the result as one pass returns it
        return run_audit(plan["audit"], samples, config, lambda s, c, r: output, plan["audit_key"], save=False)
    params = {**config.to_params(), **output.config_extra}
    result = AuditResult(plan["audit"], plan["audit_key"], params, output.findings, output.tables, output.metrics)
    report.report(0.9, "writing results")
    finish_run(samples, plan, result, output, spec.findings_local)
    drop_merged_plans(samples, plan["audit_key"], keep=plan["_id"])  # their parts describe the replaced run
    report.close()
    return result


def delete_plan(plan_id) -> None:
    """Remove a plan and its parts, except parts another plan (an incremental re-run) reuses; a
    stored run is not affected."""
    oid = ObjectId(str(plan_id))
    plan = store.plans().find_one({"_id": oid})
    store.plans().delete_one({"_id": oid})
    if plan is not None:  # a plan whose shards wrote holds its key until its merge
        from iou_audit.shards.writes import release_plan_lock

        release_plan_lock(plan["dataset_id"], plan["audit_key"], oid)
    refs = {s["file_id"] for s in (plan or {}).get("shards", []) if s.get("file_id") is not None}
    used = {s["file_id"] for p in store.plans().find({"shards.file_id": {"$in": list(refs)}}, {"shards.file_id": 1})
            for s in p["shards"] if s.get("file_id") is not None}
    for file_id in refs - used:
        store.delete_part(file_id)
    store.delete_parts_of(oid, keep=used)


def drop_merged_plans(dataset, audit_key: str, keep=None) -> int:
    """Delete the merged plans (and their parts) of ``audit_key`` on ``dataset`` but ``keep``: the
    run they wrote was replaced or deleted, so their parts no longer describe a stored run. Plans
    still running (shards queued) are left alone. Returns how many were deleted."""
    query: dict = {"dataset_id": fop.dataset_id(fop.root_dataset(dataset)), "audit_key": audit_key,
                   "merge.state": "done"}
    if keep is not None:
        query["_id"] = {"$ne": ObjectId(str(keep))}
    ids = [p["_id"] for p in store.plans().find(query, {"_id": 1})]
    for plan_id in ids:
        delete_plan(plan_id)
    return len(ids)


def run_sharded(samples, audit: str, audit_key: str, n_shards: int = 2, save: bool = True, progress: Any = None,
                keep_parts: bool = False, **params):
    """Plan, run every shard in this process, one after the other, and merge (what the delegated
    workers do in parallel; the results are the same)."""
    plan_id = plan_audit(samples, audit, audit_key, n_shards=n_shards, shard_writes=save, **params)
    for shard in get_plan(plan_id)["shards"]:
        run_shard(samples, plan_id, shard["index"])
    return merge_plan(samples, plan_id, save=save, progress=progress, keep_parts=keep_parts)
