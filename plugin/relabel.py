"""Operators of the relabel round trip (thin forms over ``iou_audit.relabel``): export the relabel
queue, send it to an annotation backend, load the annotations back, apply / undo a recorded fix.

Every operator that takes a selection reads it the same way (:func:`_selection`): the target view
(Dataset / Current view / Selected samples), one label field, and which labels: the confirmed
findings of the review queue, those carrying finding tags (all of them or the chosen ones), the
labels selected in the App, or explicit ids.
"""
import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.relabel import (
    FIX_ACTIONS,
    FORMATS,
    apply_fix,
    check_backend,
    configured_backends,
    export_relabel_queue,
    finding_tags,
    list_fixes,
    load_relabel_annotations,
    plan_fix,
    relabel_runs,
    select_confirmed,
    select_labels,
    send_to_annotation,
    undo_fix,
)
from iou_audit.relabel.annotate import how_to_configure

from ._forms import delegate_input, label_field_input, param, resolve_delegation, target_view

# which labels of the field a selection holds (form choice -> label)
SOURCES = {
    "confirmed": "Confirmed findings (review queue)",
    "findings": "Labels with finding tags",
    "selected": "Labels selected in the App",
    "ids": "Label ids",
}
ACTION_LABELS = {
    "delete_duplicate": "Delete this duplicate",
    "consensus_class": "Set the class to the consensus class",
    "consensus_box": "Replace the box with the consensus box",
}
DETECTIONS = (fo.Detections, fo.Polylines)


def _selection_inputs(inputs, ctx) -> str | None:
    """Field, source of labels and (per source) tags or ids; returns the chosen field."""
    fields = label_field_input(inputs, ctx, description="Label field whose flagged labels to relabel",
                               label_types=DETECTIONS)
    if not fields:
        return None
    field = ctx.params.get("label_field") or fields[0]
    radio = types.RadioGroup()
    for value, label in SOURCES.items():
        radio.add_choice(value, label=label)
    default = "selected" if ctx.selected_labels else "findings"
    inputs.enum("source", radio.values(), default=default, label="Which labels", view=radio)
    source = ctx.params.get("source", default)
    if source == "findings":
        tags = finding_tags(ctx.dataset, field)
        if not tags:
            inputs.view("no_tags", types.Warning(label=f"No finding tags on {field!r}: run an audit first")).invalid = True
        else:
            inputs.list("tags", types.String(), default=None, label="Finding tags (empty: all)",
                        description=", ".join(tags))
    elif source == "confirmed":
        inputs.view("confirmed_note", types.Notice(label="The labels of this field whose queue row is marked "
                                                   "confirmed (and unchanged since)"))
    elif source == "selected":
        n = sum(1 for lab in ctx.selected_labels if lab.get("field") == field)
        if not n:
            inputs.view("no_sel", types.Warning(label=f"No labels of {field!r} are selected in the App")).invalid = True
        else:
            inputs.view("n_sel", types.Notice(label=f"{n} selected label(s) of {field!r}"))
    else:
        inputs.list("label_ids", types.String(), required=True, label="Label ids")
    return field


def _user(ctx):
    """Who runs the operator when FiftyOne knows it (Enterprise users); None lets the library use the
    OS user of the server process."""
    u = getattr(ctx, "user", None)
    return (getattr(u, "email", None) or getattr(u, "name", None) or getattr(u, "id", None)) if u else None


def _selection(ctx):
    field, source = ctx.params["label_field"], param(ctx, "source", "findings")
    if source == "selected":
        ids = [lab["label_id"] for lab in ctx.selected_labels if lab.get("field") == field]
        if not ids:
            raise ValueError(f"no labels of field {field!r} are selected in the App")
        return select_labels(target_view(ctx), field, label_ids=ids)
    if source == "confirmed":
        return select_confirmed(target_view(ctx), field)
    if source == "ids":
        ids = ctx.params.get("label_ids") or []
        ids = [i.strip() for i in (ids.split(",") if isinstance(ids, str) else ids) if i and i.strip()]
        return select_labels(target_view(ctx), field, label_ids=ids)
    return select_labels(target_view(ctx), field, tags=ctx.params.get("tags") or None)


