"""Plain runs that keep their parts, so they can later be re-run on their changed samples only.

``audit_agreement(ds, fields, keep_parts=True)`` (any shardable audit, ``SHARDABLE_AUDITS``) runs in
this process as a plan of consecutive parts: each part's sufficient statistics (``adapters``) are
computed and stored in GridFS, then merged and written once by ``merge_plan``, the path a sharded
run takes, so the stored run is identical to the run without parts (tested). The plan is kept;
:func:`iou_audit.shards.incremental.rerun_changed` recomputes only the parts holding samples changed
since. ``keep_parts=True`` cuts the samples into ``ceil(n / DEFAULT_PART_SAMPLES)`` equal parts
(``keep_parts=N``: at most N samples each); duplicates parts are whole read batches
(``batch_size``, whose order its findings follow), so pass a smaller ``batch_size`` for finer
duplicates parts.
"""
from __future__ import annotations

import math
from typing import Any

from iou_audit.progress import Progress, make_progress
from iou_audit.shards.adapters import AUDITS, sharded_audit

#: Samples per part of a plain run that keeps its parts (``keep_parts=True``): an incremental
#: re-run reads again every part holding a changed sample, and each part costs one query and one
#: GridFS file (see the README's measured overhead).
DEFAULT_PART_SAMPLES = 500
#: Share of the progress bar the parts take (the merge and the write take the rest).
PARTS_SHARE = 0.8


def part_size_of(keep_parts: Any) -> int:
    """The samples per part ``keep_parts`` asks for: True -> ``DEFAULT_PART_SAMPLES``, an int -> itself.

    Example:
        >>> part_size_of(True), part_size_of(200)
        (500, 200)
        >>> part_size_of(0)
        Traceback (most recent call last):
        ...
        ValueError: keep_parts must be True or a number of samples per part >= 1, got 0
    """
    if keep_parts is True:
        return DEFAULT_PART_SAMPLES
    if isinstance(keep_parts, bool) or not isinstance(keep_parts, int) or keep_parts < 1:
        raise ValueError(f"keep_parts must be True or a number of samples per part >= 1, got {keep_parts!r}")
    return int(keep_parts)


def _slot(report: Progress, lo: float, hi: float) -> Progress:
    """Progress of one step, shown as the ``[lo, hi]`` stretch of ``report``."""
    return Progress(lambda fraction, label: report.report(lo + (hi - lo) * fraction, label))


def run_keeping_parts(samples, audit: str, config, audit_key: str, keep_parts: Any = True, progress: Any = None):
    """Run ``audit`` with ``config`` over ``samples`` in this process, part by part, keep the parts,
    store the run under ``audit_key``; returns the :class:`iou_audit.results.AuditResult`.

    A part that fails removes the plan and its parts (nothing is written, an earlier run under
    the key stays) and re-raises.
    """
    from iou_audit.shards.run import delete_plan, get_plan, merge_plan, plan_audit, run_shard

    if audit not in AUDITS:
        raise ValueError(f"audit {audit!r} cannot keep parts for incremental re-runs; audits that can: "
                         f"{sorted(AUDITS)}")
    spec = sharded_audit(audit)
    params = config.to_params()
    if spec.make_config(params) != config:  # the plan stores params; the merge must rebuild this config
        raise RuntimeError(f"{audit}: the stored parameters {params} do not rebuild the config {config}")
    size = part_size_of(keep_parts)
    n_parts = max(1, math.ceil(len(samples) / size))
    report = make_progress(progress, desc=audit)
    plan_id = plan_audit(samples, audit, audit_key, n_shards=n_parts, origin="plain", **params)
    try:
        shards = get_plan(plan_id)["shards"]
        for shard in shards:
            k = shard["index"]
            run_shard(samples, plan_id, k, progress=_slot(report, PARTS_SHARE * k / len(shards),
                                                          PARTS_SHARE * (k + 1) / len(shards)))
        return merge_plan(samples, plan_id, progress=report, keep_parts=True)
    except BaseException:
        delete_plan(plan_id)
        raise
