"""Apply / undo of recorded fixes on a real dataset: the undo restores the label's exact database
document (compared as BSON bytes, position in the list included); undoing twice, applying on a
changed label and undoing over a later edit are refused and write nothing."""
import bson
import pytest
from bson import json_util
from relabel_support import make_dataset, raw_labels

import iou_audit
from iou_audit.relabel import FixRefused, apply_fix, list_fixes, plan_fix, select_confirmed, undo_fix
from iou_audit.review import load_decisions, mark_review, triage


@pytest.fixture
def ds(tmp_path):
    d = make_dataset(tmp_path / "img")
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree", consensus_field="cons")
    yield d
    d.delete()


def _gt(ds, i):
    return ds.skip(i).first().gt.detections


def _consensus_of(ds, label_id):
    for dets in ds.values("cons.detections"):
        for d in dets or []:
            if label_id in d.members:
                return d
    raise AssertionError(label_id)


def test_delete_duplicate_then_undo_restores_exact_bytes_and_position(ds):
    before = raw_labels(ds)
    dup = _gt(ds, 0)[1]  # the later copy: carries dups_dup_of
    assert dup["dups_dup_of"] == _gt(ds, 0)[0].id
    held = ds.first()  # an in-memory sample must see the fix too
    rec = apply_fix(ds, plan_fix(ds, "gt", dup.id, "delete_duplicate"), user="tester")
    assert [d.id for d in held.gt.detections] == [_gt(ds, 0)[0].id, _gt(ds, 0)[1].id]
    assert dup.id not in ds.values("gt.detections.id", unwind=True)
    assert rec["user"] == "tester" and rec["state"] == "applied" and rec["index"] == 1
    assert json_util.loads(rec["before"]) == bson.decode(before[0][1])  # the full previous label, readable
    undo_fix(ds, rec["fix_id"])
    assert raw_labels(ds) == before
    assert [d.id for d in held.gt.detections][1] == dup.id
    assert list_fixes(ds)[0]["state"] == "undone"


def test_keeping_copy_and_unflagged_labels_are_not_deleted(ds):
    with pytest.raises(FixRefused, match="keeps of a duplicate pair"):
        plan_fix(ds, "gt", _gt(ds, 0)[0].id, "delete_duplicate")
    with pytest.raises(FixRefused, match="not flagged duplicate"):
        plan_fix(ds, "gt", _gt(ds, 0)[2].id, "delete_duplicate")


def test_delete_refused_when_the_original_is_gone(ds):
    original = _gt(ds, 0)[0].id
    ds.delete_labels(ids=[original])
    with pytest.raises(FixRefused, match="no longer exists"):
        plan_fix(ds, "gt", _gt(ds, 0)[0].id, "delete_duplicate")


def test_consensus_class_sets_the_consensus_label_class_and_undo_restores(ds):
    before = raw_labels(ds)
    dog = _gt(ds, 0)[2]
    assert dog.label == "dog"
    cons = _consensus_of(ds, dog.id)
    assert cons.label == "cat"  # votes cat:2 (ann_b, ann_c), dog:1 (gt)
    rec = apply_fix(ds, plan_fix(ds, "gt", dog.id, "consensus_class"))
    fixed = _gt(ds, 0)[2]
    assert fixed.id == dog.id and fixed.label == "cat"
    assert fixed.bounding_box == dog.bounding_box and fixed["iscrowd"] == 0
    assert fixed.tags == dog.tags + ["review:fixed"]  # the finding is marked fixed in the review memory
    assert load_decisions(ds)[dog.id]["state"] == "fixed"
    assert rec["source"] == {"audit_key": "agree", "consensus_label_id": cons.id}
    undo_fix(ds, rec["fix_id"])
    assert raw_labels(ds) == before
    assert dog.id not in load_decisions(ds)  # no decision before the fix: none after the undo


def test_confirmed_finding_fixed_then_undone_is_confirmed_again(ds):
    dog = _gt(ds, 0)[2]
    mark_review(ds, [dog.id], "confirmed", user="ana")
    sel = select_confirmed(ds, "gt")
    assert sel.label_ids == (dog.id,) and "confirmed by ana" in sel.reasons[dog.id]
    before = raw_labels(ds)
    assert "review:confirmed" in _gt(ds, 0)[2].tags
    rec = apply_fix(ds, plan_fix(ds, "gt", dog.id, "consensus_class"), user="bo")
    assert rec["review_before"]["state"] == "confirmed"
    row = triage(ds, states=None).set_index("label_id").loc[dog.id]
    assert row["review_state"] == "fixed" and row["reviewed_by"] == "bo"
    assert "review:confirmed" not in _gt(ds, 0)[2].tags
    undo_fix(ds, rec["fix_id"])
    assert raw_labels(ds) == before  # review tag included
    d = load_decisions(ds)[dog.id]
    assert d["state"] == "confirmed" and d["user"] == "ana"
    assert select_confirmed(ds, "gt").label_ids == (dog.id,)


