"""Operator ``audit_splits``: leakage between train/val/test and drift, splits from a field or tags."""
import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.splits import KINDS, SplitsConfig, audit_splits

from ._forms import (
    audit_key_input,
    config_inputs,
    config_params,
    counts_output,
    delegate_input,
    finish_audit,
    keep_parts_input,
    keep_parts_param,
    param,
    resolve_delegation,
    target_view,
)

FORM_OPTIONS = ("near_threshold", "annotation_iou", "shifted", "transformed")

# Saved view shown after an immediate run: the first leak kind that has findings.
VIEW_PRIORITY = ("leak_exact", "leak_near", "leak_annotation", "leak_group", "split_drift")
SCALAR_FIELD_TYPES = (fo.StringField, fo.IntField, fo.BooleanField)


def _scalar_fields(ctx) -> list[str]:
    schema = ctx.dataset.get_field_schema() if ctx.dataset is not None else {}
    return sorted(n for n, f in schema.items()
                  if isinstance(f, SCALAR_FIELD_TYPES) and n not in ("id", "filepath") and not n.startswith("_"))


def _vector_fields(ctx) -> list[str]:
    schema = ctx.dataset.get_field_schema() if ctx.dataset is not None else {}
    return sorted(n for n, f in schema.items() if isinstance(f, (fo.VectorField, fo.ArrayField, fo.ListField))
                  and n != "tags" and not isinstance(getattr(f, "field", None), fo.StringField))


def _dropdown(inputs, name, choices, label, description, required=False, default=None):
    dd = types.DropdownView()
    for c in choices:
        dd.add_choice(c, label=c)
    inputs.enum(name, dd.values(), default=default, required=required, label=label, description=description,
                view=dd)


class AuditSplits(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="audit_splits",
            label="iou-audit: split leakage and drift",
            description="Find the same or near-identical images, label sets or groups in two splits, and "
            "drift in classes, box sizes and objects per image between splits",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        radio = types.RadioGroup()
        radio.add_choice("field", label="A sample field")
        radio.add_choice("tags", label="Sample tags")
        inputs.enum("split_source", radio.values(), default="field", required=True, label="Splits come from",
                    view=radio)
        if param(ctx, "split_source", "field") == "field":
            fields = _scalar_fields(ctx)
            if not fields:
                inputs.view("no_field", types.Warning(label="No string/int sample field to read splits from")).invalid = True
            else:
                _dropdown(inputs, "split_field", fields, "Split field", "Sample field naming each sample's split",
                          required=True, default="split" if "split" in fields else fields[0])
        else:
            tags = sorted(ctx.dataset.distinct("tags")) if ctx.dataset is not None else []
            if len(tags) < 2:
                inputs.view("no_tags", types.Warning(label="The dataset needs at least two sample tags")).invalid = True
            else:
                inputs.list("split_tags", types.String(), required=True, label="Split tags",
                            description="Sample tags that are splits (e.g. train, val, test)",
                            default=[t for t in ("train", "val", "test") if t in tags] or None,
                            view=types.AutocompleteView(choices=[types.Choice(t, label=t) for t in tags]))
        _dropdown(inputs, "group_field", _scalar_fields(ctx), "Group field (optional)",
                  "Values (video, patient, document) that must not appear in two splits")
        _dropdown(inputs, "embeddings_field", _vector_fields(ctx), "Embeddings field (optional)",
                  "Existing embeddings for an extra cosine-distance near-duplicate check")
        detections = sorted(ctx.dataset.get_field_schema(embedded_doc_type=fo.Detections)) if ctx.dataset else []
        _dropdown(inputs, "label_field", detections, "Label field (optional)",
                  "Detections field for annotation leaks and drift",
                  default="ground_truth" if "ground_truth" in detections else (detections[0] if detections else None))
        config_inputs(inputs, SplitsConfig, FORM_OPTIONS)
        audit_key_input(inputs, default="splits")
        keep_parts_input(inputs)
        delegate_input(inputs)
        target_view(ctx)  # opt in to the system view-target radio
        return types.Property(inputs, view=types.View(label="Split leakage and drift"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        key = param(ctx, "audit_key", "splits")
        by_tags = param(ctx, "split_source", "field") == "tags"
        result = audit_splits(
            target_view(ctx),
            split_field=None if by_tags else ctx.params["split_field"],
            split_tags=list(ctx.params["split_tags"]) if by_tags else None,
            group_field=param(ctx, "group_field") or None,
            embeddings_field=param(ctx, "embeddings_field") or None,
            label_field=param(ctx, "label_field") or None,
            audit_key=key,
            **config_params(ctx, SplitsConfig, FORM_OPTIONS),
            progress=ctx,
            keep_parts=keep_parts_param(ctx),
        )
        return finish_audit(ctx, result, KINDS, VIEW_PRIORITY)

    def resolve_output(self, ctx):
        outputs = types.Object()
        counts_output(outputs, {kind: 0 for kind in KINDS})
        return types.Property(outputs, view=types.View(label="Split audit"))


OPERATORS = [AuditSplits]
