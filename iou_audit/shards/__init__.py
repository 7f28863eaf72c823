"""Sharded audit runs: shards of samples computed by separate (delegated) processes, merged into one run.

``plan_audit`` stores a plan (the audit, its config, consecutive sample-id ranges) in FiftyOne's
database; ``run_shard`` computes one shard's part, the audit's sufficient statistics for those
samples (``adapters``), and stores it in GridFS (parts may exceed 16 MB); in a sharded run each
shard then writes its own samples' values under the running run (``writes``: the run stays
incomplete, the key locked by the plan, until the merge); ``merge_plan``, once every shard is
done, reads the parts one at a time, computes the global statistics and writes the rest (the
stored run, the values that need global statistics, the saved views), identical to the
single-process run (findings, tables, metrics, label values). A plan made with
``shard_writes=False`` (plain runs, incremental re-runs) writes everything in the merge, through
the normal ``save_audit`` path. Global statistics
(alpha, mAP, COCO AP, TIDE) are computed on the joined arrays, never averaged. A failed or missing
shard makes the merge refuse with the shard named (the run stays incomplete). The plugin's
``run_sharded_audit`` operator queues the shards as delegated operations; the last shard to finish
queues the merge. A plain run with ``keep_parts=True`` is a one-process plan (``plain``); a run that
kept its parts is re-run on its changed samples by ``incremental.rerun_changed``
(``iou_audit.rerun_changed``).
"""
from iou_audit.shards.adapters import AUDITS as SHARDABLE_AUDITS
from iou_audit.shards.incremental import IncrementalError, incremental_status, rerun_changed
from iou_audit.shards.plain import DEFAULT_PART_SAMPLES
from iou_audit.shards.run import (
    ShardError,
    claim_merge,
    delete_plan,
    drop_merged_plans,
    get_plan,
    list_plans,
    merge_plan,
    missing_shards,
    plan_audit,
    run_shard,
    run_sharded,
    shard_ranges,
)

__all__ = ["DEFAULT_PART_SAMPLES", "SHARDABLE_AUDITS", "IncrementalError", "ShardError", "claim_merge", "delete_plan",
           "drop_merged_plans", "get_plan", "incremental_status", "list_plans", "merge_plan", "missing_shards",
           "plan_audit", "rerun_changed", "run_shard", "run_sharded", "shard_ranges"]
