"""The ``audit_duplicates`` and ``delete_audit`` operators through FiftyOne's operator executor,
immediate and delegated, asserting on what landed in a real dataset."""
import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

from iou_audit.results import list_audits

AUDIT = "@iou-audit/iou-audit/audit_duplicates"
DELETE = "@iou-audit/iou-audit/delete_audit"


@pytest.fixture
def ds():
    d = fo.Dataset()
    box = [0.1, 0.1, 0.2, 0.2]
    d.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png", gt=fo.Detections(detections=[
        fo.Detection(label="a", bounding_box=box),
        fo.Detection(label="a", bounding_box=box),           # exact copy: duplicate
        fo.Detection(label="b", bounding_box=[0.5, 0.5, 0.0, 0.1]),  # zero width: degenerate
        fo.Detection(label="a", bounding_box=[0.6, 0.1, 0.2, 0.2])])) for i in range(4)])
    yield d
    d.delete()


def test_form_lists_label_fields_from_schema(ds):
    ds.add_sample_field("other", fo.EmbeddedDocumentField, embedded_doc_type=fo.Polylines)
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    props = foo.get_operator(AUDIT).resolve_type(ctx, "inputs").type.properties
    assert {"label_field", "iou_thresh", "conflict_iou", "contain_ios", "audit_key", "delegate"} <= set(props)
    assert sorted(props["label_field"].type.values) == ["gt", "other"]  # Detections and Polylines fields


def test_immediate_run_then_delete(ds):
    res = foo.execute_operator(AUDIT, ctx=dict(dataset=ds, params={"label_field": "gt", "audit_key": "dups"}))
    assert res.result["n_duplicate"] == 4 and res.result["n_degenerate_box"] == 4
    assert res.result["n_class_conflict"] == 0
    ds.reload()
    assert "dups" in list_audits(ds)
    assert ds.count_label_tags()["dups:degenerate_box"] == 4
    assert ds.count("gt.detections.dups_dup_of") == 4
    requests = [r["operator_uri"] for r in res.executor.to_json()["requests"]]
    assert "reload_dataset" in requests and "set_view" in requests

    props = foo.get_operator(DELETE).resolve_type(
        ExecutionContext(request_params={"dataset_name": ds.name, "params": {}}), "inputs").type.properties
    assert "audit_key" in props
    res = foo.execute_operator(DELETE, ctx=dict(dataset=ds, params={"audit_key": "dups"}))
    assert res.result["audit_key"] == "dups"
    ds.reload()
    assert list_audits(ds) == [] and ds.count_label_tags() == {} and ds.list_saved_views() == []
    assert not ds.has_sample_field("dups_findings")


def test_current_view_target_audits_only_that_view(ds):
    view = ds.limit(2)
    res = foo.execute_operator(AUDIT, ctx=dict(dataset=ds, view=view, params={
        "label_field": "gt", "audit_key": "dups_view", "view_target": "CURRENT_VIEW"}))
    assert res.result["n_duplicate"] == 2


def test_delegated_run(ds):
    res = foo.execute_operator(AUDIT, ctx=dict(dataset=ds, request_delegation=True, params={
        "label_field": "gt", "audit_key": "dups_bg", "iou_thresh": 0.9, "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=AUDIT, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        assert doc.result.result["n_duplicate"] == 4
        ds.reload()
        assert "dups_bg" in list_audits(ds) and ds.count_label_tags()["dups_bg:duplicate"] >= 4
        assert doc.status.progress == pytest.approx(1.0)
    finally:
        dos.delete_operation(doc.id)
