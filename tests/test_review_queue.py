"""The triage queue and review memory (issue 11, parts 1 and 2) on real FiftyOne datasets.

Expected values are fixed by construction (exact copies have IoU 1; scores put into hand-built
findings; noisy-OR computed by hand here), never taken from the code under test.
"""
import fiftyone as fo
import numpy as np
import pandas as pd
import pytest

import iou_audit
from iou_audit.results import AuditResult, delete_audit, load_audit, make_findings, save_audit
from iou_audit.review import (
    COUNT_FIELDS,
    QUEUE_COLUMNS,
    QUEUE_STATES,
    clear_review,
    load_decisions,
    mark_review,
    triage,
)
from iou_audit.review.content import read_labels

BOX = [0.1, 0.1, 0.2, 0.2]


def _det(label, box, **kw):
    return fo.Detection(label=label, bounding_box=list(box), **kw)


@pytest.fixture
def ds():
    """Three samples, each with an exact duplicate pair (the copy is flagged) and a lone box;
    predictions that support only the first box of each pair."""
    d = fo.Dataset()
    samples = []
    for i in range(3):
        x = 0.1 + 0.2 * i
        samples.append(fo.Sample(
            filepath=f"/nonexistent/{i}.png", metadata=fo.ImageMetadata(width=200, height=100),
            gt=fo.Detections(detections=[_det("RBC", [x, 0.1, 0.2, 0.2]), _det("RBC", [x, 0.1, 0.2, 0.2]),
                                         _det("WBC", [x, 0.6, 0.1, 0.1])]),
            pred=fo.Detections(detections=[_det("RBC", [x, 0.1, 0.2, 0.2], confidence=0.9),
                                           _det("WBC", [x, 0.6, 0.1, 0.1], confidence=0.8)])))
    d.add_samples(samples)
    yield d
    d.delete()


def _ids(ds, i):
    """(sample id, [gt label ids]) of the i-th sample."""
    s = ds.skip(i).first()
    return s.id, [det.id for det in s.gt.detections]


def _set_box(ds, sample_id, label_id, box):
    s = ds[sample_id]
    for det in s.gt.detections:
        if det.id == label_id:
            det.bounding_box = list(box)
    s.save()


def _tags(ds, field="gt"):
    return {det.id: list(det.tags) for dets in ds.values(f"{field}.detections") for det in dets}


def _hand_audit(ds, key, audit, rows):
    """Store an audit whose findings are exactly ``rows`` (dicts in the findings shape)."""
    save_audit(ds, AuditResult(audit, key, {}, make_findings(rows, audit=audit)))


def test_no_audits_gives_an_empty_queue_with_a_message(ds):
    q = triage(ds)
    assert len(q) == 0 and list(q.columns) == QUEUE_COLUMNS
    assert "no stored audits" in q.attrs["message"] and ds.name in q.attrs["message"]
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    q = triage(ds, audit_keys=["nope"])
    assert len(q) == 0 and "none of the audits ['nope']" in q.attrs["message"] and "dups" in q.attrs["message"]
    assert len(triage(ds, audit_keys=[])) == 0


