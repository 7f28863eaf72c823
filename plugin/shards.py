"""Operators of sharded audit runs (``iou_audit.shards``): plan and queue, one shard, the merge.

``run_sharded_audit`` plans the run and queues one delegated ``audit_shard`` operation per shard
(each runs on whichever ``fiftyone delegated launch`` worker takes it, and writes its own samples'
values under the running run); the last shard to finish queues one delegated
``merge_audit_shards``, which writes the rest of the run and marks it complete. ``merge_audit_shards`` can also
be run by hand (e.g. after re-running a failed shard with "Re-run" in the runs list).
"""
import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit import shards
from iou_audit.audits.agreement.audit import AgreementConfig
from iou_audit.audits.duplicates import DuplicatesConfig
from iou_audit.audits.predictions.audit import PredictionsConfig
from iou_audit.audits.splits.audit import SplitsConfig
from iou_audit.results import list_audits
from iou_audit.shards import incremental_status, rerun_changed

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    delegate_input,
    fields_list_input,
    label_field_input,
    label_fields,
    param,
    resolve_delegation,
)
from .agreement import FORM_OPTIONS as AGREEMENT_OPTIONS
from .duplicates import FORM_OPTIONS as DUPLICATES_OPTIONS
from .predictions import FORM_OPTIONS as PREDICTIONS_OPTIONS
from .splits import FORM_OPTIONS as SPLITS_OPTIONS

PLUGIN = "@iou-audit/iou-audit"
SHARD_URI = f"{PLUGIN}/audit_shard"
MERGE_URI = f"{PLUGIN}/merge_audit_shards"
#: audit -> (its config class, the form's config options)
FORMS = {
    "duplicates": (DuplicatesConfig, DUPLICATES_OPTIONS),
    "agreement": (AgreementConfig, AGREEMENT_OPTIONS),
    "predictions": (PredictionsConfig, PREDICTIONS_OPTIONS),
    "splits": (SplitsConfig, SPLITS_OPTIONS),
}
#: audit -> the form's field parameters (required, then optional)
FIELD_PARAMS = {"duplicates": ("label_field",), "agreement": ("label_fields",), "predictions": ("pred_field", "gt_field"),
                "splits": ("split_field",)}
OPTIONAL_PARAMS = {"splits": ("group_field", "label_field")}


def _field_inputs(inputs, ctx, audit: str) -> bool:
    if audit == "duplicates":
        return bool(label_field_input(inputs, ctx))
    if audit == "agreement":
        fields = label_fields(ctx)
        if fields:
            fields_list_input(inputs, "label_fields", fields, "Annotator fields")
        return bool(fields)
    if audit == "splits":
        inputs.str("split_field", default="split", required=True, label="Split field",
                   description="Sample field naming each sample's split")
        inputs.str("group_field", required=False, label="Group field",
                   description="Optional: sample field of group values (video, patient, scene)")
        label_field_input(inputs, ctx, label_types=(fo.Detections,), required=False, default="ground_truth",
                          description="Detections field for annotation leaks and drift")
        return True
    fields = label_field_input(inputs, ctx, "pred_field", "Predictions field", label_types=(fo.Detections,))
    if fields:
        label_field_input(inputs, ctx, "gt_field", "Ground-truth field", label_types=(fo.Detections,),
                          default="ground_truth")
    return bool(fields)


def audit_params(ctx, audit: str) -> dict:
    """The library parameters of ``audit`` from the form (fields + the config options)."""
    config_class, options = FORMS[audit]
    params = config_params(ctx, config_class, options)
    params.update({name: ctx.params[name] for name in FIELD_PARAMS[audit]})
    params.update({name: ctx.params[name] for name in OPTIONAL_PARAMS.get(audit, ()) if ctx.params.get(name)})
    return params


