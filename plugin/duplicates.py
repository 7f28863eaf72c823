"""Operators ``audit_duplicates`` (run the duplicate audit) and ``delete_audit`` (remove any audit)."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.duplicates import KINDS, DuplicatesConfig, audit_duplicates
from iou_audit.results import audit_info, delete_audit, list_audits

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    finish_audit,
    keep_parts_input,
    keep_parts_param,
    label_field_input,
    param,
    resolve_delegation,
    target_view,
)

FORM_OPTIONS = ("iou_thresh", "conflict_iou", "contain_ios", "geometry")

# Saved view shown after an immediate run, first kind that has findings (save_audit names it <key>-<kind>).
VIEW_PRIORITY = ("duplicate", "class_conflict", "contained", "degenerate_box", "out_of_bounds")


class AuditDuplicates(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_duplicates",
            label="iou-audit: duplicate and degenerate labels",
            description="Flag duplicate, class-conflicting, contained, degenerate and out-of-bounds labels",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = label_field_input(inputs, ctx, description="Detections (boxes or instance masks) or "
                                   "Polylines (filled polygons) field to audit")
        if fields:
            config_inputs(inputs, DuplicatesConfig, FORM_OPTIONS)
            audit_key_input(inputs, default="duplicates")
            keep_parts_input(inputs)
            delegate_input(inputs)
        target_view(ctx)  # opt in to the system view-target radio
        return types.Property(inputs, view=types.View(label="Duplicate and degenerate labels"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        key = param(ctx, "audit_key", "duplicates")
        result = audit_duplicates(
            target_view(ctx),
            ctx.params["label_field"],
            **config_params(ctx, DuplicatesConfig, FORM_OPTIONS),
            audit_key=key,
            progress=ctx,
            keep_parts=keep_parts_param(ctx),
        )
        return finish_audit(ctx, result, KINDS, VIEW_PRIORITY)

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {kind: 0 for kind in KINDS})
        return types.Property(outputs, view=types.View(label="Duplicate audit"))


class DeleteAudit(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_audit",
            label="iou-audit: delete an audit",
            description="Remove exactly what an audit wrote (tags, attributes, counts, saved views, run)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        keys = list_audits(ctx.dataset) if ctx.dataset is not None else []
        if not keys:
            inputs.view("none", types.Warning(label="This dataset has no iou-audit runs")).invalid = True
            return types.Property(inputs)
        dropdown = types.DropdownView()
        for key in keys:
            info = audit_info(ctx.dataset, key)
            dropdown.add_choice(key, label=key, description=f"{info['audit']}: {sum(info['counts'].values())} findings")
        inputs.enum("audit_key", dropdown.values(), required=True, label="Audit", view=dropdown)
        return types.Property(inputs, view=types.View(label="Delete an audit"))

    def execute(self, ctx):
        key = ctx.params["audit_key"]
        manifest = delete_audit(ctx.dataset, key)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"audit_key": key, "n_saved_views": len(manifest.get("saved_views", []))}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("audit_key", label="Deleted audit")
        outputs.int("n_saved_views", label="Saved views removed")
        return types.Property(outputs)


OPERATORS = [AuditDuplicates, DeleteAudit]
