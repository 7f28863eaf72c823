"""Operator ``audit_agreement``: multi-annotator agreement over the chosen label fields."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.agreement import audit_agreement

from ._forms import (audit_key_input, counts_output, delegate_input, finish_audit, label_fields, param,
                     resolve_delegation, target_view, threshold_input)

KINDS = ("low_agreement", "missing_in_annotator", "extra_in_annotator", "class_conflict")
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
        inputs.list("label_fields", types.String(), default=fields[:2], required=True, label="Annotator fields",
                    description="One label field per annotator (or one field plus the annotator attribute)",
                    view=types.DropdownView(multiple=True, choices=[types.Choice(f, label=f) for f in fields]))
        inputs.str("annotator_attr", default=None, required=False, label="Annotator attribute",
                   description="Optional: label attribute naming the annotator when all share one field")
        threshold_input(inputs, "iou_thresh", 0.5, "Match IoU", "IoU needed for two annotators' labels to match")
        threshold_input(inputs, "low_iou", 0.75, "Low-agreement IoU",
                        "A label whose mean IoU with the other annotators is below this is flagged")
        inputs.str("consensus_field", default=None, required=False, label="Consensus field",
                   description="Optional: new field for the fused consensus labels")
        inputs.str("coverage_field", default=None, required=False, label="Coverage field",
                   description="Optional: per-sample list of the annotators who labelled it")
        audit_key_input(inputs, default="agreement")
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
            iou_thresh=float(param(ctx, "iou_thresh", 0.5)),
            low_iou=float(param(ctx, "low_iou", 0.75)),
            consensus_field=param(ctx, "consensus_field") or None,
            coverage_field=param(ctx, "coverage_field") or None,
            annotator_attr=param(ctx, "annotator_attr") or None,
            audit_key=key,
            progress=lambda fraction, label: ctx.set_progress(progress=fraction, label=label),
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
