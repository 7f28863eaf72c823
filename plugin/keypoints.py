"""Operators ``audit_keypoint_predictions``, ``audit_keypoint_agreement`` and
``audit_keypoint_duplicates``: thin forms over the keypoint audits (``iou_audit.audits.keypoints``).

The field dropdowns offer Keypoints fields only; the box audits' forms never offer them. The
skeleton (OKS sigmas) is a preset or an explicit list, as the CLI's ``--skeleton`` / ``--sigmas``.
"""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.keypoints.agreement import KINDS as AGREEMENT_KINDS
from iou_audit.audits.keypoints.agreement import KeypointAgreementConfig
from iou_audit.audits.keypoints.duplicates import KINDS as DUPLICATE_KINDS
from iou_audit.audits.keypoints.duplicates import KeypointDuplicatesConfig
from iou_audit.audits.keypoints.predictions import KINDS as PREDICTION_KINDS
from iou_audit.audits.keypoints.predictions import KeypointPredictionsConfig
from iou_audit.audits.keypoints.skeletons import SKELETONS, skeleton_params

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    fields_list_input,
    finish_audit,
    label_field_input,
    label_fields,
    metric_values,
    param,
    resolve_delegation,
    target_view,
)

KEYPOINT_TYPES = (fo.Keypoints,)
PREDICTION_OPTIONS = ("oks_thresh", "classwise", "score_attribute", "box_attribute", "area_attribute", "area_factor",
                      "area_ranges", "point_similarity", "point_confidence", "min_score")
AGREEMENT_OPTIONS = ("oks_thresh", "low_oks", "point_similarity", "classwise", "box_attribute", "area_attribute",
                     "area_factor", "min_score")
DUPLICATE_OPTIONS = ("oks_thresh", "same_label_only", "box_attribute", "area_attribute", "area_factor")
PREDICTION_METRICS = ("AP", "AP50", "AP75", "AR", "mean_matched_oks")
AGREEMENT_METRICS = ("mean_oks", "object_f1")


def skeleton_inputs(inputs: types.Object) -> None:
    """The skeleton preset (sigmas; CrowdPose also its box-area factor) and optional explicit sigmas."""
    dropdown = types.DropdownView()
    for name in SKELETONS:
        dropdown.add_choice(name, label=name)
    inputs.enum("skeleton", dropdown.values(), default=None, required=False, label="Skeleton",
                description="OKS sigmas of a known skeleton (empty: COCO's 17; crowdpose also applies its 0.53 "
                            "factor to the box attribute's boxes)", view=dropdown)
    inputs.str("sigmas", default=None, required=False, label="Sigmas",
               description="Optional: per-keypoint OKS sigmas, comma-separated, one per point (wins over the "
                           "skeleton's)")


def audit_params(ctx, config_class, names) -> dict:
    """The library call's keyword arguments: the form's config values plus the skeleton's."""
    text = param(ctx, "sigmas", "")
    sigmas = None
    if str(text).strip():
        try:
            sigmas = [float(s) for s in str(text).replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"sigmas must be numbers separated by commas, got {text!r}") from None
    return skeleton_params(config_params(ctx, config_class, names), param(ctx, "skeleton"), sigmas)


