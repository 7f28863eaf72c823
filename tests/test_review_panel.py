"""The review panel, driven headlessly through its real execute -> render pipeline."""
import fiftyone as fo
import fiftyone.operators as foo

from iou_audit.audits.duplicates import audit_duplicates

PANEL = "@iou-audit/iou-audit/audit_review"


def _event(ds, method, state=None, **params):
    res = foo.execute_operator(PANEL, ctx=dict(dataset=ds, params={
        "__method__": method, "panel_id": "p1", "panel_state": state or {}, **params}))
    requests = res.executor.to_json()["requests"]
    return {r["operator_uri"]: r["params"] for r in requests}, requests


def _dataset_with_duplicates(ds):
    box = [0.1, 0.1, 0.3, 0.3]
    near = [0.1005, 0.1, 0.3, 0.3]
    ds.add_samples([
        fo.Sample(filepath=f"/nonexistent/{i}.jpg", gt=fo.Detections(detections=[
            fo.Detection(label="cell", bounding_box=box),
            fo.Detection(label="cell", bounding_box=near if i < 3 else [0.6, 0.6, 0.2, 0.2]),
            fo.Detection(label="cell", bounding_box=[0.5, 0.5, 0.0, 0.1]),  # degenerate
        ])) for i in range(5)
    ])
    return audit_duplicates(ds, "gt", audit_key="dups")


def test_panel_lists_audit_kinds_and_ranked_queue(dataset):
    result = _dataset_with_duplicates(dataset)
    reqs, _ = _event(dataset, "on_load")
    state = reqs["patch_panel_state"]["state"]
    assert state["audit_key"] == "dups" and state["audits"] == ["dups"]
    # Counts come from the stored run and match the result the library returned.
    assert {r["kind"]: r["count"] for r in state["kinds"]} == result.counts()
    assert {r["kind"]: r["count"] for r in state["kinds"]} == {"duplicate": 3, "degenerate_box": 5}
    scores = [r["score"] for r in state["queue"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 8
    props = reqs["show_panel_output"]["output"]["type"]["properties"]
    assert {"kinds", "queue", "chart", "buttons"} <= set(props)


def test_panel_row_actions_set_views_and_rerun_prompts(dataset):
    _dataset_with_duplicates(dataset)
    reqs, _ = _event(dataset, "on_load")
    state = reqs["patch_panel_state"]["state"]
    row = [r["kind"] for r in state["kinds"]].index("duplicate")
    reqs, _ = _event(dataset, "show_kind", state=state, row=row)
    assert reqs["set_view"]["name"] == "dups-duplicate"
    assert len(dataset.load_saved_view("dups-duplicate")) == 3

    reqs, _ = _event(dataset, "open_finding", state=state, row=0)
    stages = reqs["set_view"]["view"]
    assert any("Select" in s["_cls"] for s in stages)

    reqs, requests = _event(dataset, "rerun", state=state)
    prompt = [r for r in requests if r["operator_uri"] == "prompt_user_for_operation"]
    assert prompt and prompt[0]["params"]["operator_uri"] == "@iou-audit/iou-audit/audit_duplicates"
    assert prompt[0]["params"]["params"]["audit_key"] == "dups"


def test_panel_with_no_audits_says_so(dataset):
    dataset.add_sample(fo.Sample(filepath="/nonexistent/x.jpg"))
    reqs, _ = _event(dataset, "on_load")
    state = reqs["patch_panel_state"]["state"]
    assert state["audit_key"] is None and state["kinds"] == [] and "No iou-audit runs" in state["header"]