def test_label_flagged_by_three_audits_is_one_row_above_rows_of_one(ds):
    sid, (a, copy, wbc) = _ids(ds, 0)
    sid1, (a1, copy1, wbc1) = _ids(ds, 1)
    _hand_audit(ds, "h1", "duplicates", [
        {"kind": "duplicate", "sample_id": sid, "field": "gt", "label_id": copy, "other_field": "gt",
         "other_label_id": a, "label": "RBC", "score": 0.5, "iou": 0.93, "detail": "RBC vs RBC: IoU 0.930 (boxes)"},
        {"kind": "duplicate", "sample_id": sid1, "field": "gt", "label_id": copy1, "label": "RBC", "score": 0.95,
         "iou": 0.95, "detail": "RBC vs RBC: IoU 0.950 (boxes)"}])
    _hand_audit(ds, "h2", "predictions", [
        {"kind": "class_swap", "sample_id": sid, "field": "gt", "label_id": copy, "label": "RBC", "score": 0.6,
         "detail": "a 0.91 WBC prediction covers it"},
        {"kind": "possible_spurious", "sample_id": sid, "field": "gt", "label_id": copy, "label": "RBC",
         "score": 0.2, "detail": "no prediction supports it (best support 0.10)"}])
    _hand_audit(ds, "h3", "agreement", [
        {"kind": "extra_in_annotator", "sample_id": sid, "field": "gt", "label_id": copy, "label": "RBC",
         "score": 0.5, "detail": "only 1 of 3 annotators have this object (quorum 2); gt is one"},
        {"kind": "missing_in_annotator", "sample_id": sid1, "field": "ann_b", "other_field": "gt",
         "other_label_id": a1, "label": "RBC", "score": 0.7,
         "detail": "ann_b lacks an object found by 2 of 3 annotators"}])
    q = triage(ds)
    assert q["row_id"].is_unique
    assert list(q["row_id"]) == [copy, copy1, f"missing:ann_b:{a1}"]  # by combined score
    top = q.iloc[0]
    assert sorted(top["audits"]) == ["h1", "h2", "h3"]
    assert top["n_audits"] == 3 and set(top["kinds"]) == {"duplicate", "class_swap", "possible_spurious",
                                                         "extra_in_annotator"}
    # README's rule, by hand: no scoring source, so the base rate is the documented 0.1 (odds 1/9);
    # each audit's best score s multiplies the odds by odds(s) / odds(0.1): 0.5 -> 9, 0.6 -> 13.5
    odds = (1 / 9) * (1.0 / (1 / 9)) * (1.5 / (1 / 9)) * (1.0 / (1 / 9))
    assert top["score"] == pytest.approx(odds / (1 + odds))
    assert top["audit_scores"] == {"h1": 0.5, "h2": 0.6, "h3": 0.5}
    assert "h1: duplicate of another RBC box, IoU 0.93" in top["evidence"]
    assert "h2: labelled RBC, but a 0.91 WBC prediction covers it" in top["evidence"]
    assert "only 1 of 3 annotators drew this RBC object (quorum 2)" in top["evidence"]
    assert top["evidence"].count("; ") == 3 and top["review_state"] == "open" and top["label_id"] == copy
    missing = q.iloc[2]
    assert missing["label_id"] is None and missing["field"] == "ann_b" and missing["row_type"] == "missing"
    assert "ann_b lacks an RBC object that 2 of 3 annotators drew" in missing["evidence"]
    assert q.iloc[1]["score"] == pytest.approx(0.95) and q.iloc[1]["n_audits"] == 1

    # any subset of audits
    only = triage(ds, audit_keys=["h2"])
    assert list(only["row_id"]) == [copy] and only.iloc[0]["score"] == pytest.approx(0.6)
    two = triage(ds, audit_keys=["h1", "h3", "gone"])
    # two 0.5 flags: odds 1/9 * 9 * 9 = 9 -> 0.9, below the single 0.95 duplicate
    assert list(two["row_id"][:2]) == [copy1, copy] and two.iloc[1]["n_audits"] == 2
    assert two.iloc[1]["score"] == pytest.approx(0.9)
    assert two.attrs["missing_audits"] == ["gone"]
    # a view: only its samples
    assert set(triage(ds.select(sid1))["row_id"]) == {f"missing:ann_b:{a1}", copy1}


