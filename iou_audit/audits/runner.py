"""The one runner every audit goes through: progress, GC, the stored config, counts and the writes.

An audit's public function (``audit_duplicates`` ...) builds its frozen config (which validates
every parameter before anything is read), then calls :func:`run_audit` with a ``work`` function
that reads its label tables and runs its pure compute, returning an
:class:`iou_audit.audits.base.AuditOutput`. The runner then builds the
:class:`iou_audit.results.AuditResult` and, when ``save``, hands every write (label values, tags,
sample values, new fields such as a consensus, saved views) to one ``save_audit`` call, which
validates all of it before it writes anything and records all of it in the run's manifest.
"""
from __future__ import annotations

from typing import Any, Callable

from iou_audit.audits.base import AuditConfig, AuditOutput
from iou_audit.malloc import fix_mmap_threshold
from iou_audit.progress import Progress, make_progress
from iou_audit.results import AuditResult
from iou_audit.results.runs import check_audit_key, save_audit
from iou_audit.table.read import _gc_paused

Work = Callable[[Any, AuditConfig, Progress], AuditOutput]


def run_audit(audit: str, samples, config: AuditConfig, work: Work, audit_key: str, save: bool = True,
              progress: Any = None, keep_parts: Any = False, _plan_id=None) -> AuditResult:
    """Run ``work(samples, config, progress)`` and, when ``save``, store its output under ``audit_key``.

    ``progress`` is anything :func:`iou_audit.progress.make_progress` accepts (None, True for a
    tqdm bar, a callable ``(fraction, label)``, an operator context). ``keep_parts`` (True, or a
    number of samples per part) runs a shardable audit part by part in this process and keeps the
    parts, so :func:`iou_audit.rerun_changed` can later recompute only the changed samples' parts
    (``iou_audit.shards.plain``; ``work`` is not called, the audit's shard adapter computes the same
    output). A run saved without parts drops the parts kept for an earlier run under the key
    (``_plan_id``: the plan whose merge this save is, kept).
    """
    if keep_parts is not False and keep_parts is not None:
        if not save:
            raise ValueError("keep_parts=True needs save=True: the parts serve a stored run's incremental re-runs")
        check_audit_key(audit_key)
        from iou_audit.shards.plain import run_keeping_parts

        return run_keeping_parts(samples, audit, config, audit_key, keep_parts, progress)
    if save:
        check_audit_key(audit_key)  # before the (possibly long) compute, not after it
    report = make_progress(progress, desc=audit)
    fix_mmap_threshold()  # freed per-batch arrays go back to the OS (see iou_audit.malloc)
    # No reference cycles are made; a full collection over a big heap costs 0.1-0.3 s per audit.
    with _gc_paused():
        out = work(samples, config, report)
        params = {**config.to_params(), **out.config_extra}
        result = AuditResult(audit, audit_key, params, out.findings, out.tables, out.metrics)
        if save:
            report.report(0.9, "writing results")
            views = dict(out.views)
            if out.view_builder is not None:
                views.update(out.view_builder(samples, result))
            save_audit(samples, result, label_attributes=out.label_values, sample_fields=out.sample_values,
                       layout=out.layout, new_fields=out.new_fields, views=views,
                       label_batches=out.label_batches)
            from iou_audit.shards.run import drop_merged_plans

            drop_merged_plans(samples, audit_key, keep=_plan_id)  # their parts describe the replaced run
    report.close()
    return result
