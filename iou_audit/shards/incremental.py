"""Incremental re-audit: recompute only the parts whose samples changed since the run, merge again.

A run keeps its parts when it ran with ``keep_parts=True`` (a plain run, ``iou_audit.shards.plain``)
or as a sharded run (``run_sharded(..., keep_parts=True)``, ``merge_plan``'s default). After edits,
:func:`rerun_changed` finds the samples changed since each part was read, and the samples added or
deleted since, and recomputes the parts of exactly the shards that hold one of them (a shard keeps
its id range; samples after the last range form a new shard). Every other part is reused as
stored. The merge then recomputes every global statistic from all parts and rewrites the run, so
the result equals a full re-run (tested per audit: findings, tables, alpha, mAP, COCO AP, drift,
label and sample fields, saved views).

A sample counts as changed when its ``last_modified_at`` is after the end of the run's merge (the
run's own writes come before it), or when it was modified after its part started reading it and
before the merge started (an edit made while the parts were computed: the merge records those ids
when it starts, before its own writes set ``last_modified_at`` again). Every write counts, also other audits' tags and review marks:
that costs a recomputation, never a wrong result. Also recomputed in full: when what every part
shares (``prepare``: e.g. agreement's annotator names and the "auto" geometry) changed; for splits,
a part whose image files changed on disk (size or modification time). For audits read in batches
(``duplicates``) a shard must start at a multiple of ``batch_size``; when samples were added or
deleted before a shard, that shard and every later one are recomputed.

Not seen: edits made while the merge itself runs (its last step, the write, touches the samples
itself); writes that bypass FiftyOne (raw database updates that leave ``last_modified_at``);
mask or image files replaced on disk under the same path for the label audits.
"""
from __future__ import annotations

import bisect
import datetime as _dt
from typing import Any

from iou_audit.progress import make_progress
from iou_audit.shards import store
from iou_audit.shards.adapters import AUDITS, sharded_audit
from iou_audit.shards.plain import PARTS_SHARE, _slot
from iou_audit.shards.run import ShardError, ids_digest, list_plans, merge_plan, run_shard

#: Slack when matching a stored run's completion time with its merge (MongoDB keeps milliseconds).
CLOCK_SLACK = _dt.timedelta(milliseconds=2)


class IncrementalError(ShardError):
    """A run cannot be re-run on its changed samples only; the message says why and what to do."""


def latest_merged_plan(samples, audit_key: str) -> dict:
    """The plan whose merge wrote the stored run ``audit_key`` and that still has every part.

    Raises :class:`IncrementalError` saying why there is none (no such run; an audit that cannot
    keep parts; a run made without ``keep_parts``; a run replaced since by one without parts).
    """
    from iou_audit import fiftyone_private as fop
    from iou_audit.results.runs import audit_info, is_complete, list_audits

    dataset = fop.root_dataset(samples)
    if audit_key not in list_audits(dataset, include_incomplete=True):
        raise IncrementalError(f"no iou-audit run {audit_key!r} on {dataset.name!r} to re-run on its changed samples; "
                               f"audits: {list_audits(dataset)}")
    if not is_complete(dataset, audit_key):
        raise IncrementalError(f"run {audit_key!r} was interrupted while writing: re-run it in full")
    info = audit_info(dataset, audit_key)
    if info["audit"] not in AUDITS:
        raise IncrementalError(f"run {audit_key!r} is a {info['audit']!r} audit, which cannot keep parts (audits "
                               f"that can: {', '.join(sorted(AUDITS))}): re-run it in full")
    how = ("re-run it once in full with keep_parts=True (the operator's 'Keep parts for changed-only re-runs', "
           "the command line's --keep-parts), or as a sharded run (iou_audit.shards.run_sharded(..., keep_parts=True))")
    plans = [p for p in list_plans(dataset, audit_key) if p["merge"]["state"] == "done"]
    if not plans:
        raise IncrementalError(f"run {audit_key!r} kept no parts (it ran without keep_parts, or its parts were "
                               f"deleted): {how}")
    plan = plans[0]
    if any(s.get("file_id") is None for s in plan["shards"]):
        raise IncrementalError(f"run {audit_key!r}'s kept parts are incomplete: {how}")
    done, start, end = info["completed_at"], plan["merge"].get("started_at"), plan["merge"].get("at")
    if done is None or start is None or end is None or not (start - CLOCK_SLACK <= done <= end + CLOCK_SLACK):
        raise IncrementalError(f"the stored run {audit_key!r} was not written by the merge of its kept parts "
                               f"(written {done}, parts merged {start} to {end}): {how}")
    return plan