def test_real_audits_merge_and_words(ds):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    iou_audit.audit_predictions(ds, "pred", "gt", audit_key="preds")
    q = triage(ds)
    dup_findings = load_audit(ds, "dups").findings
    copies = set(dup_findings.loc[dup_findings["kind"] == "duplicate", "label_id"])
    assert len(copies) == 3
    for _, row in q.iterrows():  # the audits named on a row are exactly those whose findings hold it
        holders = [k for k in ("dups", "preds") if row["label_id"] in set(load_audit(ds, k).findings["label_id"])]
        assert sorted(row["audits"]) == holders
    rows = q[q["row_id"].isin(copies)]
    assert len(rows) == 3
    assert all("dups: duplicate of another RBC box, IoU 1.00" in e for e in rows["evidence"])
    assert (q["n_audits"].diff().dropna() <= 0).all()


def test_memory_life_cycle_across_reruns(ds):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    (s0, (_, c0, _)), (s1, (_, c1, _)), (s2, (_, c2, _)) = (_ids(ds, i) for i in range(3))
    assert set(triage(ds)["row_id"]) == {c0, c1, c2}

    assert mark_review(ds, [c0], "not_an_error", user="ana") == 1
    assert mark_review(ds, [c1, c2], "fixed") == 2
    d = load_decisions(ds)
    assert d[c0]["state"] == "not_an_error" and d[c0]["user"] == "ana" and d[c0]["field"] == "gt"
    assert d[c0]["sample_id"] == s0 and d[c1]["state"] == "fixed" and d[c0]["fingerprint"]
    assert len(triage(ds)) == 0  # not_an_error and fixed, labels unchanged: out of the default queue
    every = triage(ds, states=None).set_index("row_id")
    assert every.loc[c0, "review_state"] == "not_an_error" and every.loc[c0, "reviewed_by"] == "ana"
    assert every.loc[c1, "review_state"] == "fixed"

    # re-running the audit (same key), and deleting it then running again, keeps every decision
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    assert len(triage(ds)) == 0
    delete_audit(ds, "dups")
    assert load_decisions(ds).keys() == {c0, c1, c2}
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    assert len(triage(ds)) == 0
    assert ds.count_label_tags()["review:not_an_error"] == 1  # the audits left the review tags alone

    # not_an_error, then the label changes: back as changed_since_review (still a duplicate)
    x0 = ds[s0].gt.detections[0].bounding_box[0]
    _set_box(ds, s0, c0, [x0 + 0.001, 0.1, 0.2, 0.2])
    # fixed, label changed, still flagged by the stale run: out; flagged by a run after the fix: open
    _set_box(ds, s1, c1, [0.3 + 0.001, 0.1, 0.2, 0.2])
    # fixed, label moved away: no longer a duplicate once the audit re-runs
    _set_box(ds, s2, c2, [0.5, 0.5, 0.2, 0.2])
    q = triage(ds).set_index("row_id")
    assert list(q.index) == [c0] and q.loc[c0, "review_state"] == "changed_since_review"
    assert q.loc[c0, "reviewed_by"] == "ana"
    every = triage(ds, states=QUEUE_STATES).set_index("row_id")
    assert every.loc[c1, "review_state"] == "fixed" and every.loc[c2, "review_state"] == "fixed"

    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    q = triage(ds).set_index("row_id")
    assert set(q.index) == {c0, c1}
    assert q.loc[c0, "review_state"] == "changed_since_review"
    assert q.loc[c1, "review_state"] == "open" and q.loc[c1, "reviewed_by"] is None  # a new finding
    assert c2 not in set(triage(ds, states=None)["row_id"])  # fixed and no longer flagged: gone

    # reviewing the changed label again makes it current
    mark_review(ds, [c0], "not_an_error")
    assert set(triage(ds)["row_id"]) == {c1}


