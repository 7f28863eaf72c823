"""The review panel: each audit run's evidence as pictures, every element a filter, and the queue.

A thin view over :mod:`iou_audit.results.evidence`: the charts and the samples/labels behind each
bar, heatmap cell, histogram bin and queue row come from the library; the panel lays them out and
turns a click into ``ctx.ops.set_view`` of exactly those samples, with only those labels visible.
"""
from __future__ import annotations

from urllib.parse import quote

import fiftyone.operators as foo
import fiftyone.operators.types as types

from iou_audit.audits.keypoints.agreement import AUDIT as KEYPOINT_AGREEMENT
from iou_audit.audits.keypoints.duplicates import AUDIT as KEYPOINT_DUPLICATES
from iou_audit.audits.keypoints.predictions import AUDIT as KEYPOINT_PREDICTIONS
from iou_audit.audits.prior import AUDIT as LABEL_PRIOR
from iou_audit.audits.segmentation.agreement import AUDIT as SEGMENTATION
from iou_audit.results import audit_info, list_audits, load_audit
from iou_audit.results import evidence as ev
from iou_audit.review import DEFAULT_QUEUE_STATES, QUEUE_STATES, clear_review, mark_review, triage
from iou_audit.shards import incremental_status

from .triage import reviewer

PLUGIN = "@iou-audit/iou-audit"
#: The incremental re-run of a run that kept its parts, plain or sharded (plugin/shards.py).
RERUN_CHANGED_OPERATOR = f"{PLUGIN}/rerun_changed_audit"
#: Audit name -> operator that (re)runs it.
RERUN_OPERATORS = {
    "duplicates": f"{PLUGIN}/audit_duplicates",
    "agreement": f"{PLUGIN}/audit_agreement",
    "predictions": f"{PLUGIN}/audit_predictions",
    "splits": f"{PLUGIN}/audit_splits",
    SEGMENTATION: f"{PLUGIN}/audit_{SEGMENTATION}",
    LABEL_PRIOR: f"{PLUGIN}/audit_{LABEL_PRIOR}",
    **{audit: f"{PLUGIN}/audit_{audit}" for audit in (KEYPOINT_PREDICTIONS, KEYPOINT_AGREEMENT, KEYPOINT_DUPLICATES)},
}
#: The triage queue's filters: dropdown name -> (queue column, label). List columns (kinds,
#: audits) match a row when they contain the value.
QUEUE_FILTERS = {"kind": ("kinds", "Kind"), "label": ("label", "Class"), "field": ("field", "Field"),
                 "audit": ("audits", "Audit"), "state": ("review_state", "State")}
#: Review-state filter values besides the states themselves.
DEFAULT_STATES, ALL_STATES = "(to review)", "(all)"
#: Sort choices: name -> (queue column or None for the triage order, descending, label).
QUEUE_SORTS = {"triage": (None, False, "combined suspicion"), "score": ("score", True, "score"),
               "label": ("label", False, "class"), "kind": ("kinds_text", False, "kind"),
               "field": ("field", False, "field"), "state": ("review_state", False, "state")}
#: Queue columns (key, header): few and narrow, so the table fits the panel's default width.
QUEUE_COLUMNS = (("rank", "#"), ("kind", "Kind"), ("label", "Class"), ("score", "Score"), ("mark", "Review"))
#: The Review column's short words for the queue states (the State filter has the full names).
STATE_MARKS = {"open": "", "confirmed": "error", "not_an_error": "ok", "fixed": "fixed",
               "changed_since_review": "changed"}
#: Row menu: action name -> (review state or None to clear, label).
MARKS = {"mark_ok": ("not_an_error", "Not an error"), "mark_error": ("confirmed", "Confirm error"),
         "mark_fixed": ("fixed", "Fixed"), "mark_clear": (None, "Clear mark")}
#: Leak pairs shown per page (two thumbnails each).
LEAKS_PER_PAGE = 4
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
#: FiftyOne's TableView gives its table ``minWidth: 650`` (wider than a panel next to the grid,
#: which then widens every chart too); this lets the table shrink to the panel.
NARROW_TABLE = {"table": {"sx": {"minWidth": 0}}}


class AuditReviewPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="audit_review",
            label="iou-audit review",
            surfaces="grid",
            icon="fact_check",
            help_markdown="The evidence of each iou-audit run as charts: click a bar, a heatmap cell, a "
            "histogram bin or a queue row to show exactly the samples and labels behind it.",
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

    def select_metric(self, ctx):
        """The agreement matrix's metric (F1, F1 same class, mean IoU, alpha)."""
        metric = ctx.params.get("value")
        if metric not in ev.MATRIX_METRICS:
            return
        ctx.panel.state.metric = metric
        key = ctx.panel.state.audit_key
        if key:
            self._set_charts(ctx, load_audit(ctx.dataset, key), only=("matrix", "class_agreement"))

    def on_chart_click(self, ctx):
        """A click on a chart element: show the samples and labels behind it."""
        key = ctx.panel.state.audit_key
        chart = str(ctx.params.get("path") or "").split(".")[-1]
        if not key or chart not in (ctx.panel.state.charts or []):
            return
        try:
            selection = ev.select(ctx.dataset, load_audit(ctx.dataset, key), chart, ctx.params)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            ctx.ops.notify(f"Nothing to show for this element: {e}", variant="warning")
            return
        self._show(ctx, selection)

    def open_finding(self, ctx):
        """Row click or "Show" on the triage queue: that row's labels only (or its samples)."""
        row = _clicked_row(ctx, ctx.panel.state.queue)
        if row is None:
            return
        q = triage(ctx.dataset, states=None)
        rows = q[q["row_id"] == row["row_id"]]
        if not len(rows):
            ctx.ops.notify("This queue row is gone (re-run or refresh)", variant="warning")
            return
        # a sample row (e.g. a segmentation image) shows every field its audits compared
        fields = sorted({f for key in rows.iloc[0]["audits"] for f in ev.result_fields(load_audit(ctx.dataset, key))})
        sel = ev.triage_selection(rows, fields=fields)
        sel.title = f"#{row['rank']} {row['kind']}"
        self._show(ctx, sel)
        ctx.panel.state.detail = f"#{row['rank']} {row['label']} ({row['state']}): {row['evidence']}"

    def mark_ok(self, ctx):
        self._mark(ctx, "mark_ok")

    def mark_error(self, ctx):
        self._mark(ctx, "mark_error")

    def mark_fixed(self, ctx):
        self._mark(ctx, "mark_fixed")

    def mark_clear(self, ctx):
        self._mark(ctx, "mark_clear")

    def _mark(self, ctx, action):
        row = _clicked_row(ctx, ctx.panel.state.queue)
        if row is None:
            return
        state, label = MARKS[action]
        try:
            if state is None:
                n = clear_review(ctx.dataset, [row["row_id"]])
            else:
                n = mark_review(ctx.dataset, [row["row_id"]], state, user=reviewer(ctx))
        except ValueError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        ctx.ops.notify(f"#{row['rank']} {row['kind']}: {label.lower()} ({n} decision{'s' if n != 1 else ''})",
                       variant="success")
        ctx.ops.reload_dataset()  # review tags and counts changed
        self._set_queue(ctx, page=ctx.panel.state.page or 0)

    def open_leak(self, ctx):
        """Show both samples of a leak pair."""
        leaks = ctx.panel.state.leaks or []
        try:
            leak = leaks[int(ctx.params.get("index", ctx.params.get("row")))]
        except (TypeError, ValueError, IndexError):
            return
        result = load_audit(ctx.dataset, ctx.panel.state.audit_key)
        self._show(ctx, ev.Selection([leak["sample_id"], leak["other_sample_id"]], {},
                                     fields=ev.result_fields(result), title=f"leak pair: {leak['detail']}"))

    def open_drift(self, ctx):
        rows = ctx.panel.state.drift_tests or []
        row = _row_index(ctx, len(rows))
        if row is None:
            return
        result = load_audit(ctx.dataset, ctx.panel.state.audit_key)
        self._show(ctx, ev.select_drift(ctx.dataset, result, int(rows[row]["index"])))

    def filter_queue(self, ctx):
        filters = dict(ctx.panel.state.queue_filters or {})
        name = str(ctx.params.get("path") or "").split(".")[-1].removeprefix("filter_")
        if name in QUEUE_FILTERS:
            value = ctx.params.get("value")
            filters[name] = "" if value in (None, ALL_STATES) and name != "state" else (value or "")
        ctx.panel.state.queue_filters = filters
        self._set_queue(ctx, page=0)

    def sort_queue(self, ctx):
        value = ctx.params.get("value")
        if value in QUEUE_SORTS:
            ctx.panel.state.queue_sort = value
            self._set_queue(ctx, page=0)

    def next_page(self, ctx):
        self._set_queue(ctx, page=(ctx.panel.state.page or 0) + 1)

    def previous_page(self, ctx):
        self._set_queue(ctx, page=(ctx.panel.state.page or 0) - 1)

    def leaks_next(self, ctx):
        self._set_leaks(ctx, load_audit(ctx.dataset, ctx.panel.state.audit_key), (ctx.panel.state.leak_page or 0) + 1)

    def leaks_previous(self, ctx):
        self._set_leaks(ctx, load_audit(ctx.dataset, ctx.panel.state.audit_key), (ctx.panel.state.leak_page or 0) - 1)

    def show_all_flagged(self, ctx):
        key = ctx.panel.state.audit_key
        if key:
            result = load_audit(ctx.dataset, key)
            self._show(ctx, ev.findings_selection(result.findings, title=f"all findings of {key}",
                                                  fields=ev.result_fields(result)))

    def clear_selection(self, ctx):
        ctx.ops.clear_view()
        ctx.panel.state.showing = ""

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
        params["keep_parts"] = bool(ctx.panel.state.incremental)  # a full re-run keeps parts if the run did
        # Re-running replaces the stored run, so default to the whole dataset, not the
        # (often filtered) current view; the form still lets the user choose.
        params["view_target"] = "DATASET"
        ctx.prompt(uri, params=params)

    def rerun_changed(self, ctx):
        """Open the incremental re-run (only the parts whose samples changed) of a run that kept its parts."""
        key = ctx.panel.state.audit_key
        if key:
            ctx.prompt(RERUN_CHANGED_OPERATOR, params={"audit_key": key})

    # ---- state --------------------------------------------------------------------------------
    def _show(self, ctx, selection: ev.Selection):
        if selection.empty:
            ctx.ops.notify(f"{selection.title}: no samples", variant="info")
            ctx.panel.state.showing = f"{selection.title}: nothing to show"
            return
        ctx.ops.set_view(ev.selection_view(ctx.dataset, selection))
        what = f"{selection.n_labels} labels in " if selection.labels else ""
        ctx.panel.state.showing = f"Showing {selection.title}: {what}{selection.n_samples} samples"

    def _refresh(self, ctx, key):
        keys = list_audits(ctx.dataset) if ctx.dataset is not None else []
        if key not in keys:
            key = keys[0] if keys else None
        state = {"audits": keys, "audit_key": key, "audit": None, "charts": [], "layouts": {}, "queue": [],
                 "queue_filters": {}, "choices": {}, "page": 0, "n_pages": 1, "n_queue": 0, "leaks": [],
                 "leak_page": 0, "drift_tests": [], "stale": "", "incremental": False, "incremental_note": "", "showing": "", "detail": "",
                 "metric": ctx.panel.state.metric or "f1",
                 "header": "No iou-audit runs on this dataset yet: run one from the operator browser (`)."}
        # The filter dropdowns show their own state (at their paths in the two h_stacks), not
        # queue_filters: reset them too, or they keep showing a filter the queue no longer applies.
        names = list(QUEUE_FILTERS)
        state["filters"] = {f"filter_{n}": ALL_STATES for n in names[:3]}
        state["filters2"] = {**{f"filter_{n}": ALL_STATES for n in names[3:] if n != "state"},
                             "filter_state": DEFAULT_STATES, "queue_sort": ctx.panel.state.queue_sort or "triage"}
        ctx.panel.state.set(state)
        if not key:
            return
        result = load_audit(ctx.dataset, key)
        n = len(result.findings)
        ctx.panel.state.audit = result.audit
        ctx.panel.state.header = (f"**{result.audit}** `{key}`: {n} findings in "
                                  f"{result.findings.loc[result.findings['sample_id'] != '', 'sample_id'].nunique()} samples")
        ctx.panel.state.stale = ev.staleness(ctx.dataset, key)["message"]
        why_not = incremental_status(ctx.dataset, key)
        ctx.panel.state.incremental = not why_not
        ctx.panel.state.incremental_note = _short_reason(why_not)
        self._set_charts(ctx, result)
        everything = triage(ctx.dataset, states=None)
        choices = ev.filter_choices(everything, [c for c, _ in QUEUE_FILTERS.values() if c != "review_state"])
        ctx.panel.state.choices = {k: choices.get(c, []) for k, (c, _) in QUEUE_FILTERS.items() if k != "state"}
        self._set_queue(ctx, page=0)
        if result.audit == "splits":
            self._set_leaks(ctx, result, 0)
            self._set_drift(ctx, result)

    def _set_charts(self, ctx, result, only=None):
        charts = ev.charts(result, ctx.dataset, metric=ctx.panel.state.metric or "f1")
        layouts = dict(ctx.panel.state.layouts or {})
        names = list(ctx.panel.state.charts or [])
        for name, chart in charts.items():
            if only is not None and name not in only:
                continue
            ctx.panel.data.set(name, chart.traces)
            layouts[name] = chart.layout
            if name not in names:
                names.append(name)
        ctx.panel.state.layouts = layouts
        ctx.panel.state.charts = [n for n in charts if n in names]

    def _set_queue(self, ctx, page):
        """One page of the cross-audit triage queue (every stored audit), filtered and sorted."""
        q = triage(ctx.dataset, states=None)
        filters = dict(ctx.panel.state.queue_filters or {})
        states = filters.get("state") or DEFAULT_STATES
        if states == DEFAULT_STATES:
            q = q[q["review_state"].isin(DEFAULT_QUEUE_STATES)]
        elif states != ALL_STATES:
            q = q[q["review_state"] == states]
        column_filters = {QUEUE_FILTERS[k][0]: v for k, v in filters.items() if k != "state" and k in QUEUE_FILTERS}
        q = q.assign(kinds_text=q["kinds"].map(lambda k: ", ".join(k or [])))
        sort_col, descending, _ = QUEUE_SORTS.get(ctx.panel.state.queue_sort or "triage", QUEUE_SORTS["triage"])
        rows, n, n_pages = ev.queue_page(q, column_filters, sort_by=sort_col, descending=descending, page=page)
        page = min(max(int(page), 0), n_pages - 1)
        first = page * ev.PAGE_SIZE
        ctx.panel.state.queue = [
            {"rank": first + i + 1, "row_id": r.row_id, "kind": _short_kinds(r.kinds), "label": r.label or ev.NO_CLASS,
             "score": round(float(r.score), 2) if r.score == r.score else None, "state": r.review_state,
             "mark": STATE_MARKS.get(r.review_state, r.review_state),
             "evidence": r.evidence}
            for i, r in enumerate(rows.itertuples(index=False))
        ]
        ctx.panel.state.page, ctx.panel.state.n_pages, ctx.panel.state.n_queue = page, n_pages, n
        ctx.panel.state.queue_message = q.attrs.get("message", "") if not n else ""

    def _set_leaks(self, ctx, result, page):
        pairs = ev.leak_pairs(result)
        n_pages = max(1, -(-len(pairs) // LEAKS_PER_PAGE))
        page = min(max(int(page), 0), n_pages - 1)
        rows = pairs.iloc[page * LEAKS_PER_PAGE:(page + 1) * LEAKS_PER_PAGE]
        ids = list(rows["sample_id"]) + list(rows["other_sample_id"])
        paths = dict(zip(*ctx.dataset.select(ids).values(["id", "filepath"]))) if ids else {}
        leaks = []
        for i, r in enumerate(rows.itertuples(index=False)):
            leaks.append({"sample_id": r.sample_id, "other_sample_id": r.other_sample_id, "kind": r.kind,
                          "score": round(float(r.score), 3), "detail": r.detail,
                          "name_a": _basename(paths.get(r.sample_id, "")),
                          "name_b": _basename(paths.get(r.other_sample_id, ""))})
            # the two thumbnails are the values of the pair's h_stack children "a" and "b"
            ctx.panel.state.set(f"leak_{i}", {"a": _media_url(paths.get(r.sample_id, "")),
                                              "b": _media_url(paths.get(r.other_sample_id, ""))})
        ctx.panel.state.leaks = leaks
        ctx.panel.state.leak_page, ctx.panel.state.leak_pages = page, n_pages

    def _set_drift(self, ctx, result):
        t = result.tables.get("drift_tests")
        rows = []
        if t is not None and len(t):
            for index, r in t.iterrows():
                size = r.get("effect_size")
                rows.append({"index": int(index), "test": f"{r['quantity']} {r['split_a']}/{r['split_b']}",
                             "effect": f"{r['effect']} {float(size):.3f}" if size == size and size is not None else "",
                             "p": f"{float(r['p_adjusted']):.2g}" if r.get("p_adjusted") == r.get("p_adjusted")
                             and r.get("p_adjusted") is not None else ""})
        ctx.panel.state.drift_tests = rows

    # ---- layout -------------------------------------------------------------------------------
    def render(self, ctx):
        s = ctx.panel.state
        panel = types.Object()
        panel.md(s.header or "", name="header")
        keys = s.audits or []
        if keys:
            choices = types.DropdownView()
            for k in keys:
                choices.add_choice(k, label=k)
            panel.enum("audit_key", choices.values(), label="Audit run", view=choices,
                       default=s.audit_key, on_change=self.select_audit)
        if s.stale:
            panel.view("stale", types.Warning(label=s.stale))
        buttons = panel.h_stack("buttons", align_x="left", gap=1)
        # short labels: an h_stack shares the panel's width equally and wraps long ones
        buttons.btn("rerun", label="Re-run", on_click=self.rerun, variant="contained")
        if s.stale and s.incremental:  # the run kept its parts: re-run the changed samples' parts only
            buttons.btn("rerun_changed", label="Changed only", on_click=self.rerun_changed)
        buttons.btn("show_all", label="Flagged", on_click=self.show_all_flagged)
        buttons.btn("clear", label="Clear", on_click=self.clear_selection)
        buttons.btn("refresh", label="Refresh", on_click=self.refresh)
        if s.stale and not s.incremental and s.incremental_note:
            panel.md(f"*Changed samples only: not possible, {s.incremental_note}*", name="incremental_note")
        if s.showing:
            panel.md(f"*{s.showing}*", name="showing")
        if not s.audit_key:
            return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, padding=1))

        layouts = s.layouts or {}
        for name in s.charts or []:
            if name == "matrix":
                metrics = types.DropdownView()
                for m, label in ev.MATRIX_METRICS.items():
                    metrics.add_choice(m, label=label)
                panel.enum("metric", metrics.values(), label="Matrix metric", view=metrics,
                           default=s.metric or "f1", on_change=self.select_metric)
            panel.plot(name, layout=layouts.get(name, {}), config=PLOT_CONFIG, on_click=self.on_chart_click)

        if s.audit == "splits":
            self._render_splits(panel, s)

        panel.md(f"**Triage queue**, all audits ({s.n_queue or 0} rows; click a row to show its labels)",
                 name="queue_title")
        # two rows of three dropdowns: one row of six is wider than the panel's default width
        rows = [panel.h_stack("filters", align_x="left", gap=1), panel.h_stack("filters2", align_x="left", gap=1)]
        current = s.queue_filters or {}
        for n, (name, (_, label)) in enumerate(QUEUE_FILTERS.items()):
            filters = rows[0] if n < 3 else rows[1]
            dd = types.DropdownView()
            if name == "state":
                values = [DEFAULT_STATES, ALL_STATES, *QUEUE_STATES]
                default = current.get("state") or DEFAULT_STATES
            else:
                values = [ALL_STATES, *((s.choices or {}).get(name) or [])]
                default = current.get(name) or ALL_STATES
                if len(values) <= 2:
                    continue  # one value or none: nothing to filter
            for v in values:
                dd.add_choice(v, label=v)
            filters.enum(f"filter_{name}", dd.values(), label=label, view=dd, default=default,
                         on_change=self.filter_queue)
        sorts = types.DropdownView()
        for name, (_, _, label) in QUEUE_SORTS.items():
            sorts.add_choice(name, label=label)
        rows[1].enum("queue_sort", sorts.values(), label="Sort", view=sorts, default=s.queue_sort or "triage",
                     on_change=self.sort_queue)
        table = types.TableView(on_click_row=self.open_finding, max_inline_actions=1, componentsProps=NARROW_TABLE)
        for key, label in QUEUE_COLUMNS:
            table.add_column(key, label=label)
        table.add_row_action("open", self.open_finding, label="Show", tooltip="Show this row's labels only")
        for action, (_, label) in MARKS.items():
            table.add_row_action(action, getattr(self, action), label=label)
        panel.list("queue", types.Object(), view=table)
        if s.queue_message:
            panel.md(s.queue_message, name="queue_message")
        pager = panel.h_stack("pager", align_x="left", gap=1)
        pager.btn("prev", label="<", on_click=self.previous_page)
        pager.md(f"page {(s.page or 0) + 1} / {s.n_pages or 1}", name="page_label")
        pager.btn("next", label=">", on_click=self.next_page)
        if s.detail:
            panel.md(s.detail, name="detail")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, padding=1))

    def _render_splits(self, panel, s):
        leaks = s.leaks or []
        if leaks:
            panel.md(f"**Leak pairs** (page {(s.leak_page or 0) + 1} / {s.leak_pages or 1}; click an image "
                     "to show the pair)", name="leaks_title")
            for i, leak in enumerate(leaks):
                pair = panel.h_stack(f"leak_{i}", align_x="left", gap=1)
                for side in ("a", "b"):
                    pair.view(side, types.ImageView(width="48%", alt=leak[f"name_{side}"],
                                                                  operator=self.open_leak, params={"index": i}))
                panel.md(f"{leak['name_a']} / {leak['name_b']}: {leak['kind']} {leak['score']}  \n"
                         f"{leak['detail']}", name=f"leak_{i}_detail")
            pager = panel.h_stack("leak_pager", align_x="left", gap=1)
            pager.btn("leaks_prev", label="<", on_click=self.leaks_previous)
            pager.btn("leaks_next", label=">", on_click=self.leaks_next)
        if s.drift_tests:
            table = types.TableView(componentsProps=NARROW_TABLE)
            table.add_column("test", label="Drift test")
            table.add_column("effect", label="Effect")
            table.add_column("p", label="p adj.")
            table.add_row_action("open", self.open_drift, label="Show",
                                 tooltip="Show the two splits' samples")
            panel.list("drift_tests", types.Object(), view=table, label="Drift between splits")