class ExportRelabelQueue(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="export_relabel_queue", label="iou-audit: export the relabel queue",
                                  description="Write the flagged labels' samples as COCO, CVAT or YOLO with the "
                                  "reasons, into a directory (nothing written outside it)",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if _selection_inputs(inputs, ctx):
            radio = types.RadioGroup()
            for name in FORMATS:
                radio.add_choice(name, label=name.upper())
            inputs.enum("format", radio.values(), default="coco", label="Format", view=radio)
            inputs.str("export_dir", required=True, label="Export directory",
                       description="Absolute path on the machine running FiftyOne; nothing is written outside it")
            inputs.bool("export_media", default=True, label="Copy the images")
            inputs.bool("only_flagged", default=False, label="Only the flagged labels",
                        description="Default: every label of the chosen samples, so the whole image is seen")
            delegate_input(inputs)
        target_view(ctx)
        return types.Property(inputs, view=types.View(label="Export the relabel queue"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        out = export_relabel_queue(_selection(ctx), ctx.params["export_dir"], format=param(ctx, "format", "coco"),
                                   export_media=bool(param(ctx, "export_media", True)),
                                   only_flagged=bool(param(ctx, "only_flagged", False)))
        return {k: out[k] for k in ("export_dir", "format", "n_samples", "n_labels", "n_flagged")}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("export_dir", label="Written to")
        for name, label in (("n_samples", "Samples"), ("n_labels", "Labels"), ("n_flagged", "Flagged labels")):
            outputs.int(name, label=label)
        return types.Property(outputs)


class SendToAnnotation(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="send_to_annotation", label="iou-audit: send the relabel queue to annotation",
                                  description="Upload the flagged labels (with why they are flagged) to the "
                                  "configured annotation backend", dynamic=True,
                                  allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        backends = configured_backends()
        if not backends:
            inputs.view("no_backend", types.Warning(label="No annotation backend configured",
                                                    description=how_to_configure(fo.annotation_config.default_backend,
                                                                                 ["credentials"]))).invalid = True
            return types.Property(inputs)
        if _selection_inputs(inputs, ctx):
            dropdown = types.DropdownView()
            for name in backends:
                dropdown.add_choice(name, label=name)
            default = fo.annotation_config.default_backend
            inputs.enum("backend", dropdown.values(), default=default if default in backends else backends[0],
                        label="Annotation backend", view=dropdown)
            inputs.str("anno_key", required=True, default="relabel", label="Annotation run key")
            inputs.bool("only_flagged", default=False, label="Only the flagged labels")
            inputs.bool("launch_editor", default=False, label="Open the editor")
            delegate_input(inputs)
        target_view(ctx)
        return types.Property(inputs, view=types.View(label="Send to annotation"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        backend = check_backend(ctx.params.get("backend"))
        sel = _selection(ctx)
        send_to_annotation(sel, ctx.params["anno_key"], backend=backend,
                           only_flagged=bool(param(ctx, "only_flagged", False)),
                           launch_editor=bool(param(ctx, "launch_editor", False)) and not ctx.delegated,
                           user=_user(ctx))
        return {"anno_key": ctx.params["anno_key"], "backend": backend, "n_samples": len(sel.samples),
                "n_flagged": len(sel)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("anno_key", label="Annotation run")
        outputs.str("backend", label="Backend")
        outputs.int("n_samples", label="Samples sent")
        outputs.int("n_flagged", label="Flagged labels")
        return types.Property(outputs)


class LoadRelabelAnnotations(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="load_relabel_annotations", label="iou-audit: load annotations",
                                  description="Merge the annotators' fixes of a relabel run back into the dataset",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        runs = relabel_runs(ctx.dataset) if ctx.dataset is not None else []
        if not runs:
            inputs.view("none", types.Warning(label="No annotation run sent by iou-audit on this dataset")).invalid = True
            return types.Property(inputs)
        dropdown = types.DropdownView()
        for r in runs:
            dropdown.add_choice(r["anno_key"], label=r["anno_key"],
                                description=f"{r['backend']}, {len(r['label_ids'])} flagged labels of {r['field']}, "
                                f"sent {r['sent_at']}" + (f", loaded {r['loaded_at']}" if r.get("loaded_at") else ""))
        inputs.enum("anno_key", dropdown.values(), default=runs[-1]["anno_key"], required=True,
                    label="Annotation run", view=dropdown)
        inputs.bool("cleanup", default=False, label="Delete the tasks from the backend afterwards")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Load annotations"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        out = load_relabel_annotations(ctx.dataset, ctx.params["anno_key"], cleanup=bool(param(ctx, "cleanup", False)),
                                       user=_user(ctx))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"anno_key": out["anno_key"], "n_fixed": out["n_fixed"], "n_deleted": len(out["deleted"]),
                "n_changed": len(out["changed"]), "n_unchanged": len(out["unchanged"]),
                "n_marked_fixed": out["n_marked_fixed"]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("anno_key", label="Annotation run")
        for name, label in (("n_fixed", "Fixed findings"), ("n_deleted", "Deleted"), ("n_changed", "Changed"),
                            ("n_unchanged", "Unchanged"), ("n_marked_fixed", "Marked fixed in the review queue")):
            outputs.int(name, label=label)
        return types.Property(outputs)


class ApplyFix(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="apply_fix", label="iou-audit: apply a fix",
                                  description="Delete a flagged duplicate, or set a label's class or box to the "
                                  "annotators' consensus; recorded, undoable", dynamic=True,
                                  allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = label_field_input(inputs, ctx, label_types=DETECTIONS, description="Field of the label to fix")
        if not fields:
            return types.Property(inputs)
        field = ctx.params.get("label_field") or fields[0]
        selected = [lab["label_id"] for lab in ctx.selected_labels if lab.get("field") == field]
        inputs.str("label_id", required=True, default=selected[0] if len(selected) == 1 else None, label="Label id",
                   description="Default: the one label selected in the App")
        radio = types.RadioGroup()
        for action in FIX_ACTIONS:
            radio.add_choice(action, label=ACTION_LABELS[action])
        inputs.enum("action", radio.values(), default=FIX_ACTIONS[0], label="Fix", view=radio)
        label_id = ctx.params.get("label_id") or (selected[0] if len(selected) == 1 else None)
        action = ctx.params.get("action", FIX_ACTIONS[0])
        if label_id:
            try:
                plan = plan_fix(ctx.dataset, field, label_id, action)
            except ValueError as e:
                inputs.view("refused", types.Warning(label="This fix cannot be applied", description=str(e))).invalid = True
            else:
                inputs.view("plan", types.Notice(label=plan.description))
                # the label state shown: execute refuses if it changed before the click
                inputs.str("expected", default=plan.fingerprint, view=types.HiddenView())
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Apply a fix"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        plan = plan_fix(ctx.dataset, ctx.params["label_field"], ctx.params["label_id"], ctx.params["action"])
        rec = apply_fix(ctx.dataset, plan, user=_user(ctx), expected=ctx.params.get("expected") or None)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"fix_id": rec["fix_id"], "description": rec["description"]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("fix_id", label="Fix id (for Undo fix)")
        outputs.str("description", label="Applied")
        return types.Property(outputs)


class UndoFix(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="undo_fix", label="iou-audit: undo a fix",
                                  description="Restore the exact label a fix replaced or deleted", dynamic=True,
                                  allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        fixes = list_fixes(ctx.dataset) if ctx.dataset is not None else []
        if not fixes:
            inputs.view("none", types.Warning(label="No fix recorded on this dataset")).invalid = True
            return types.Property(inputs)
        dropdown = types.DropdownView()
        for f in reversed(fixes):  # undone ones stay listed: choosing one says when and by whom
            state = "" if f["state"] == "applied" else f" (undone {f['undone_at']})"
            dropdown.add_choice(f["fix_id"], label=f"{f['applied_at']} {f['action']}{state}",
                                description=f"{f['description']} (by {f['user']})")
        applied = [f for f in fixes if f["state"] == "applied"]
        inputs.enum("fix_id", dropdown.values(), default=(applied or fixes)[-1]["fix_id"], required=True,
                    label="Fix", view=dropdown)
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Undo a fix"))

    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def execute(self, ctx):
        rec = undo_fix(ctx.dataset, ctx.params["fix_id"], user=_user(ctx))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"fix_id": rec["fix_id"], "label_id": rec["label_id"]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("fix_id", label="Undone fix")
        outputs.str("label_id", label="Restored label")
        return types.Property(outputs)


OPERATORS = [ExportRelabelQueue, SendToAnnotation, LoadRelabelAnnotations, ApplyFix, UndoFix]