class AuditKeypointPredictions(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_keypoint_predictions",
            label="iou-audit: pose model versus keypoint labels",
            description="COCO keypoint AP/AR on OKS, and keypoint label errors from a pose model's predictions "
                        "(missing/extra/mislocated keypoints, left-right swaps, missing/spurious skeletons)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target_view(ctx)  # opt in to the system view-target radio
        present = label_fields(ctx, KEYPOINT_TYPES)
        guess = next((f for f in ("predictions", "pose_model") if f in present), None)
        fields = label_field_input(inputs, ctx, "pred_field", "Predictions field",
                                   "Keypoints field with the model's predictions", label_types=KEYPOINT_TYPES,
                                   default=guess)
        if fields:
            label_field_input(inputs, ctx, "gt_field", "Ground-truth field", "Keypoints field with the labels",
                              label_types=KEYPOINT_TYPES, default="ground_truth")
            skeleton_inputs(inputs)
            config_inputs(inputs, KeypointPredictionsConfig, PREDICTION_OPTIONS)
            audit_key_input(inputs, "keypoint_predictions")
            delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Pose model versus keypoint labels"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        from iou_audit.audits.keypoints import audit_keypoint_predictions

        key = param(ctx, "audit_key", "keypoint_predictions")
        result = audit_keypoint_predictions(
            target_view(ctx), ctx.params["pred_field"], param(ctx, "gt_field", "ground_truth"),
            **audit_params(ctx, KeypointPredictionsConfig, PREDICTION_OPTIONS), audit_key=key, progress=ctx)
        return {**finish_audit(ctx, result, PREDICTION_KINDS), **metric_values(result, PREDICTION_METRICS)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {k: 0 for k in PREDICTION_KINDS})
        for name in PREDICTION_METRICS:
            outputs.float(name, label=name)
        return types.Property(outputs, view=types.View(label="Keypoint predictions audit"))


class AuditKeypointAgreement(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_keypoint_agreement",
            label="iou-audit: keypoint annotator agreement",
            description="Match annotators' skeletons on OKS; flag unmatched and low-OKS skeletons, disagreeing "
                        "keypoints and visibility, left-right swaps",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target_view(ctx)  # opt in to the system view-target radio
        fields = label_fields(ctx, KEYPOINT_TYPES)
        if len(fields) < 2:
            inputs.view("none", types.Warning(label="This dataset has fewer than two Keypoints fields")).invalid = True
            return types.Property(inputs)
        fields_list_input(inputs, "label_fields", fields, "Annotator fields",
                          "Two or more Keypoints fields, one per annotator")
        skeleton_inputs(inputs)
        config_inputs(inputs, KeypointAgreementConfig, AGREEMENT_OPTIONS)
        audit_key_input(inputs, "keypoint_agreement")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Keypoint annotator agreement"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        from iou_audit.audits.keypoints import audit_keypoint_agreement

        key = param(ctx, "audit_key", "keypoint_agreement")
        result = audit_keypoint_agreement(
            target_view(ctx), ctx.params["label_fields"],
            **audit_params(ctx, KeypointAgreementConfig, AGREEMENT_OPTIONS), audit_key=key, progress=ctx)
        return {**finish_audit(ctx, result, AGREEMENT_KINDS), **metric_values(result, AGREEMENT_METRICS)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {k: 0 for k in AGREEMENT_KINDS})
        outputs.float("mean_oks", label="Mean OKS of matched skeletons")
        outputs.float("object_f1", label="Object F1 (all field pairs)")
        return types.Property(outputs, view=types.View(label="Keypoint agreement audit"))


class AuditKeypointDuplicates(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_keypoint_duplicates",
            label="iou-audit: duplicate skeletons",
            description="Flag same-class skeletons of an image drawn twice (symmetric OKS above a threshold)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target_view(ctx)  # opt in to the system view-target radio
        fields = label_field_input(inputs, ctx, "field", "Keypoints field", "Keypoints field to check",
                                   label_types=KEYPOINT_TYPES, default="ground_truth")
        if fields:
            skeleton_inputs(inputs)
            config_inputs(inputs, KeypointDuplicatesConfig, DUPLICATE_OPTIONS)
            audit_key_input(inputs, "keypoint_duplicates")
            delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Duplicate skeletons"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        from iou_audit.audits.keypoints import audit_keypoint_duplicates

        key = param(ctx, "audit_key", "keypoint_duplicates")
        result = audit_keypoint_duplicates(
            target_view(ctx), ctx.params["field"],
            **audit_params(ctx, KeypointDuplicatesConfig, DUPLICATE_OPTIONS), audit_key=key, progress=ctx)
        return finish_audit(ctx, result, DUPLICATE_KINDS)

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {k: 0 for k in DUPLICATE_KINDS})
        return types.Property(outputs, view=types.View(label="Duplicate skeletons audit"))


OPERATORS = [AuditKeypointPredictions, AuditKeypointAgreement, AuditKeypointDuplicates]
