"""Operator ``audit_label_prior``: the labels-only prior (a form over ``iou_audit.audits.prior``)."""
import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.prior import AUDIT, KINDS, LabelPriorConfig, audit_label_prior

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    finish_audit,
    label_field_input,
    param,
    resolve_delegation,
    target_view,
)

FORM_OPTIONS = ("shrinkage", "dup_iou", "min_score")


class AuditLabelPrior(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_label_prior",
            label="iou-audit: labels-only prior",
            description="Score every label by how unlike its class it is: size/aspect outliers, overlaps",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = label_field_input(inputs, ctx, description="Detections field to score",
                                   label_types=(fo.Detections,), default="ground_truth")
        if fields:
            config_inputs(inputs, LabelPriorConfig, FORM_OPTIONS)
            audit_key_input(inputs, default=AUDIT)
            delegate_input(inputs)
        target_view(ctx)
        return types.Property(inputs, view=types.View(label="Labels-only prior"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        result = audit_label_prior(target_view(ctx), ctx.params["label_field"],
                                   **config_params(ctx, LabelPriorConfig, FORM_OPTIONS),
                                   audit_key=param(ctx, "audit_key", AUDIT), progress=ctx)
        return finish_audit(ctx, result, KINDS, KINDS)

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {kind: 0 for kind in KINDS})
        return types.Property(outputs, view=types.View(label="Labels-only prior"))


OPERATORS = (AuditLabelPrior,)
