"""Form pieces shared by every iou-audit operator (imported as ``from ._forms import ...``).

Each helper adds one input to a ``types.Object`` so that all operators look and behave alike:
a label-field dropdown built from the dataset schema, an audit-key text box, a "delegate" switch,
and the system view-target radio (``ctx.target_view()``). The module name starts with ``_`` so
``plugin/__init__.py`` does not look for ``OPERATORS`` in it.
"""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators.types as types

# Label types an audit can read (iou_audit.table reads Detections and Polylines fields).
LABEL_LIST_TYPES = (fo.Detections, fo.Polylines)


def label_fields(ctx, label_types=LABEL_LIST_TYPES) -> list[str]:
    """Sorted names of the dataset's top-level fields whose label type is one of ``label_types``."""
    if ctx.dataset is None:
        return []
    names: set[str] = set()
    for label_type in label_types:
        names.update(ctx.dataset.get_field_schema(embedded_doc_type=label_type))
    return sorted(names)


def label_field_input(
    inputs: types.Object,
    ctx,
    name: str = "label_field",
    label: str = "Label field",
    description: str = "Detections or Polylines field to audit",
    label_types=LABEL_LIST_TYPES,
    default: str | None = None,
    required: bool = True,
) -> list[str]:
    """Add a dropdown of the label fields found in the schema; return the choices.

    When the dataset has no such field, a warning is shown and the form is marked invalid, so
    the operator cannot be run with a field that does not exist.
    """
    fields = label_fields(ctx, label_types)
    if not fields:
        kinds = " or ".join(t.__name__ for t in label_types)
        warning = inputs.view(f"{name}_missing", types.Warning(label=f"This dataset has no {kinds} field"))
        warning.invalid = True
        return []
    dropdown = types.DropdownView()
    for field in fields:
        dropdown.add_choice(field, label=field)
    if default not in fields:
        default = fields[0] if required else None
    inputs.enum(name, dropdown.values(), default=default, required=required, label=label,
                description=description, view=dropdown)
    return fields


def audit_key_input(inputs: types.Object, default: str, description: str | None = None) -> None:
    """Add the audit-key text box (tags ``<key>:<kind>``, attributes ``<key>_<attr>``, one run)."""
    inputs.str(
        "audit_key",
        default=default,
        required=True,
        label="Audit key",
        description=description
        or "Name of this audit run; re-running with the same key replaces its previous results",
    )


def config_inputs(inputs: types.Object, config_class, names) -> None:
    """Add the inputs of the named parameters of an audit's config dataclass: numbers with their
    bounds, choices as radio groups, booleans as checkboxes, optional names as text boxes; defaults,
    labels and help come from the config (defined once in the library)."""
    import dataclasses

    by_name = {f.name: f for f in dataclasses.fields(config_class)}
    for name in names:
        f = by_name[name]
        meta, default = f.metadata, f.default
        label = meta.get("label") or name.replace("_", " ").capitalize()
        help_text = meta.get("help", "")
        if meta.get("choices"):
            radio = types.RadioGroup()
            for choice in meta["choices"]:
                radio.add_choice(choice, label=str(choice))
            inputs.enum(name, radio.values(), default=default, label=label, description=help_text, view=radio)
        elif isinstance(default, bool):
            inputs.bool(name, default=default, label=label, description=help_text)
        elif meta.get("kind") in ("name", "new_field"):
            inputs.str(name, default=default, required=False, label=label, description="Optional: " + help_text)
        elif isinstance(default, int):
            inputs.int(name, default=default, min=meta.get("low"), max=meta.get("high"), label=label,
                       description=help_text)
        else:
            inputs.float(name, default=default, min=meta.get("low"), max=meta.get("high"), label=label,
                         description=help_text)


def config_params(ctx, config_class, names) -> dict:
    """``{name: value}`` of the named config parameters from ``ctx.params`` (absent, None or "" -> the
    config's default), for the library call."""
    defaults = config_class.defaults()
    out = {}
    for name in names:
        value = ctx.params.get(name)
        out[name] = defaults[name] if value is None or value == "" else value
    return out