def test_tags_and_counts(ds):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    (s0, (_, c0, w0)), (s1, (_, c1, _)) = _ids(ds, 0), _ids(ds, 1)
    mark_review(ds, [c0, w0], "confirmed")  # w0 was never flagged: a reviewer may still mark it
    mark_review(ds, [{"label_id": c1, "field": "gt", "sample_id": s1}], "not_an_error")
    assert ds.count_label_tags() == {**ds.count_label_tags(), "review:confirmed": 2, "review:not_an_error": 1}
    tags = _tags(ds)
    assert "review:confirmed" in tags[c0] and "dups:duplicate" in tags[c0]
    counts = {name: dict(zip(ds.values("id"), ds.values(name))) for name in COUNT_FIELDS.values()}
    assert counts["review_confirmed"][s0] == 2 and counts["review_not_an_error"][s1] == 1
    assert counts["review_fixed"][s0] == 0 and isinstance(ds.get_field("review_confirmed"), fo.IntField)
    # sortable and filterable in the App
    assert ds.sort_by("review_confirmed", reverse=True).first().id == s0
    assert len(ds.match_labels(tags="review:confirmed")) == 1

    # marking again replaces the decision, the tag and the counts
    mark_review(ds, [c0], "fixed")
    tags = _tags(ds)
    assert [t for t in tags[c0] if t.startswith("review:")] == ["review:fixed"]
    assert ds[s0].review_confirmed == 1 and ds[s0].review_fixed == 1
    assert clear_review(ds, [c0, w0]) == 2
    assert clear_review(ds, [c0]) == 0
    tags = _tags(ds)
    assert not [t for t in tags[c0] + tags[w0] if t.startswith("review:")]
    assert ds[s0].review_confirmed == 0 and ds[s0].review_fixed == 0 and ds[s1].review_not_an_error == 1
    assert set(load_decisions(ds)) == {c1}
    # deleting the audit keeps the review tag of c1
    delete_audit(ds, "dups")
    assert ds.count_label_tags() == {"review:not_an_error": 1}


def test_bad_ids_and_states_are_refused_before_writing(ds):
    _, (_, c0, _) = _ids(ds, 0)
    with pytest.raises(ValueError, match="review state must be one of"):
        mark_review(ds, [c0], "looks_fine")
    with pytest.raises(ValueError, match="not a label or sample"):
        mark_review(ds, [c0, "0123456789abcdef01234567"], "confirmed")
    with pytest.raises(ValueError, match="is not a queue row id"):
        mark_review(ds, ["hello"], "confirmed")
    with pytest.raises(ValueError, match="queue states must be among"):
        triage(ds, states=["done"])
    assert load_decisions(ds) == {} and "review:confirmed" not in ds.count_label_tags()


def test_sample_pair_rows(ds):
    s0, s1, s2 = ds.values("id")
    _hand_audit(ds, "leaks", "splits", [
        {"kind": "leak_near", "sample_id": s1, "other_sample_id": s0, "score": 0.9,
         "detail": "test vs train: pHash distance 3/64 bits"},
        {"kind": "unreadable_image", "sample_id": s2, "score": 1.0, "detail": "cannot read image '/x': missing"},
        {"kind": "split_drift", "sample_id": "", "field": "gt", "score": 0.8, "detail": "a vs b: classes"}])
    q = triage(ds).set_index("row_id")
    pair = "+".join(sorted([s0, s1]))
    assert set(q.index) == {pair, s2}  # the dataset-level drift finding is not a queue row
    assert q.loc[pair, "other_sample_id"] == max(s0, s1) and q.loc[pair, "label_id"] is None
    assert "a near-identical image is in another split (test vs train: pHash distance 3/64 bits)" in q.loc[pair, "evidence"]
    assert mark_review(ds, [pair, s2], "confirmed") == 2
    assert ds[s0].review_confirmed == 1 and ds[s1].review_confirmed == 1 and ds[s2].review_confirmed == 1
    assert triage(ds).set_index("row_id").loc[pair, "review_state"] == "confirmed"


def _fingerprint(ds, field, label_id):
    return read_labels(ds, {field: [label_id]})[label_id]["fingerprint"]


