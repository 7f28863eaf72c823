"""The review operators through FiftyOne's operator executor, immediate and delegated, asserting on
the decisions, tags and counts that landed in a real dataset."""
import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

import iou_audit
from iou_audit.review import load_decisions, triage

PLUGIN = "@iou-audit/iou-audit"
SELECTED, VIEW, ROW, CLEAR = (f"{PLUGIN}/{n}" for n in
                              ("mark_selected_labels", "mark_view_findings", "mark_queue_row", "clear_review_mark"))


@pytest.fixture
def ds():
    d = fo.Dataset()
    d.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png", gt=fo.Detections(detections=[
        fo.Detection(label="RBC", bounding_box=[0.1, 0.1, 0.2, 0.2]),
        fo.Detection(label="RBC", bounding_box=[0.1, 0.1, 0.2, 0.2]),     # exact copy: duplicate
        fo.Detection(label="WBC", bounding_box=[0.6, 0.6, 0.1, 0.1])])) for i in range(4)])
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    yield d
    d.delete()


def _copies(ds):
    """[(sample id, id of the flagged copy)] per sample, in dataset order."""
    return [(s.id, s.gt.detections[1].id) for s in ds.select_fields("gt")]


def _review_tags(ds):
    return {det.id: [t for t in det.tags if t.startswith("review:")]
            for dets in ds.values("gt.detections") for det in dets if any(t.startswith("review:") for t in det.tags)}


def _run(uri, ds, delegated, **ctx):
    """Run immediately, or queue it and run the queue like `fiftyone delegated launch` would."""
    if not delegated:
        res = foo.execute_operator(uri, ctx=dict(dataset=ds, **ctx))
        assert "reload_dataset" in [r["operator_uri"] for r in res.executor.to_json()["requests"]]
        return res.result
    res = foo.execute_operator(uri, ctx=dict(dataset=ds, request_delegation=True, **ctx))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=uri, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        return doc.result.result
    finally:
        dos.delete_operation(doc.id)


@pytest.mark.parametrize("delegated", [False, True], ids=["immediate", "delegated"])
def test_mark_selected_labels(ds, delegated):
    (s0, c0), (s1, c1) = _copies(ds)[:2]
    w0 = ds[s0].gt.detections[2].id
    selected = [{"label_id": c0, "sample_id": s0, "field": "gt"}, {"label_id": w0, "sample_id": s0, "field": "gt"}]
    out = _run(SELECTED, ds, delegated, selected_labels=selected, params={"state": "confirmed", "delegate": delegated})
    assert out["n"] == 2
    assert _review_tags(ds) == {c0: ["review:confirmed"], w0: ["review:confirmed"]}
    assert ds[s0].review_confirmed == 2 and ds[s1].review_confirmed is None
    assert {r: d["state"] for r, d in load_decisions(ds).items()} == {c0: "confirmed", w0: "confirmed"}
    assert triage(ds).set_index("row_id").loc[c0, "review_state"] == "confirmed"


@pytest.mark.parametrize("delegated", [False, True], ids=["immediate", "delegated"])
def test_mark_view_findings(ds, delegated):
    copies = _copies(ds)
    view = ds.select([s for s, _ in copies[:3]])
    out = _run(VIEW, ds, delegated, view=view, params={"state": "not_an_error", "audit_keys": ["dups"],
                                                       "delegate": delegated})
    assert out["n"] == 3
    assert set(load_decisions(ds)) == {c for _, c in copies[:3]}
    assert list(triage(ds)["row_id"]) == [copies[3][1]]  # only the copy outside the view is still open
    # re-marking the view leaves rows with a valid decision alone unless asked
    assert _run(VIEW, ds, delegated, view=view, params={"state": "fixed", "delegate": delegated})["n"] == 0
    assert _run(VIEW, ds, delegated, view=view, params={"state": "fixed", "reviewed_too": True,
                                                        "delegate": delegated})["n"] == 3
    assert {d["state"] for d in load_decisions(ds).values()} == {"fixed"}


@pytest.mark.parametrize("delegated", [False, True], ids=["immediate", "delegated"])
def test_mark_queue_row_then_clear(ds, delegated):
    (s0, c0), (s1, c1) = _copies(ds)[:2]
    assert _run(ROW, ds, delegated, params={"row_id": c0, "state": "fixed", "delegate": delegated})["n"] == 1
    assert _review_tags(ds) == {c0: ["review:fixed"]} and ds[s0].review_fixed == 1
    assert _run(CLEAR, ds, delegated, params={"row_id": c0, "delegate": delegated})["n"] == 1
    assert _review_tags(ds) == {} and ds[s0].review_fixed == 0 and load_decisions(ds) == {}
    # clear by selection
    _run(ROW, ds, delegated, params={"row_id": c1, "state": "confirmed", "delegate": delegated})
    out = _run(CLEAR, ds, delegated, selected_labels=[{"label_id": c1, "sample_id": s1, "field": "gt"}],
               params={"delegate": delegated})
    assert out["n"] == 1 and _review_tags(ds) == {} and load_decisions(ds) == {}


def test_bad_row_id_fails_the_operation_and_writes_nothing(ds):
    with pytest.raises(Exception, match="is not a queue row id"):
        foo.execute_operator(ROW, ctx=dict(dataset=ds, params={"row_id": "nonsense", "state": "fixed"}))
    with pytest.raises(Exception, match="Validation error. Path: none"):  # the form refuses it
        foo.execute_operator(SELECTED, ctx=dict(dataset=ds, params={"state": "fixed"}))
    assert load_decisions(ds) == {} and _review_tags(ds) == {}


def test_forms(ds):
    def props(uri, **request):
        ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}, **request})
        return foo.get_operator(uri).resolve_type(ctx, "inputs").type.properties

    assert "none" in props(SELECTED)  # nothing selected: a warning, the form is invalid
    p = props(SELECTED, selected_labels=[{"label_id": "a" * 24, "sample_id": "b" * 24, "field": "gt"}])
    assert {"state", "delegate"} <= set(p) and set(p["state"].type.values) == {"confirmed", "not_an_error", "fixed"}
    assert {"state", "audit_keys", "reviewed_too", "delegate"} <= set(props(VIEW))
    assert {"row_id", "state"} <= set(props(ROW)) and "row_id" in props(CLEAR)
    for uri in (SELECTED, VIEW, ROW, CLEAR):
        assert foo.get_operator(uri).resolve_delegation(ExecutionContext(request_params={"params": {}})) is None
