"""Operator ``audit_predictions``: a thin form over ``iou_audit.audit_predictions``."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.predictions.audit import PredictionsConfig
from iou_audit.audits.predictions.findings import KINDS

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
    label_fields,
    param,
    resolve_delegation,
    target_view,
)

FORM_OPTIONS = ("iou_thresh", "method", "classwise", "geometry", "min_score")


class AuditPredictions(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_predictions",
            label="iou-audit: model versus labels",
            description="Find label errors from a model's predictions (missing, spurious, mislocated, "
            "class swaps), with COCO-exact matching, metrics and TIDE",
            dynamic=True,
            allow_delegated_execution=True,
            allow_immediate_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target_view(ctx)
        present = label_fields(ctx, (fo.Detections,))
        guess = next((f for f in ("sim_predictions", "predictions") if f in present), None)
        fields = label_field_input(inputs, ctx, "pred_field", "Predictions field",
                                   "Detections field with the model's predictions (with confidences)",
                                   label_types=(fo.Detections,), default=guess)
        if fields:
            label_field_input(inputs, ctx, "gt_field", "Ground-truth field", "Detections field with the labels",
                              label_types=(fo.Detections,), default="ground_truth")
        config_inputs(inputs, PredictionsConfig, FORM_OPTIONS)
        audit_key_input(inputs, "predictions")
        keep_parts_input(inputs)
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Model versus labels"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        from iou_audit.audits.predictions.audit import audit_predictions

        samples = target_view(ctx)
        key = param(ctx, "audit_key", "predictions")
        result = audit_predictions(
            samples, ctx.params["pred_field"], param(ctx, "gt_field", "ground_truth"),
            **config_params(ctx, PredictionsConfig, FORM_OPTIONS), audit_key=key, progress=ctx,
            keep_parts=keep_parts_param(ctx),
        )
        out = finish_audit(ctx, result, KINDS)
        for name in ("AP", "AP50", "precision", "recall"):
            value = result.metrics.get(name)
            out[name] = None if value is None else float(value)
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {k: 0 for k in KINDS})
        for name in ("AP", "AP50", "precision", "recall"):
            outputs.float(name, label=name)
        return types.Property(outputs)


OPERATORS = [AuditPredictions]