def test_fingerprints_of_boxes_masks_and_polylines(dataset):
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:5, 3:9] = True
    dataset.add_sample(fo.Sample(filepath="/nonexistent/m.png",
                                 inst=fo.Detections(detections=[_det("cell", BOX, mask=mask)]),
                                 poly=fo.Polylines(polylines=[fo.Polyline(label="road", points=[[(0.1, 0.1), (0.5, 0.1), (0.3, 0.4)]],
                                                                          closed=True, filled=True)])))
    s = dataset.first()
    det, line = s.inst.detections[0], s.poly.polylines[0]
    fm, fp = _fingerprint(dataset, "inst", det.id), _fingerprint(dataset, "poly", line.id)

    # what does not count: confidence, tags, attributes; the same mask as uint8
    det.confidence, det.tags, det["note"] = 0.3, ["x"], "hi"
    det.mask = mask.astype(np.uint8) * 255
    s.save()
    assert _fingerprint(dataset, "inst", det.id) == fm
    # one mask pixel, the box, the class: each counts
    changed = mask.copy()
    changed[0, 0] = True
    det.mask = changed
    s.save()
    fm2 = _fingerprint(dataset, "inst", det.id)
    assert fm2 != fm
    det.bounding_box = [0.1, 0.1, 0.2, 0.2000001]  # 1e-7: below the rounding
    s.save()
    assert _fingerprint(dataset, "inst", det.id) == fm2
    det.bounding_box = [0.1, 0.1, 0.2, 0.21]
    s.save()
    assert _fingerprint(dataset, "inst", det.id) != fm2
    # polylines: a vertex, the closed flag
    line.points = [[(0.1, 0.1), (0.5, 0.1), (0.3, 0.41)]]
    s.save()
    fp2 = _fingerprint(dataset, "poly", line.id)
    assert fp2 != fp
    line.closed = False
    s.save()
    assert _fingerprint(dataset, "poly", line.id) not in (fp, fp2)
    line.points, line.closed = [[(0.1, 0.1), (0.5, 0.1), (0.3, 0.4)]], True
    s.save()
    assert _fingerprint(dataset, "poly", line.id) == fp

    # keypoints: a point moved, a point missing (NaN)
    dataset.add_sample_field("kps", fo.EmbeddedDocumentField, embedded_doc_type=fo.Keypoints)
    s["kps"] = fo.Keypoints(keypoints=[fo.Keypoint(label="person", points=[(0.1, 0.2), (0.3, 0.4)])])
    s.save()
    kp = s.kps.keypoints[0]
    fk = _fingerprint(dataset, "kps", kp.id)
    kp.points = [(0.1, 0.2), (0.3, 0.41)]
    s.save()
    fk2 = _fingerprint(dataset, "kps", kp.id)
    kp.points = [(0.1, 0.2), (float("nan"), float("nan"))]
    s.save()
    assert len({fk, fk2, _fingerprint(dataset, "kps", kp.id)}) == 3
    assert _fingerprint(dataset, "kps", kp.id) == _fingerprint(dataset, "kps", kp.id)
    assert mark_review(dataset, [kp.id], "confirmed") == 1  # found in the Keypoints field, tagged there
    assert dataset.count_label_tags(label_fields="kps") == {"review:confirmed": 1}
    assert clear_review(dataset, [kp.id]) == 1 and dataset.count_label_tags(label_fields="kps") == {}

    # the life cycle works on a polyline row too
    _hand_audit(dataset, "p", "duplicates", [{"kind": "contained", "sample_id": s.id, "field": "poly",
                                              "label_id": line.id, "label": "road", "score": 0.97}])
    mark_review(dataset, [line.id], "not_an_error")
    assert len(triage(dataset)) == 0
    line.points = [[(0.1, 0.1), (0.5, 0.1), (0.3, 0.45)]]
    s.save()
    assert triage(dataset).loc[0, "review_state"] == "changed_since_review"


