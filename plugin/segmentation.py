"""Operator ``audit_segmentation_agreement``: a thin form over the semantic-segmentation agreement
audit (``iou_audit.audits.segmentation``), for annotators' fields or a model's field against the
labels. The field dropdown offers Segmentation fields only; options come from the audit's config.
"""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.segmentation.agreement import KINDS, SegmentationAgreementConfig

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    fields_list_input,
    finish_audit,
    label_fields,
    metric_values,
    param,
    resolve_delegation,
    target_view,
)

SEGMENTATION_TYPES = (fo.Segmentation,)
OPTIONS = ("low_miou", "min_class_pixels", "regions_field", "min_region_pixels", "consensus_field",
           "heatmap_field", "boundary", "boundary_dilation", "resize", "batch_size", "workers")
METRICS = ("miou", "fwiou", "pixel_accuracy", "mean_image_miou", "alpha")


class AuditSegmentationAgreement(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_segmentation_agreement",
            label="iou-audit: segmentation agreement",
            description="Pixel agreement between Segmentation fields (annotators, or labels then a model): mIoU, "
                        "pixel accuracy, alpha; flag low-mIoU images, classes drawn in one field only, missing "
                        "masks",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target_view(ctx)  # opt in to the system view-target radio
        fields = label_fields(ctx, SEGMENTATION_TYPES)
        if len(fields) < 2:
            inputs.view("none", types.Warning(label="This dataset has fewer than two Segmentation fields")).invalid \
                = True
            return types.Property(inputs)
        fields_list_input(inputs, "fields", fields, "Segmentation fields",
                          "Two or more Segmentation fields (annotators, or labels then predictions); rows "
                          "of the confusion matrix are the earlier field")
        config_inputs(inputs, SegmentationAgreementConfig, OPTIONS)
        audit_key_input(inputs, "segmentation_agreement")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Segmentation agreement"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        from iou_audit.audits.segmentation import audit_segmentation_agreement

        key = param(ctx, "audit_key", "segmentation_agreement")
        result = audit_segmentation_agreement(
            target_view(ctx), list(ctx.params["fields"]), **config_params(ctx, SegmentationAgreementConfig, OPTIONS),
            audit_key=key, progress=ctx)
        return {**finish_audit(ctx, result, KINDS), **metric_values(result, METRICS)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {k: 0 for k in KINDS})
        outputs.float("miou", label="mIoU (summed confusion, mean over field pairs)")
        outputs.float("fwiou", label="Frequency-weighted IoU")
        outputs.float("pixel_accuracy", label="Pixel accuracy")
        outputs.float("mean_image_miou", label="Mean per-image mIoU")
        outputs.float("alpha", label="Krippendorff's alpha over pixels")
        return types.Property(outputs, view=types.View(label="Segmentation agreement audit"))


OPERATORS = [AuditSegmentationAgreement]