def fields_list_input(inputs: types.Object, name: str, fields: list[str], label: str,
                      description: str | None = None) -> None:
    """A required multi-select of ``fields`` (the first two preselected): one field per annotator."""
    inputs.list(name, types.String(), default=fields[:2], required=True, label=label, description=description,
                view=types.DropdownView(multiple=True, choices=[types.Choice(f, label=f) for f in fields]))


def metric_values(result, names) -> dict:
    """``{name: float or None}`` of the run's named metrics, for an operator's output."""
    values = {name: result.metrics.get(name) for name in names}
    return {name: None if v is None else float(v) for name, v in values.items()}


def delegate_input(inputs: types.Object, default: bool = False) -> None:
    """Add the "run in background" switch read by :func:`resolve_delegation`."""
    inputs.bool(
        "delegate",
        default=default,
        label="Delegate",
        description="Run as a delegated (background) operation; needs `fiftyone delegated launch`",
        view=types.CheckboxView(),
    )


def keep_parts_input(inputs: types.Object, default: bool = False) -> None:
    """Add the "keep parts" switch: the run keeps its parts, so the review panel can later re-run it
    on the changed samples only (``keep_parts=True`` of the library call, ``iou_audit.shards.plain``)."""
    inputs.bool(
        "keep_parts",
        default=default,
        label="Keep parts for changed-only re-runs",
        description="Store the run's per-part statistics (0.25 MB per 1,000 samples for duplicates, about 15 MB "
                    "for agreement) so a later re-run recomputes only the parts whose samples changed (same result "
                    "as a full re-run)",
        view=types.CheckboxView(),
    )


def keep_parts_param(ctx) -> bool:
    """The form's "keep parts" switch as the library's ``keep_parts`` argument."""
    return bool(ctx.params.get("keep_parts", False))


def resolve_delegation(ctx) -> bool | None:
    """True forces delegation when the user asked for it; None defers to the App's choice.

    Never False: returning False forbids delegation even when requested programmatically.
    """
    return True if ctx.params.get("delegate", False) else None


def target_view(ctx):
    """The collection to audit (Dataset / Current view / Selection, from the system radio).

    Calling it in ``resolve_input`` is what makes FiftyOne show the view-target radio.
    """
    return ctx.target_view()


def param(ctx, name: str, default=None):
    """``ctx.params[name]`` with a default when the form omitted it or sent None."""
    value = ctx.params.get(name, default)
    return default if value is None else value


def finish_in_app(ctx, view_name: str | None = None) -> None:
    """After an immediate run: reload the dataset in the App and show the most useful saved view."""
    if ctx.delegated:
        return
    ctx.ops.reload_dataset()
    if view_name and ctx.dataset.has_saved_view(view_name):
        ctx.ops.set_view(name=view_name)


def counts_output(outputs: types.Object, counts: dict[str, int], title: str = "Findings") -> None:
    """Show one integer per finding kind in resolve_output."""
    outputs.str("audit_key", label="Audit key")
    for kind in counts:
        outputs.int(f"n_{kind}", label=f"{title}: {kind}")


def finish_audit(ctx, result, kinds, view_priority=None) -> dict:
    """End an audit operator: show the first non-empty kind's saved view, return counts per kind.

    ``view_priority`` orders the kinds whose saved view is worth opening first (default: the kind
    with the most findings). Returns ``{"audit_key": key, "n_<kind>": count, ...}`` for resolve_output.
    """
    counts = result.counts()
    key = result.audit_key
    if view_priority is None:
        view_priority = sorted(counts, key=counts.get, reverse=True)
    shown = next((k for k in view_priority if counts.get(k)), None)
    finish_in_app(ctx, f"{key}-{shown}" if shown else None)
    return {"audit_key": key, **{f"n_{kind}": int(counts.get(kind, 0)) for kind in kinds}}
