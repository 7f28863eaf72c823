"""One review-panel event, run headlessly through ``execute_operator`` (shared by the panel tests).

Each click is one ``execute_operator`` call with ``__method__``, ``panel_id`` and ``panel_state``
(and the params the App sends); the result keeps the merged state and data patches, the requests
and the view the event set (rebuilt from its ``set_view`` request).
"""
import fiftyone.operators as foo
from _review_data import label_ids
from fiftyone.core.view import DatasetView

PANEL = "@iou-audit/iou-audit/audit_review"


class Event:
    """One panel event: the merged state patches, the data patches, the requests, the view set."""

    def __init__(self, ds, method, state=None, **params):
        res = foo.execute_operator(PANEL, ctx=dict(dataset=ds, params={
            "__method__": method, "panel_id": "p1", "panel_state": dict(state or {}), **params}))
        assert res.error is None, res.error_message
        self.ds = ds
        self.requests = res.executor.to_json()["requests"]
        self.state, self.data = dict(state or {}), {}
        for r in self.requests:
            if r["operator_uri"] == "patch_panel_state":
                self.state.update(r["params"]["state"])
            elif r["operator_uri"] == "patch_panel_data":
                self.data.update(r["params"]["data"])
        views = [r["params"] for r in self.requests if r["operator_uri"] == "set_view"]
        self.view = DatasetView._build(ds, views[-1]["view"]) if views else None
        outputs = [r["params"]["output"] for r in self.requests if r["operator_uri"] == "show_panel_output"]
        self.properties = outputs[-1]["type"]["properties"] if outputs else {}

    def labels(self, fields):
        return {f: label_ids(self.view, f) for f in fields if label_ids(self.view, f)}
