"""Send to annotation / load annotations through FiftyOne's own annotate() and load_annotations()
with a real AnnotationBackend subclass declared in FiftyOne's annotation config (tests/
relabel_support.DiskBackend): everything runs except a network call. The "annotator" is this test,
editing the uploaded file."""
import json

import fiftyone as fo
import pytest
from relabel_support import BACKEND, make_dataset, register_backend

import iou_audit
from iou_audit.relabel import (
    REASON_ATTR,
    BackendNotConfigured,
    check_backend,
    load_relabel_annotations,
    select_confirmed,
    select_labels,
    send_to_annotation,
)
from iou_audit.review import load_decisions, mark_review, triage


@pytest.fixture
def ds(tmp_path):
    d = make_dataset(tmp_path / "img")
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree", consensus_field="cons")
    register_backend(tmp_path)
    yield d
    fo.annotation_config.backends.pop(BACKEND, None)
    d.delete()


def _edit_upload(path, edit):
    upload = json.loads(path.read_text())
    for s in upload["samples"]:
        s["labels"] = [d for d in (edit(d) for d in s["labels"]) if d is not None]
    path.write_text(json.dumps(upload))
    return upload


def test_round_trip_merges_edits_and_reports_fixed(ds, tmp_path):
    sel = select_labels(ds, "gt")
    dog, dup, ok = ds.first().gt.detections[2], ds.first().gt.detections[1], ds.first().gt.detections[0]
    other = ds.skip(2).first().gt.detections[0]  # no finding: its sample is not sent
    send_to_annotation(sel, "fix1", backend=BACKEND, user="lead")
    assert ds.list_annotation_runs() == ["fix1"]
    seen = {}

    def annotator(d):
        lid = d["_id"]["$oid"]
        seen[lid] = d.get(REASON_ATTR)
        if lid == dog.id:
            return dict(d, label="cat")
        if lid == dup.id:
            return None  # deleted
        return d

    _edit_upload(tmp_path / "fix1.json", annotator)
    # the annotator saw why: reasons on flagged labels, the other labels of the sample came along
    assert seen[dog.id] == "agree:class_conflict (gt says 'dog'; votes cat:2, dog:1)"
    assert seen[ok.id] == "dups:duplicate" and other.id not in seen
    assert len(seen) == 4  # all labels of the 2 samples with findings

    out = load_relabel_annotations(ds, "fix1")
    assert sorted(out["fixed"]) == sorted([dog.id, dup.id])
    assert out["deleted"] == [dup.id] and out["changed"] == [dog.id] and out["n_unexpected"] == 0
    assert sorted(out["unchanged"]) == sorted(set(sel.label_ids) - {dog.id, dup.id})
    labels = {d.id: d for d in ds.values("gt.detections", unwind=True)}
    assert labels[dog.id].label == "cat" and dup.id not in labels and labels[ok.id]["note"] == "a"
    assert ds.get_field(f"gt.detections.{REASON_ATTR}") is None
    assert ds.count(f"gt.detections.{REASON_ATTR}") == 0
    assert labels[other.id].to_dict() == other.to_dict()
    # review memory: the changed label's row is fixed (out of the default queue); the deleted one is gone
    assert out["n_marked_fixed"] == 1
    queue = triage(ds, states=None).set_index("label_id")
    assert queue.loc[dog.id, "review_state"] == "fixed" and dup.id not in queue.index
    assert dog.id not in set(triage(ds)["label_id"])


def test_confirmed_findings_go_to_annotation(ds, tmp_path):
    dog = ds.first().gt.detections[2]
    mark_review(ds, [dog.id], "confirmed", user="ana")
    sel = select_confirmed(ds, "gt")
    send_to_annotation(sel, "conf", backend=BACKEND, only_flagged=True)
    upload = _edit_upload(tmp_path / "conf.json", lambda d: dict(d, label="cat"))
    (label,) = upload["samples"][0]["labels"]
    assert label["_id"]["$oid"] == dog.id and "confirmed by ana" in label[REASON_ATTR]
    assert "class_conflict" in label[REASON_ATTR]
    out = load_relabel_annotations(ds, "conf")
    assert out["changed"] == [dog.id] and load_decisions(ds)[dog.id]["state"] == "fixed"


def test_only_flagged_sends_only_those_labels(ds, tmp_path):
    sel = select_labels(ds, "gt", tags=["agree:class_conflict"])
    send_to_annotation(sel, "fix2", backend=BACKEND, only_flagged=True)
    upload = _edit_upload(tmp_path / "fix2.json", lambda d: dict(d, bounding_box=[0.5, 0.5, 0.2, 0.2]))
    assert [len(s["labels"]) for s in upload["samples"]] == [1]
    before = {d.id: d.to_dict() for d in ds.values("gt.detections", unwind=True)}
    out = load_relabel_annotations(ds, "fix2")
    after = {d.id: d.to_dict() for d in ds.values("gt.detections", unwind=True)}
    assert out["changed"] == list(sel.label_ids)
    assert after[sel.label_ids[0]]["bounding_box"] == [0.5, 0.5, 0.2, 0.2]
    assert {k: v for k, v in after.items() if k not in sel.label_ids} == \
        {k: v for k, v in before.items() if k not in sel.label_ids}  # labels not sent are untouched


def test_unconfigured_backend_says_how_to_configure(ds, monkeypatch):
    params = dict(fo.annotation_config.backends["cvat"])
    for k in ("username", "password"):
        params.pop(k, None)
    monkeypatch.setitem(fo.annotation_config.backends, "cvat", params)
    sel = select_labels(ds, "gt")
    with pytest.raises(BackendNotConfigured, match="'cvat' lacks username, password.*FIFTYONE_CVAT_USERNAME"):
        send_to_annotation(sel, "nope", backend="cvat")
    with pytest.raises(BackendNotConfigured, match="'nosuch' is not configured.*known backends"):
        check_backend("nosuch")
    assert ds.list_annotation_runs() == []
    assert check_backend("cvat", username="u", password="p") == "cvat"


def test_refusals(ds):
    sel = select_labels(ds, "gt")
    send_to_annotation(sel, "k", backend=BACKEND)
    with pytest.raises(ValueError, match="'k' already exists"):
        send_to_annotation(sel, "k", backend=BACKEND)
    with pytest.raises(ValueError, match="valid Python identifier"):
        send_to_annotation(sel, "a-b", backend=BACKEND)
    with pytest.raises(ValueError, match="not sent by iou-audit"):
        load_relabel_annotations(ds, "other")
