"""The panel's "Changed only" re-run of a plain run that kept its parts, through the real operators.

An audit operator run with "Keep parts for changed-only re-runs" (immediate and delegated); the
review panel, driven headlessly (``execute_operator`` with ``__method__``), says the run is stale
after an edit and offers "Changed only"; its prompt's operator, executed immediately and as a
delegated operation, recomputes only the edited part, and the stored run equals a full re-run from
scratch on a copy. A run without parts is not offered it, and the panel says why.
"""
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext
from incremental_support import _bench_scale, full_run_on_copy, same, snapshot

PLUGIN = "@iou-audit/iou-audit"
PANEL = f"{PLUGIN}/audit_review"
N_SAMPLES = 1100  # 3 parts of at most DEFAULT_PART_SAMPLES (500): 367, 367, 366


class Event:
    """One panel event: the merged state patches, the requests, the rendered properties."""

    def __init__(self, ds, method, state=None, **params):
        res = foo.execute_operator(PANEL, ctx=dict(dataset=ds, params={
            "__method__": method, "panel_id": "p1", "panel_state": dict(state or {}), **params}))
        assert res.error is None, res.error_message
        self.requests = res.executor.to_json()["requests"]
        self.state = dict(state or {})
        for r in self.requests:
            if r["operator_uri"] == "patch_panel_state":
                self.state.update(r["params"]["state"])
        outputs = [r["params"]["output"] for r in self.requests if r["operator_uri"] == "show_panel_output"]
        self.properties = outputs[-1]["type"]["properties"] if outputs else {}

    @property
    def buttons(self):
        return set(self.properties["buttons"]["type"]["properties"])

    def prompt(self):
        prompts = [r["params"] for r in self.requests if r["operator_uri"] == "prompt_user_for_operation"]
        assert len(prompts) == 1, self.requests
        return prompts[0]


@pytest.fixture
def ds(tmp_path):
    import fiftyone as fo

    dataset = _bench_scale().build_dataset("incr-plugin", N_SAMPLES, str(tmp_path))
    yield dataset
    for name in [n for n in fo.list_datasets() if n.startswith(dataset.name)]:
        fo.delete_dataset(name)


def _predictions(samples, key):
    from iou_audit import audit_predictions

    return audit_predictions(samples, "pred", "a", audit_key=key)


def _edit(ds, index):
    s = ds[ds.values("id")[index]]
    s.pred.detections = s.pred.detections[1:]
    s.save()


def test_changed_only_rerun_of_a_plain_run_immediate_and_delegated(ds):
    from iou_audit import shards

    res = foo.execute_operator(f"{PLUGIN}/audit_predictions", ctx=dict(dataset=ds, params={
        "pred_field": "pred", "gt_field": "a", "audit_key": "p", "keep_parts": True}))
    assert res.error is None, res.error_message
    plan = shards.list_plans(ds, "p")[0]
    assert plan["origin"] == "plain" and [s["n_samples"] for s in plan["shards"]] == [367, 367, 366]

    e = Event(ds, "select_audit", value="p")
    assert e.state["incremental"] is True and e.state["stale"] == ""
    assert "rerun_changed" not in e.buttons  # fresh: nothing to re-run
    full = Event(ds, "rerun", e.state).prompt()  # a full re-run keeps the parts too
    assert full["operator_uri"] == f"{PLUGIN}/audit_predictions" and full["params"]["keep_parts"] is True

    _edit(ds, 500)  # part 1
    e = Event(ds, "refresh", e.state)
    assert e.state["stale"].startswith("1 sample modified") and "rerun_changed" in e.buttons
    prompt = Event(ds, "rerun_changed", e.state).prompt()
    assert prompt["operator_uri"] == f"{PLUGIN}/rerun_changed_audit" and prompt["params"] == {"audit_key": "p"}
    want = full_run_on_copy(ds, "p", _predictions)
    res = foo.execute_operator(prompt["operator_uri"], ctx=dict(dataset=ds, params=prompt["params"]))
    assert res.error is None, res.error_message
    assert res.result == {"audit_key": "p", "n_changed": 1, "n_recomputed": 1, "n_shards": 3}
    same(want, snapshot(ds, "p"))
    e = Event(ds, "refresh", e.state)
    assert e.state["stale"] == "" and "rerun_changed" not in e.buttons

    # delegated: queued, then run by FiftyOne's delegated-operation service
    _edit(ds, 100)  # part 0
    e = Event(ds, "refresh", e.state)
    prompt = Event(ds, "rerun_changed", e.state).prompt()
    want = full_run_on_copy(ds, "p", _predictions)
    res = foo.execute_operator(prompt["operator_uri"], ctx=dict(dataset=ds, request_delegation=True,
                                                               params={**prompt["params"], "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=f"{PLUGIN}/rerun_changed_audit", dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    assert str(doc.run_state).lower().endswith("completed"), doc.result
    assert doc.result.result == {"audit_key": "p", "n_changed": 1, "n_recomputed": 1, "n_shards": 3}
    same(want, snapshot(ds, "p"))
    assert Event(ds, "refresh", e.state).state["stale"] == ""
    dos.delete_operation(doc.id)


def test_delegated_audit_keeps_parts_and_a_run_without_parts_says_why(ds):
    from iou_audit import shards

    res = foo.execute_operator(f"{PLUGIN}/audit_duplicates", ctx=dict(dataset=ds, request_delegation=True, params={
        "label_field": "a", "audit_key": "d", "keep_parts": True, "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=f"{PLUGIN}/audit_duplicates", dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    assert str(doc.run_state).lower().endswith("completed"), doc.result
    assert shards.list_plans(ds, "d")[0]["origin"] == "plain"
    e = Event(ds, "select_audit", value="d")
    assert e.state["incremental"] is True
    dos.delete_operation(doc.id)

    # the same audit without parts: stale after an edit, no "Changed only", and the panel says why
    foo.execute_operator(f"{PLUGIN}/audit_duplicates", ctx=dict(dataset=ds, params={
        "label_field": "a", "audit_key": "d"}))
    assert not shards.list_plans(ds, "d")  # the parts of the replaced run went with it
    s = ds.first()
    s.a.detections = s.a.detections[1:]
    s.save()
    e = Event(ds, "select_audit", value="d")
    assert e.state["incremental"] is False and e.state["stale"]
    assert "rerun_changed" not in e.buttons
    assert "kept no parts" in e.state["incremental_note"] and "incremental_note" in e.properties
    # the operator's form offers only runs that kept parts: here none, and it says so
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    props = foo.get_operator(f"{PLUGIN}/rerun_changed_audit").resolve_type(ctx, "inputs").type.properties
    assert "audit_key" not in props and "none" in props