def incremental_status(samples, audit_key: str) -> str:
    """``""`` when ``audit_key`` can be re-run on its changed samples only, else the reason why not."""
    try:
        latest_merged_plan(samples, audit_key)
    except ShardError as e:
        return str(e)
    return ""


def changed_samples(samples, plan: dict) -> set[str] | None:
    """Ids of the samples of ``samples`` modified since the plan's parts saw them (module
    docstring): after the merge ended, or while the parts were computed (recorded by the merge
    when it started, ``merge.dirty``). None: too many to list, recompute every part."""
    from fiftyone import ViewField as F

    dirty = plan["merge"].get("dirty", [])
    if dirty is None:
        return None
    return set(samples.match(F("last_modified_at") > plan["merge"]["at"]).values("id")) | set(dirty)


def changed_shards(samples, plan: dict, recompute_all: bool = False) -> tuple[list[dict], dict]:
    """The shards of a re-run: ``(shards, info)``; a shard to recompute is ``pending`` (its part
    is computed again), one to reuse keeps its ``file_id`` (``reused``). ``info`` counts what changed.

    A current sample belongs to the old range that holds its id (ids past the last range form a
    new shard). A shard is recomputed when one of its samples changed or its samples are not the
    same ones (added, deleted, or another view). For audits read in batches, from the first shard
    whose samples changed on, the remaining samples are split again at multiples of
    ``batch_size`` (so every shard still reads the batches one pass reads).
    """
    from iou_audit.shards.run import shard_ranges

    checked_at = store.now()  # before the queries: an edit after it is caught by the next re-run's window
    ids = samples.values("id")
    if not ids:
        raise ShardError("no samples to audit: the view is empty")
    if any(ids[i] <= ids[i - 1] for i in range(1, len(ids))):
        raise ShardError("the view no longer lists its samples in id order; re-run it in full")
    changed = changed_samples(samples, plan)
    if changed is None:
        changed, recompute_all = set(), True
    spec = sharded_audit(plan["audit"])
    old = plan["shards"]
    his = [s["hi"] for s in old]
    members: list[list[str]] = [[] for _ in range(len(old) + 1)]
    for sid in ids:
        members[min(bisect.bisect_left(his, sid), len(old))].append(sid)
    moved = [not _same_members(s, members[k]) for k, s in enumerate(old)] + [bool(members[-1])]
    fresh = {"state": "pending", "error": None, "file_id": None, "bytes": 0, "seconds": None, "worker": None,
             "reused": False, "seen_at": None, "started_at": None}

    def keep_or_redo(shard, mine):
        if not recompute_all and _same_members(shard, mine) and changed.isdisjoint(mine):
            return {**shard, "reused": True, "seen_at": checked_at}
        return {**shard, **fresh, "lo": mine[0], "hi": mine[-1], "n_samples": len(mine), "digest": ids_digest(mine)}

    def new_shard(mine):
        return {**fresh, "lo": mine[0], "hi": mine[-1], "n_samples": len(mine), "digest": ids_digest(mine)}

    shards = []
    if spec.batch_aligned and any(moved):
        k0 = moved.index(True)
        for k in range(k0):
            shards.append(keep_or_redo(old[k], members[k]))
        rest = [sid for m in members[k0:] for sid in m]
        align = int(plan["params"].get("batch_size", 1))
        size = max(old[0]["n_samples"], 1)
        for a, b in shard_ranges(rest, max(1, -(-len(rest) // size)), align):
            shards.append(new_shard(rest[a:b]))
    else:
        for k, s in enumerate(old):
            if members[k]:  # a range whose samples were all deleted is dropped
                shards.append(keep_or_redo(s, members[k]))
        if members[-1]:
            shards.append(new_shard(members[-1]))
    for i, s in enumerate(shards):
        s["index"] = i
    info = {"n_changed": len(changed), "n_samples": len(ids), "n_shards": len(shards),
            "n_recomputed": sum(not s["reused"] for s in shards)}
    return shards, info


def _same_members(shard: dict, mine: list[str]) -> bool:
    if len(mine) != shard["n_samples"]:
        return False
    return shard.get("digest") is None or shard["digest"] == ids_digest(mine)  # plans from before digests: count


def _media_changed(samples, shards: list[dict], audit: str) -> int:
    """Splits: mark ``pending`` every reused part whose image files changed on disk since it hashed
    them (size:mtime, what the audit's hash cache compares); returns how many were marked."""
    if audit != "splits":
        return 0
    from iou_audit.audits.splits.sources import file_stat_key
    from iou_audit.shards.run import _id_view

    n = 0
    for s in shards:
        if not s["reused"]:
            continue
        paths = _id_view(samples, s["lo"], s["hi"]).values("filepath")
        stats = store.get_part(s["file_id"])[4]
        if [file_stat_key(p) for p in paths] != list(stats):
            s.update(state="pending", error=None, file_id=None, bytes=0, seconds=None, worker=None, reused=False,
                     seen_at=None, started_at=None)
            n += 1
    return n


def rerun_changed(samples, audit_key: str, progress: Any = None) -> tuple:
    """Re-run the stored run ``audit_key`` on the parts holding changed samples; merge into the
    stored run, which then equals a full re-run. Works for plain runs made with ``keep_parts=True``
    and for sharded runs that kept their parts; raises :class:`IncrementalError` (nothing written)
    saying why a run cannot be re-run this way.

    ``samples``: the dataset (the run's own view, as FiftyOne stored it with the run, is re-run) or
    a view to re-run on. Returns ``(AuditResult, info)``; ``info``: ``n_changed`` samples,
    ``n_samples``, ``n_shards`` parts, ``n_recomputed`` of them, ``reason`` when every part was
    recomputed on purpose, ``plan_id``.

    Example:
        >>> iou_audit.audit_agreement(ds, ["a", "b"], keep_parts=True)          # doctest: +SKIP
        >>> result, info = iou_audit.rerun_changed(ds, "agreement")            # doctest: +SKIP
        >>> info                                                               # doctest: +SKIP
        {'n_changed': 3, 'n_samples': 5000, 'n_shards': 10, 'n_recomputed': 2, 'plan_id': '...'}
    """
    from iou_audit import fiftyone_private as fop

    plan = latest_merged_plan(samples, audit_key)
    if samples is fop.root_dataset(samples):
        samples = samples.load_run_view(audit_key)
    spec = sharded_audit(plan["audit"])
    config = spec.make_config(plan["params"])
    shared = {**spec.prepare(samples, config), "audit_key": audit_key}
    reason = None
    if shared != plan["shared"]:
        reason = f"what every part shares changed since the run ({plan['shared']} -> {shared}): every part recomputed"
    shards, info = changed_shards(samples, plan, recompute_all=reason is not None)
    n_media = _media_changed(samples, shards, plan["audit"])
    if n_media:
        info["n_recomputed"] += n_media
        info["n_media_changed"] = n_media
    if reason:
        info["reason"] = reason
    if not info["n_recomputed"] and info["n_samples"] == plan["n_samples"] and len(shards) == len(plan["shards"]):
        from iou_audit.results import load_audit

        return load_audit(samples, audit_key), {**info, "plan_id": str(plan["_id"])}
    doc = {k: v for k, v in plan.items() if k not in ("_id", "shards", "merge")}
    # the merge rewrites the run (reused parts' samples included): the shards do not write
    doc.update(shards=shards, shared=shared, n_samples=info["n_samples"], created_at=store.now(), previous=plan["_id"],
               shard_writes=False,
               merge={"state": None, "error": None, "at": None})
    new_id = store.plans().insert_one(doc).inserted_id
    report = make_progress(progress, desc=f"{plan['audit']} (changed samples)")
    todo = [s["index"] for s in shards if not s["reused"]]
    try:
        for i, k in enumerate(todo):
            run_shard(samples, new_id, k, progress=_slot(report, PARTS_SHARE * i / len(todo),
                                                        PARTS_SHARE * (i + 1) / len(todo)))
        result = merge_plan(samples, new_id, progress=report)  # its save drops the superseded plan
    except BaseException:
        from iou_audit.shards.run import delete_plan

        delete_plan(new_id)  # the stored run and its kept parts stay as they were
        raise
    return result, {**info, "plan_id": str(new_id)}
