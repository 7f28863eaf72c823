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
from iou_audit.progress import Progress, make_progress
from iou_audit.results import AuditResult
from iou_audit.results.runs import check_audit_key, save_audit
from iou_audit.table.read import _gc_paused

Work = Callable[[Any, AuditConfig, Progress], AuditOutput]


def run_audit(audit: str, samples, config: AuditConfig, work: Work, audit_key: str, save: bool = True,
              progress: Any = None) -> AuditResult:
    """Run ``work(samples, config, progress)`` and, when ``save``, store its output under ``audit_key``.

    ``progress`` is anything :func:`iou_audit.progress.make_progress` accepts (None, True for a
    tqdm bar, a callable ``(fraction, label)``, an operator context).
    """
    if save:
        check_audit_key(audit_key)  # before the (possibly long) compute, not after it
    report = make_progress(progress, desc=audit)
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
    report.close()
    return result
