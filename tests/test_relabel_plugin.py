"""The relabel operators through FiftyOne's operator executor (immediate and delegated), on a real
dataset, real files and the disk annotation backend of relabel_support."""
import json

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext
from relabel_support import BACKEND, make_dataset, raw_labels, register_backend

import iou_audit
from iou_audit.relabel import list_fixes
from iou_audit.review import mark_review

P = "@iou-audit/iou-audit/"


@pytest.fixture
def ds(tmp_path):
    d = make_dataset(tmp_path / "img")
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree", consensus_field="cons")
    register_backend(tmp_path)
    yield d
    fo.annotation_config.backends.pop(BACKEND, None)
    d.delete()


def _props(ds, name, params=None, **ctx):
    c = ExecutionContext(request_params={"dataset_name": ds.name, "params": params or {}, **ctx})
    return foo.get_operator(P + name).resolve_type(c, "inputs").type.properties


def _delegated(uri, ds, params):
    res = foo.execute_operator(uri, ctx=dict(dataset=ds, request_delegation=True, params={**params, "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=uri, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        return doc.result.result
    finally:
        dos.delete_operation(doc.id)


def test_export_form_and_immediate_run(ds, tmp_path):
    props = _props(ds, "export_relabel_queue", {"label_field": "gt"})
    assert {"label_field", "source", "tags", "format", "export_dir", "export_media", "only_flagged"} <= set(props)
    assert sorted(props["format"].type.values) == ["coco", "cvat", "yolo"]
    res = foo.execute_operator(P + "export_relabel_queue", ctx=dict(dataset=ds, params={
        "label_field": "gt", "source": "findings", "tags": ["agree:class_conflict"], "format": "coco",
        "export_dir": str(tmp_path / "out")}))
    assert res.result == {"export_dir": str(tmp_path / "out"), "format": "coco", "n_samples": 1, "n_labels": 3,
                          "n_flagged": 1}
    assert len(json.loads((tmp_path / "out/relabel_queue.json").read_text())) == 1


def test_export_refuses_escaping_dir(ds, tmp_path):
    with pytest.raises(Exception, match=r"contains '\.\.'"):
        foo.execute_operator(P + "export_relabel_queue", ctx=dict(dataset=ds, params={
            "label_field": "gt", "export_dir": str(tmp_path / "a" / ".." / "b")}))


def test_export_selected_labels_delegated(ds, tmp_path):
    lab = ds.first().gt.detections[2]
    selected = [{"label_id": lab.id, "sample_id": ds.first().id, "field": "gt", "frame_number": None}]
    props = _props(ds, "export_relabel_queue", {"label_field": "gt"}, selected_labels=selected)
    assert props["source"].default == "selected"
    res = foo.execute_operator(P + "export_relabel_queue", ctx=dict(
        dataset=ds, selected_labels=selected, request_delegation=True, params={
            "label_field": "gt", "source": "selected", "format": "yolo", "only_flagged": True, "delegate": True,
            "export_dir": str(tmp_path / "y")}))
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=P + "export_relabel_queue", dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        assert doc.result.result["n_labels"] == 1 and doc.result.result["n_flagged"] == 1
    finally:
        dos.delete_operation(doc.id)
    assert (tmp_path / "y/labels/val/img0.txt").read_text().split()[0] == "0"  # one class: dog


def test_send_and_load_immediate(ds, tmp_path):
    props = _props(ds, "send_to_annotation", {"label_field": "gt"})
    assert BACKEND in props["backend"].type.values
    res = foo.execute_operator(P + "send_to_annotation", ctx=dict(dataset=ds, params={
        "label_field": "gt", "source": "findings", "tags": ["agree:class_conflict"], "backend": BACKEND,
        "anno_key": "r1"}))
    assert res.result == {"anno_key": "r1", "backend": BACKEND, "n_samples": 1, "n_flagged": 1}
    dog = ds.first().gt.detections[2]
    path = tmp_path / "r1.json"
    upload = json.loads(path.read_text())
    for d in upload["samples"][0]["labels"]:
        if d["_id"]["$oid"] == dog.id:
            assert d["relabel_reason"].startswith("agree:class_conflict")
            d["label"] = "cat"
    path.write_text(json.dumps(upload))
    assert _props(ds, "load_relabel_annotations")["anno_key"].type.values == ["r1"]
    res = foo.execute_operator(P + "load_relabel_annotations", ctx=dict(dataset=ds, params={"anno_key": "r1"}))
    assert res.result == {"anno_key": "r1", "n_fixed": 1, "n_deleted": 0, "n_changed": 1, "n_unchanged": 0,
                          "n_marked_fixed": 1}
    assert ds.first().gt.detections[2].label == "cat"
    assert "reload_dataset" in [r["operator_uri"] for r in res.executor.to_json()["requests"]]


def test_send_and_load_delegated(ds, tmp_path):
    out = _delegated(P + "send_to_annotation", ds, {"label_field": "gt", "source": "findings",
                                                     "backend": BACKEND, "anno_key": "r2"})
    assert out["n_flagged"] == 4
    path = tmp_path / "r2.json"
    upload = json.loads(path.read_text())
    upload["samples"][1]["labels"] = []  # the annotator deletes the flagged box of sample 1
    path.write_text(json.dumps(upload))
    out = _delegated(P + "load_relabel_annotations", ds, {"anno_key": "r2"})
    assert out["n_deleted"] == 1 and out["n_fixed"] == 1 and out["n_unchanged"] == 3


def test_no_backend_form_says_how_to_configure(ds, monkeypatch):
    fo.annotation_config.backends.pop(BACKEND, None)
    for name in list(fo.annotation_config.backends):
        monkeypatch.setitem(fo.annotation_config.backends, name, {
            k: v for k, v in fo.annotation_config.backends[name].items() if k not in ("username", "password", "api_key")})
    props = _props(ds, "send_to_annotation")
    warning = props["no_backend"]
    assert "FIFTYONE_CVAT_URL" in warning.view.description and warning.invalid
    with pytest.raises(Exception, match="Path: no_backend"):  # the invalid form refuses execution
        foo.execute_operator(P + "send_to_annotation", ctx=dict(dataset=ds, params={
            "label_field": "gt", "backend": "cvat", "anno_key": "x"}))


def test_apply_then_undo_through_operators(ds):
    before = raw_labels(ds)
    dup = ds.first().gt.detections[1]
    selected = [{"label_id": dup.id, "sample_id": ds.first().id, "field": "gt", "frame_number": None}]
    props = _props(ds, "apply_fix", {"label_field": "gt", "action": "delete_duplicate"}, selected_labels=selected)
    assert props["label_id"].default == dup.id and "a copy of" in props["plan"].view.label
    expected = props["expected"].default
    res = foo.execute_operator(P + "apply_fix", ctx=dict(dataset=ds, selected_labels=selected, params={
        "label_field": "gt", "label_id": dup.id, "action": "delete_duplicate", "expected": expected}))
    fix_id = res.result["fix_id"]
    assert dup.id not in ds.values("gt.detections.id", unwind=True)
    assert _props(ds, "undo_fix")["fix_id"].type.values == [fix_id]
    assert _props(ds, "undo_fix", {})["fix_id"].default == fix_id
    foo.execute_operator(P + "undo_fix", ctx=dict(dataset=ds, params={"fix_id": fix_id}))
    assert raw_labels(ds) == before and list_fixes(ds)[0]["state"] == "undone"
    with pytest.raises(Exception, match="already undone"):
        foo.execute_operator(P + "undo_fix", ctx=dict(dataset=ds, params={"fix_id": fix_id}))
    # a refused plan shows why in the form and makes it invalid
    props = _props(ds, "apply_fix", {"label_field": "gt", "action": "delete_duplicate",
                                     "label_id": ds.first().gt.detections[2].id})
    assert props["refused"].invalid and "not flagged duplicate" in props["refused"].view.description


def test_apply_refused_when_label_changed_after_form(ds):
    dog = ds.first().gt.detections[2]
    props = _props(ds, "apply_fix", {"label_field": "gt", "action": "consensus_class", "label_id": dog.id})
    s = ds.first()
    s.gt.detections[2].note = "edited"
    s.save()
    with pytest.raises(Exception, match="changed since the fix was shown"):
        foo.execute_operator(P + "apply_fix", ctx=dict(dataset=ds, params={
            "label_field": "gt", "label_id": dog.id, "action": "consensus_class",
            "expected": props["expected"].default}))
    assert ds.first().gt.detections[2].label == "dog" and list_fixes(ds) == []


def test_apply_and_undo_delegated(ds):
    """Delegated fixes: the plan's fingerprint from the form travels with the queued operation, so a
    label edited between the form and the worker is refused there too, and nothing changes."""
    before = raw_labels(ds)
    dup = ds.first().gt.detections[1]
    props = _props(ds, "apply_fix", {"label_field": "gt", "action": "delete_duplicate", "label_id": dup.id})
    assert "delegate" in props
    out = _delegated(P + "apply_fix", ds, {"label_field": "gt", "label_id": dup.id, "action": "delete_duplicate",
                                           "expected": props["expected"].default})
    assert dup.id not in ds.values("gt.detections.id", unwind=True)
    assert list_fixes(ds)[0]["fix_id"] == out["fix_id"] and list_fixes(ds)[0]["state"] == "applied"
    back = _delegated(P + "undo_fix", ds, {"fix_id": out["fix_id"]})
    assert back == {"fix_id": out["fix_id"], "label_id": dup.id}
    assert raw_labels(ds) == before and list_fixes(ds)[0]["state"] == "undone"

    dog = ds.first().gt.detections[2]
    props = _props(ds, "apply_fix", {"label_field": "gt", "action": "consensus_class", "label_id": dog.id})
    s = ds.first()
    s.gt.detections[2].note = "edited"
    s.save()
    uri = P + "apply_fix"
    res = foo.execute_operator(uri, ctx=dict(dataset=ds, request_delegation=True, params={
        "label_field": "gt", "label_id": dog.id, "action": "consensus_class",
        "expected": props["expected"].default, "delegate": True}))
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=uri, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "failed" and "changed since the fix was shown" in str(doc.result.error)
    finally:
        dos.delete_operation(doc.id)
    assert ds.first().gt.detections[2].label == "dog" and len(list_fixes(ds)) == 1


def test_confirmed_source_exports_the_confirmed_findings(ds, tmp_path):
    dog = ds.first().gt.detections[2]
    mark_review(ds, [dog.id], "confirmed", user="ana")
    props = _props(ds, "export_relabel_queue", {"label_field": "gt", "source": "confirmed"})
    assert "confirmed" in props["source"].type.values and "confirmed_note" in props
    out = _delegated(P + "export_relabel_queue", ds, {"label_field": "gt", "source": "confirmed",
                                                       "export_dir": str(tmp_path / "c"), "format": "coco"})
    assert out["n_flagged"] == 1
    (row,) = json.loads((tmp_path / "c/relabel_queue.json").read_text())
    assert row["label_id"] == dog.id and "confirmed by ana" in row["relabel_reason"]
    mark_review(ds, [dog.id], "not_an_error")
    with pytest.raises(Exception, match="no confirmed findings on field 'gt'"):
        foo.execute_operator(P + "export_relabel_queue", ctx=dict(dataset=ds, params={
            "label_field": "gt", "source": "confirmed", "export_dir": str(tmp_path / "d")}))