#: Why a run cannot be re-run on its changed samples, in the panel's few words
#: (``iou_audit.shards.incremental_status`` gives the full reason).
INCREMENTAL_NOTES = (("kept no parts", "the run kept no parts: re-run it with 'Keep parts for changed-only re-runs'"),
                     ("cannot keep parts", "this audit cannot keep parts"),
                     ("not written by the merge", "the run was replaced by one without parts"),
                     ("interrupted", "the run was interrupted"))


def _short_reason(reason: str) -> str:
    if not reason:
        return ""
    return next((short for marker, short in INCREMENTAL_NOTES if marker in reason), reason)


def _row_index(ctx, n_rows: int) -> int | None:
    """The clicked row: the App sends ``{"row": i, "path": ..., "event": ...}`` as the event's params."""
    row = ctx.params.get("row")
    try:
        row = int(row)
    except (TypeError, ValueError):
        return None
    return row if 0 <= row < n_rows else None


def _clicked_row(ctx, rows):
    rows = rows or []
    i = _row_index(ctx, len(rows))
    return None if i is None else rows[i]


def _short_kinds(kinds) -> str:
    """The first kind, and how many more (the narrow Kind column; the detail line has them all)."""
    kinds = list(kinds or [])
    return "" if not kinds else kinds[0] + (f" +{len(kinds) - 1}" if len(kinds) > 1 else "")


def _media_url(filepath: str) -> str:
    """The App server's URL of a media file (its ``/media`` route)."""
    return f"/media?filepath={quote(filepath, safe='')}" if filepath else ""


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


OPERATORS = [AuditReviewPanel]
