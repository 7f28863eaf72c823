"""Review operators: mark triage queue rows ``confirmed`` / ``not_an_error`` / ``fixed``, or clear a mark.

Thin forms over :mod:`iou_audit.review` (the queue, the decisions, their tags and counts):
- ``mark_selected_labels``: the labels selected in the App (``ctx.selected_labels``);
- ``mark_view_findings``: every queue row of the current view (optionally only some audits);
- ``mark_queue_row``: one queue row by id (the review panel's row action);
- ``clear_review_mark``: a row id, or the selected labels.
Each runs immediately or delegated; the reviewer is ``ctx.user`` when FiftyOne knows it.
"""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.review import REVIEW_STATES, clear_review, mark_review, triage
from iou_audit.review.states import DEFAULT_QUEUE_STATES

from ._forms import delegate_input, param, resolve_delegation

STATE_LABELS = {"confirmed": "Confirmed: a real error, relabel", "not_an_error": "Not an error: the label is right",
                "fixed": "Fixed"}
#: Queue rows the "current view" operator marks unless told otherwise: those without a valid decision.
UNREVIEWED = ("open", "changed_since_review")


def reviewer(ctx):
    """Who is deciding, when FiftyOne knows it (``ctx.user``: FiftyOne Enterprise; None otherwise)."""
    user = getattr(ctx, "user", None)
    if user is None:
        return None
    return getattr(user, "email", None) or getattr(user, "name", None) or getattr(user, "id", None)


def state_input(inputs, default="not_an_error"):
    radio = types.RadioGroup()
    for state in REVIEW_STATES:
        radio.add_choice(state, label=STATE_LABELS[state])
    inputs.enum("state", radio.values(), default=default, required=True, label="Decision", view=radio)


def _selected_labels(ctx) -> list[dict]:
    return [{"label_id": s["label_id"], "field": s["field"], "sample_id": s.get("sample_id")}
            for s in (ctx.selected_labels or [])]


def _done(ctx, n: int, what: str) -> dict:
    if not ctx.delegated:
        ctx.ops.reload_dataset()  # tags and counts changed
    return {"n": int(n), "what": what}


def _output(ctx, label):
    outputs = types.Object()
    outputs.int("n", label=label)
    outputs.str("what", label="What")
    return types.Property(outputs)


class _ReviewOperator(foo.Operator):
    def resolve_delegation(self, ctx):
        return resolve_delegation(ctx)

    def resolve_output(self, ctx):
        return _output(ctx, "Rows")


class MarkSelectedLabels(_ReviewOperator):
    @property
    def config(self):
        return foo.OperatorConfig(name="mark_selected_labels", label="iou-audit: mark the selected labels",
                                  description="Record a review decision on the labels selected in the App",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not ctx.selected_labels:
            inputs.view("none", types.Warning(label="Select labels in the grid or the sample modal first")).invalid = True
            return types.Property(inputs)
        inputs.view("count", types.Notice(label=f"{len(ctx.selected_labels)} selected label(s)"))
        state_input(inputs)
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Mark the selected labels"))

    def execute(self, ctx):
        labels = _selected_labels(ctx)
        if not labels:
            raise ValueError("no labels are selected: select labels in the App first")
        state = ctx.params["state"]
        return _done(ctx, mark_review(ctx.dataset, labels, state, user=reviewer(ctx)), f"selected labels -> {state}")


class MarkViewFindings(_ReviewOperator):
    @property
    def config(self):
        return foo.OperatorConfig(name="mark_view_findings", label="iou-audit: mark the current view's findings",
                                  description="Record a review decision on every triage queue row of the current view",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        from iou_audit.results import list_audits

        inputs = types.Object()
        keys = list_audits(ctx.dataset) if ctx.dataset is not None else []
        if not keys:
            inputs.view("none", types.Warning(label="This dataset has no iou-audit runs")).invalid = True
            return types.Property(inputs)
        state_input(inputs)
        inputs.list("audit_keys", types.String(), default=None, required=False, label="Audits",
                    description=f"Only the findings of these audits (empty: all of {', '.join(keys)})",
                    view=types.AutocompleteView(choices=[types.Choice(k, label=k) for k in keys]))
        inputs.bool("reviewed_too", default=False, label="Also re-mark reviewed rows",
                    description="Also overwrite rows that already have a decision valid for their label")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Mark the current view's findings"))

    def execute(self, ctx):
        states = DEFAULT_QUEUE_STATES + ("not_an_error", "fixed") if param(ctx, "reviewed_too", False) else UNREVIEWED
        queue = triage(ctx.view, audit_keys=param(ctx, "audit_keys") or None, states=states)
        state = ctx.params["state"]
        n = mark_review(ctx.dataset, list(queue["row_id"]), state, user=reviewer(ctx)) if len(queue) else 0
        return _done(ctx, n, f"queue rows of the view -> {state}")


class MarkQueueRow(_ReviewOperator):
    @property
    def config(self):
        return foo.OperatorConfig(name="mark_queue_row", label="iou-audit: mark a triage queue row",
                                  description="Record a review decision on one queue row (label id or row id)",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("row_id", required=True, label="Queue row id",
                   description="a label id, 'missing:<field>:<label id>', a sample id or '<id>+<id>'")
        state_input(inputs)
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Mark a queue row"))

    def execute(self, ctx):
        state = ctx.params["state"]
        row = str(ctx.params["row_id"]).strip()
        return _done(ctx, mark_review(ctx.dataset, [row], state, user=reviewer(ctx)), f"{row} -> {state}")


class ClearReviewMark(_ReviewOperator):
    @property
    def config(self):
        return foo.OperatorConfig(name="clear_review_mark", label="iou-audit: clear a review mark",
                                  description="Remove the review decision of a queue row or of the selected labels",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(ctx.selected_labels or [])
        inputs.str("row_id", required=not n, label="Queue row id",
                   description=f"empty: the {n} selected label(s)" if n else "a label id or queue row id")
        delegate_input(inputs)
        return types.Property(inputs, view=types.View(label="Clear a review mark"))

    def execute(self, ctx):
        row = (param(ctx, "row_id", "") or "").strip()
        ids = [row] if row else _selected_labels(ctx)
        if not ids:
            raise ValueError("give a queue row id or select labels in the App")
        return _done(ctx, clear_review(ctx.dataset, ids), "cleared " + (row or "selected labels"))

    def resolve_output(self, ctx):
        return _output(ctx, "Decisions removed")


OPERATORS = [MarkSelectedLabels, MarkViewFindings, MarkQueueRow, ClearReviewMark]