def queue(ctx, operator_uri: str, params: dict, label: str):
    """Queue ``operator_uri`` as a delegated operation on the same dataset, view and view target."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    request = {k: v for k, v in ctx.request_params.items() if k not in ("params", "delegated")}
    params = dict(params)
    if ctx.params.get("view_target") is not None:
        params["view_target"] = ctx.params["view_target"]
    request.update(params=params, delegated=True)
    doc = DelegatedOperationService().queue_operation(operator=operator_uri, label=label,
                                                      context=ExecutionContext(request_params=request))
    return str(doc.id)


class RunShardedAudit(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="run_sharded_audit",
            label="iou-audit: sharded audit on delegated workers",
            description="Split an audit into shards of samples, run them on the delegated workers in parallel, "
                        "merge them into one run (identical to a single-process run)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        radio = types.RadioGroup()
        for audit in FORMS:
            radio.add_choice(audit, label=audit)
        inputs.enum("audit", radio.values(), default="duplicates", required=True, label="Audit", view=radio)
        audit = param(ctx, "audit", "duplicates")
        if _field_inputs(inputs, ctx, audit):
            config_inputs(inputs, FORMS[audit][0], FORMS[audit][1])
            audit_key_input(inputs, default=audit)
            inputs.int("n_shards", default=2, min=1, required=True, label="Shards",
                       description="Shards of consecutive samples, each one delegated operation (use at least as "
                                   "many as workers)")
        ctx.target_view()
        return types.Property(inputs, view=types.View(label="Sharded audit"))

    def execute(self, ctx):
        audit = ctx.params["audit"]
        key = param(ctx, "audit_key", audit)
        # shard_writes (not in the form; default: the audit's, see iou_audit.shards.plan_audit): False makes
        # the merge write everything, True makes the shards write their samples' values (benchmarks)
        writes = ctx.params.get("shard_writes")
        plan_id = shards.plan_audit(ctx.target_view(), audit, key, n_shards=int(param(ctx, "n_shards", 2)),
                                    shard_writes=None if writes is None else bool(writes), **audit_params(ctx, audit))
        plan = shards.get_plan(plan_id)
        ops = [queue(ctx, SHARD_URI, {"plan_id": plan_id, "index": s["index"]},
                     f"iou-audit {audit} {key!r}: shard {s['index'] + 1}/{len(plan['shards'])}")
               for s in plan["shards"]]
        return {"plan_id": plan_id, "n_shards": len(ops), "operation_ids": ops}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("plan_id", label="Plan")
        outputs.int("n_shards", label="Shards queued (the last to finish queues the merge)")
        return types.Property(outputs)


class AuditShard(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_shard",
            label="iou-audit: one shard of a sharded audit",
            unlisted=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def execute(self, ctx):
        plan_id, index = ctx.params["plan_id"], int(ctx.params["index"])
        shard = shards.run_shard(ctx.target_view(), plan_id, index, progress=ctx)
        merge_op = None
        if shards.claim_merge(plan_id):  # this shard completed the plan: exactly one merge gets queued
            plan = shards.get_plan(plan_id)
            merge_op = queue(ctx, MERGE_URI, {"plan_id": plan_id},
                             f"iou-audit {plan['audit']} {plan['audit_key']!r}: merge {len(plan['shards'])} shards")
        return {"plan_id": plan_id, "index": index, "bytes": shard["bytes"], "seconds": shard["seconds"],
                "merge_operation_id": merge_op}


class MergeAuditShards(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="merge_audit_shards",
            label="iou-audit: merge a sharded audit",
            description="Combine the shards of a sharded audit into one run (refuses, naming them, while a shard "
                        "failed or has not run)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        plans = shards.list_plans(ctx.dataset) if ctx.dataset is not None else []
        if not plans:
            inputs.view("none", types.Warning(label="This dataset has no sharded audit plans")).invalid = True
            return types.Property(inputs)
        dropdown = types.DropdownView()
        for p in plans:
            done = sum(s["state"] == "done" for s in p["shards"])
            dropdown.add_choice(str(p["_id"]), label=f"{p['audit']} {p['audit_key']!r}",
                                description=f"{done}/{len(p['shards'])} shards done, merge: {p['merge']['state']}")
        inputs.enum("plan_id", dropdown.values(), default=str(plans[0]["_id"]), required=True, label="Plan",
                    view=dropdown)
        ctx.target_view()
        return types.Property(inputs, view=types.View(label="Merge a sharded audit"))

    def execute(self, ctx):
        result = shards.merge_plan(ctx.target_view(), ctx.params["plan_id"], progress=ctx)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"audit_key": result.audit_key, "n_findings": len(result.findings)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("audit_key", label="Audit key")
        outputs.int("n_findings", label="Findings")
        return types.Property(outputs)


class RerunChangedAudit(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="rerun_changed_audit",
            label="iou-audit: re-run an audit on its changed samples",
            description="Recompute only the parts holding samples modified, added or deleted since the run (a plain "
                        "run with 'Keep parts', or a sharded run); merge into the stored run (equal to a full re-run)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        keys = [k for k in (list_audits(ctx.dataset) if ctx.dataset is not None else [])
                if not incremental_status(ctx.dataset, k)]
        if not keys:
            inputs.view("none", types.Warning(
                label="No audit run on this dataset kept its parts",
                description="Run an audit with 'Keep parts for changed-only re-runs' (or as a sharded run) first")
            ).invalid = True
            return types.Property(inputs)
        dropdown = types.DropdownView()
        for key in keys:
            dropdown.add_choice(key, label=key)
        default = param(ctx, "audit_key")
        inputs.enum("audit_key", dropdown.values(), default=default if default in keys else keys[0], required=True,
                    label="Audit", view=dropdown,
                    description="Re-run on the view the run was made on; the parts of unchanged samples are reused")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Re-run on changed samples"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        result, info = rerun_changed(ctx.dataset, ctx.params["audit_key"], progress=ctx)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"audit_key": result.audit_key, "n_changed": info["n_changed"],
                "n_recomputed": info["n_recomputed"], "n_shards": info["n_shards"]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("audit_key", label="Audit key")
        outputs.int("n_changed", label="Samples changed since the run")
        outputs.int("n_recomputed", label="Parts recomputed")
        outputs.int("n_shards", label="Parts")
        return types.Property(outputs)


OPERATORS = [RunShardedAudit, AuditShard, MergeAuditShards, RerunChangedAudit]