def test_consensus_box_copies_the_consensus_box_and_undo_restores(ds):
    before = raw_labels(ds)
    label = _gt(ds, 1)[0]
    cons = _consensus_of(ds, label.id)
    rec = apply_fix(ds, plan_fix(ds, "gt", label.id, "consensus_box"))
    fixed = _gt(ds, 1)[0]
    assert fixed.bounding_box == pytest.approx(cons.bounding_box, abs=0) and fixed.label == label.label
    assert fixed["note"] == "shifted"
    undo_fix(ds, rec["fix_id"])
    assert raw_labels(ds) == before


def test_undo_twice_is_a_clear_error(ds):
    rec = apply_fix(ds, plan_fix(ds, "gt", _gt(ds, 0)[2].id, "consensus_class"))
    undo_fix(ds, rec["fix_id"], user="u1")
    after_first = raw_labels(ds)
    with pytest.raises(FixRefused, match="already undone .* by u1"):
        undo_fix(ds, rec["fix_id"])
    assert raw_labels(ds) == after_first
    with pytest.raises(FixRefused, match="no fix 'nope'"):
        undo_fix(ds, "nope")


def test_apply_on_a_changed_label_is_refused(ds):
    plan = plan_fix(ds, "gt", _gt(ds, 0)[2].id, "consensus_class")
    sample = ds.first()
    sample.gt.detections[2].note = "edited meanwhile"
    sample.save()
    edited = raw_labels(ds)
    with pytest.raises(FixRefused, match="changed since the fix was planned"):
        apply_fix(ds, plan)
    assert raw_labels(ds) == edited and list_fixes(ds) == []
    # the operator's form passes the fingerprint it showed: a mismatch is refused before any write
    fresh = plan_fix(ds, "gt", _gt(ds, 0)[2].id, "consensus_class")
    with pytest.raises(FixRefused, match="changed since the fix was shown"):
        apply_fix(ds, fresh, expected=plan.fingerprint)


def test_undo_over_a_later_edit_is_refused(ds):
    rec = apply_fix(ds, plan_fix(ds, "gt", _gt(ds, 0)[2].id, "consensus_class"))
    sample = ds.first()
    sample.gt.detections[2].label = "bird"
    sample.save()
    with pytest.raises(FixRefused, match="edited after the fix"):
        undo_fix(ds, rec["fix_id"])
    assert _gt(ds, 0)[2].label == "bird"
    assert list_fixes(ds, state="applied")[0]["fix_id"] == rec["fix_id"]  # the refused undo left it applied


def test_bad_requests_name_the_problem(ds):
    with pytest.raises(ValueError, match="action must be one of"):
        plan_fix(ds, "gt", _gt(ds, 0)[0].id, "recolour")
    with pytest.raises(ValueError, match="not a FiftyOne label id"):
        plan_fix(ds, "gt", "xyz", "consensus_box")
    with pytest.raises(ValueError, match="not found in field 'gt'"):
        plan_fix(ds, "gt", "0" * 24, "consensus_box")
    with pytest.raises(FixRefused, match="already has the consensus class"):
        plan_fix(ds, "gt", _gt(ds, 1)[0].id, "consensus_class")
    with pytest.raises(FixRefused, match="not a member of any consensus label"):
        plan_fix(ds, "gt", _gt(ds, 0)[1].id, "consensus_class")


def test_no_agreement_audit_means_no_consensus_fix(tmp_path):
    d = make_dataset(tmp_path / "img2")
    try:
        with pytest.raises(FixRefused, match="no agreement audit with a consensus field"):
            plan_fix(d, "gt", d.first().gt.detections[0].id, "consensus_box")
    finally:
        d.delete()


def test_mask_labels_keep_their_box(tmp_path):
    import numpy as np

    d = make_dataset(tmp_path / "img3")
    try:
        s = d.skip(1).first()
        s.gt.detections[0].mask = np.ones((24, 30), bool)
        s.save()
        iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree", consensus_field="cons",
                                  geometry="boxes")
        with pytest.raises(FixRefused, match="instance mask"):
            plan_fix(d, "gt", s.gt.detections[0].id, "consensus_box")
    finally:
        d.delete()


def test_undo_delete_after_the_sample_is_gone_is_refused(ds):
    rec = apply_fix(ds, plan_fix(ds, "gt", _gt(ds, 0)[1].id, "delete_duplicate"))
    ds.delete_samples(ds.first().id)
    with pytest.raises(FixRefused, match="its sample was deleted"):
        undo_fix(ds, rec["fix_id"])
    assert list_fixes(ds)[0]["state"] == "applied"
