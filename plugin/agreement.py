"""Operator ``audit_agreement``: multi-annotator agreement over the chosen label fields."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.agreement import audit_agreement
from iou_audit.audits.agreement.audit import KINDS, AgreementConfig

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    fields_list_input,
    finish_audit,
    keep_parts_input,
    keep_parts_param,
    label_fields,
    param,
    resolve_delegation,
    target_view,
)

#: the generic inputs of the form, in order (the label fields are a multi-select of the schema)
FORM_OPTIONS = ("annotator_attr", "iou_thresh", "low_iou", "method", "compute_map", "consensus_field",
                "coverage_field")
# Saved view shown after an immediate run: first kind with findings (save_audit names it <key>-<kind>).
VIEW_PRIORITY = ("missing_in_annotator", "class_conflict", "low_agreement", "extra_in_annotator")


class AuditAgreement(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_agreement",
            label="iou-audit: multi-annotator agreement",
            description="Match several annotators' labels, score their agreement, flag disagreements, "
                        "optionally write consensus labels",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = label_fields(ctx)
        if not fields:
            inputs.view("none", types.Warning(label="This dataset has no Detections or Polylines field")).invalid = True
            return types.Property(inputs)
        fields_list_input(inputs, "label_fields", fields, "Annotator fields",
                          "One label field per annotator (or one field plus the annotator attribute)")
        config_inputs(inputs, AgreementConfig, FORM_OPTIONS)
        audit_key_input(inputs, default="agreement")
        keep_parts_input(inputs)
        delegate_input(inputs)
        target_view(ctx)  # opt in to the system view-target radio
        return types.Property(inputs, view=types.View(label="Multi-annotator agreement"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        key = param(ctx, "audit_key", "agreement")
        fields = ctx.params["label_fields"]
        result = audit_agreement(
            target_view(ctx),
            fields[0] if isinstance(fields, (list, tuple)) and len(fields) == 1 else fields,
            **config_params(ctx, AgreementConfig, FORM_OPTIONS),
            audit_key=key,
            progress=ctx,
            keep_parts=keep_parts_param(ctx),
        )
        m = result.metrics
        return {**finish_audit(ctx, result, KINDS, VIEW_PRIORITY),
                "alpha": float(m["alpha_nominal"]), "f1": float(m["f1"]), "map": float(m.get("map", float("nan")))}

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {kind: 0 for kind in KINDS})
        outputs.float("alpha", label="Krippendorff's alpha (nominal)")
        outputs.float("f1", label="Matching F1 (all annotator pairs)")
        outputs.float("map", label="Inter-annotator mAP@[.5:.95]")
        return types.Property(outputs, view=types.View(label="Agreement audit"))


OPERATORS = [AuditAgreement]
