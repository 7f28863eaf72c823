"""The review panel: pick an audit, see its findings by kind, walk the ranked queue, re-audit.

A thin view over :mod:`iou_audit.results`: everything shown comes from the stored audit run
(``load_audit``), and every button only sets the App's view or opens an operator's form.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.results import audit_info, list_audits, load_audit

PLUGIN = "@iou-audit/iou-audit"
#: Findings shown in the ranked queue (highest score first).
QUEUE_SIZE = 50
#: Audit name -> operator that (re)runs it.
RERUN_OPERATORS = {
    "duplicates": f"{PLUGIN}/audit_duplicates",
    "agreement": f"{PLUGIN}/audit_agreement",
    "predictions": f"{PLUGIN}/audit_predictions",
    "splits": f"{PLUGIN}/audit_splits",
}


class AuditReviewPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="audit_review",
            label="iou-audit review",
            surfaces="grid",
            icon="fact_check",
            help_markdown="Findings of the iou-audit runs on this dataset: show each kind as a view, "
            "open the most suspicious objects first, fix them, then re-run the audit.",
        )

    # ---- events -------------------------------------------------------------------------------
    def on_load(self, ctx):
        self._refresh(ctx, ctx.panel.state.audit_key)

    def on_change_dataset(self, ctx):
        self._refresh(ctx, None)

    def select_audit(self, ctx):
        self._refresh(ctx, ctx.params.get("value") or ctx.panel.state.audit_key)

    def refresh(self, ctx):
        self._refresh(ctx, ctx.panel.state.audit_key)

    def show_kind(self, ctx):
        """Row action on the kinds table: show the saved view ``<key>-<kind>``."""
        rows = ctx.panel.state.kinds or []
        row = _row_index(ctx, len(rows))
        if row is None:
            return
        name = rows[row]["view"]
        if ctx.dataset.has_saved_view(name):
            ctx.ops.set_view(name=name)
        else:
            ctx.ops.notify(f"Saved view {name!r} no longer exists; re-run the audit", variant="warning")

    def open_finding(self, ctx):
        """Row action on the queue: show the sample(s) of one finding, its labels only."""
        rows = ctx.panel.state.queue or []
        row = _row_index(ctx, len(rows))
        if row is None:
            return
        f = rows[row]
        sample_ids = [s for s in (f["sample_id"], f.get("other_sample_id")) if s]
        view = ctx.dataset.select(list(dict.fromkeys(sample_ids)), ordered=True)
        ctx.ops.set_view(view)

    def show_all_flagged(self, ctx):
        key = ctx.panel.state.audit_key
        if key:
            ctx.ops.set_view(_flagged_view(ctx.dataset, key))

    def rerun(self, ctx):
        """Open the audit's operator form pre-filled with the stored configuration."""
        key = ctx.panel.state.audit_key
        if not key:
            return
        info = audit_info(ctx.dataset, key)
        uri = RERUN_OPERATORS.get(info["audit"])
        if uri is None:
            ctx.ops.notify(f"No operator re-runs audit {info['audit']!r}", variant="warning")
            return
        params = {k: v for k, v in (info["config"] or {}).items() if isinstance(v, (str, int, float, bool, list))}
        params["audit_key"] = key
        # Re-running replaces the stored run, so default to the whole dataset, not the
        # (often filtered) current view; the form still lets the user choose.
        params["view_target"] = "DATASET"
        ctx.prompt(uri, params=params)

    # ---- state --------------------------------------------------------------------------------
    def _refresh(self, ctx, key):
        keys = list_audits(ctx.dataset) if ctx.dataset is not None else []
        if key not in keys:
            key = keys[0] if keys else None
        kinds, queue, header = [], [], "No iou-audit runs on this dataset yet: run one from the operator browser."
        if key:
            result = load_audit(ctx.dataset, key)
            counts = result.counts()
            kinds = [
                {"kind": k, "count": int(n), "view": f"{key}-{k}"}
                for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
            ]
            top = result.findings.sort_values("score", ascending=False, kind="stable").head(QUEUE_SIZE)
            queue = [
                {
                    "rank": i + 1,
                    "kind": r.kind,
                    "label": r.label,
                    "score": round(float(r.score), 3) if r.score == r.score else None,
                    "iou": round(float(r.iou), 3) if r.iou == r.iou else None,
                    "field": r.field,
                    "sample_id": r.sample_id,
                    "other_sample_id": r.other_sample_id or "",
                    "detail": r.detail,
                }
                for i, r in enumerate(top.itertuples(index=False))
            ]
            header = (f"**{result.audit}** audit `{key}`: {len(result.findings)} findings"
                      f" in {result.findings['sample_id'].nunique()} samples")
        ctx.panel.state.set({"audits": keys, "audit_key": key, "kinds": kinds, "queue": queue, "header": header})
        ctx.panel.data.set("chart", [{"type": "bar", "x": [k["kind"] for k in kinds],
                                      "y": [k["count"] for k in kinds]}])

    def render(self, ctx):
        panel = types.Object()
        panel.md("### iou-audit review", name="title")
        panel.md(ctx.panel.state.header or "", name="header")
        keys = ctx.panel.state.audits or []
        if keys:
            choices = types.DropdownView()
            for k in keys:
                choices.add_choice(k, label=k)
            panel.enum("audit_key", choices.values(), label="Audit", view=choices,
                       default=ctx.panel.state.audit_key, on_change=self.select_audit)
        kinds_table = types.TableView()
        kinds_table.add_column("kind", label="Finding kind")
        kinds_table.add_column("count", label="Count")
        kinds_table.add_row_action("show", self.show_kind, label="Show", tooltip="Show this kind's saved view")
        panel.list("kinds", types.Object(), view=kinds_table, label="Findings by kind")
        panel.plot("chart", layout={"title": "Findings by kind", "height": 220})
        queue_table = types.TableView()
        for col, label in (("rank", "#"), ("kind", "Kind"), ("label", "Class"), ("score", "Score"),
                           ("iou", "IoU"), ("field", "Field"), ("detail", "Detail")):
            queue_table.add_column(col, label=label)
        queue_table.add_row_action("open", self.open_finding, label="Open", tooltip="Show this finding's sample(s)")
        panel.list("queue", types.Object(), view=queue_table, label=f"Most suspicious first (top {QUEUE_SIZE})")
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("show_all", label="Show all flagged", on_click=self.show_all_flagged)
        buttons.btn("rerun", label="Re-run audit", on_click=self.rerun, variant="contained")
        buttons.btn("refresh", label="Refresh", on_click=self.refresh)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))


def _row_index(ctx, n_rows: int) -> int | None:
    """The clicked row: the App sends ``{"row": i, "path": ..., "event": ...}`` as the event's params."""
    row = ctx.params.get("row")
    try:
        row = int(row)
    except (TypeError, ValueError):
        return None
    return row if 0 <= row < n_rows else None


def _flagged_view(dataset, key):
    """Samples holding any finding of audit ``key`` (its per-sample count field)."""
    from fiftyone import ViewField as F

    field = f"{key}_findings"
    if dataset.get_field(field) is None:
        return dataset.limit(0)
    return dataset.match(F(field) > 0).sort_by(field, reverse=True)


OPERATORS = [AuditReviewPanel]