def test_deleted_label_leaves_the_queue(ds):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    s0, (_, c0, _) = _ids(ds, 0)
    s = ds[s0]
    s.gt.detections = [d for d in s.gt.detections if d.id != c0]
    s.save()
    assert c0 not in set(triage(ds, states=None)["row_id"])
    assert isinstance(triage(ds), pd.DataFrame)
    with pytest.raises(ValueError, match="not a label or sample"):
        mark_review(ds, [c0], "fixed")
    with pytest.raises(ValueError, match="cannot mark"):  # the right id in the wrong field
        mark_review(ds, [{"label_id": ds[s0].gt.detections[0].id, "field": "pred"}], "fixed")


def test_several_findings_of_one_kind_make_one_clause(ds):
    sid, (a, copy, wbc) = _ids(ds, 0)
    _hand_audit(ds, "h", "duplicates", [
        {"kind": "duplicate", "sample_id": sid, "field": "gt", "label_id": copy, "other_field": "gt",
         "other_label_id": a, "label": "RBC", "score": 0.8, "iou": 0.8, "detail": "RBC vs RBC (masks)"},
        {"kind": "duplicate", "sample_id": sid, "field": "gt", "label_id": copy, "other_field": "gt",
         "other_label_id": wbc, "label": "RBC", "score": 0.9, "iou": 0.9, "detail": "RBC vs RBC (masks)"}])
    row = triage(ds).iloc[0]
    assert row["evidence"] == "h: duplicate of another RBC mask, IoU 0.90 (+1 more)"
    assert row["score"] == pytest.approx(0.9) and row["other_label_ids"] == sorted([a, wbc])


def test_every_audit_rerun_and_delete_keeps_review_tags_counts_and_decisions(ds, tmp_path):
    from PIL import Image

    paths = []
    for i in range(len(ds)):  # real images: the split audit hashes pixels
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (100, 200, 3), dtype=np.uint8)).save(paths[-1])
    ds.set_values("filepath", paths)
    ds.clone_sample_field("gt", "ann_b")
    ds.set_values("split", ["train", "val", "test"])
    s0, (_, c0, w0) = _ids(ds, 0)
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    mark_review(ds, [c0], "confirmed")
    mark_review(ds, [w0], "not_an_error")
    runs = [lambda: iou_audit.audit_duplicates(ds, "gt", audit_key="dups"),
            lambda: iou_audit.audit_predictions(ds, "pred", "gt", audit_key="preds"),
            lambda: iou_audit.audit_agreement(ds, ["gt", "ann_b"], audit_key="agr"),
            lambda: iou_audit.audit_splits(ds, split_field="split", label_field="gt", audit_key="spl")]
    for run in runs + runs:  # first runs, then re-runs over stored results
        run()
    for key in ("dups", "preds", "agr", "spl"):
        delete_audit(ds, key)
    assert {k: v for k, v in ds.count_label_tags().items()} == {"review:confirmed": 1, "review:not_an_error": 1}
    assert ds[s0].review_confirmed == 1 and ds[s0].review_not_an_error == 1
    assert {r: d["state"] for r, d in load_decisions(ds).items()} == {c0: "confirmed", w0: "not_an_error"}


def test_queue_view_shows_exactly_the_rows_labels(ds):
    from iou_audit.review import queue_view

    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    (s0, (a0, c0, w0)), (s1, (a1, c1, _)) = _ids(ds, 0), _ids(ds, 1)
    q = triage(ds).set_index("row_id", drop=False)
    view = queue_view(ds, q.loc[c0])
    assert view.values("id") == [s0]
    assert sorted(view.values("gt.detections.id", unwind=True)) == sorted([c0, a0])  # the copy and its original
    both = queue_view(ds, q.loc[[c1, c0]])
    assert both.values("id") == [s1, s0]  # queue order
    assert sorted(both.values("gt.detections.id", unwind=True)) == sorted([c0, a0, c1, a1])
    assert w0 not in both.values("gt.detections.id", unwind=True)
    with pytest.raises(ValueError, match="at least one"):
        queue_view(ds, q.iloc[:0])
