"""In-memory ``fo.Sample`` objects the caller still holds see what the audits wrote.

FiftyOne refreshes held samples after its own writes (``set_values`` -> ``Sample._reload_docs``);
iou-audit's bulk writes refresh them in one read-back query instead (``table.bulk.refresh_held``).
Each test compares every held sample, field by field, with the same sample read fresh from the
database (a ``SampleView`` built from the stored document), so a value the refresh missed, or one
it set differently from the database, fails. Real FiftyOne database, no mocks.
"""
import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

from iou_audit import fiftyone_private as fop
from iou_audit.audits.duplicates import audit_duplicates
from iou_audit.results import delete_audit
from iou_audit.table import read_label_table
from iou_audit.table.bulk import refresh_held
from iou_audit.table.write import write_many


def _samples(n=6, seed=0):
    """n samples of 5 boxes; in every sample box 1 is a shifted copy of box 0 (a duplicate)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        xy = rng.uniform(0.1, 0.6, (5, 2))
        xy[1] = xy[0] + 0.002
        dets = [fo.Detection(label="cell", bounding_box=[float(x), float(y), 0.2, 0.2]) for x, y in xy]
        out.append(fo.Sample(filepath=f"/held/{i}.jpg", gt=fo.Detections(detections=dets),
                             metadata=fo.ImageMetadata(width=100, height=100)))
    return out


@pytest.fixture
def held():
    """A dataset built from a list of fo.Sample; the list (the held samples) is returned with it."""
    samples = _samples()
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    yield ds, samples
    ds.delete()


def assert_matches_database(ds, samples):
    """Every held sample equals the same sample freshly read from the database."""
    fresh = {s.id: s for s in ds.select([s.id for s in samples])}  # SampleViews from stored documents
    for s in samples:
        got, want = s.to_dict(), fresh[s.id].to_dict()
        assert got == want, f"held sample {s.id} differs from the database:\nheld {got}\ndb   {want}"


def test_held_samples_see_audit_tags_and_attributes(held):
    ds, samples = held
    assert set(fop.held_samples(ds)) == {s.id for s in samples}
    before = [s.last_modified_at for s in samples]
    res = audit_duplicates(ds, "gt", audit_key="dups")
    flagged = set(res.findings.label_id[res.findings.kind == "duplicate"])
    assert len(flagged) == len(samples)  # box 1 of every sample
    for s, t0 in zip(samples, before):
        dup = s.gt.detections[1]
        assert dup.id in flagged
        assert "dups:duplicate" in dup.tags
        assert dup["dups_max_iou"] > 0.75
        assert dup["dups_dup_of"] == s.gt.detections[0].id
        assert s["dups_duplicate"] == 1
        assert s.last_modified_at > t0
    assert_matches_database(ds, samples)


def test_held_samples_after_rerun_and_delete(held):
    ds, samples = held
    audit_duplicates(ds, "gt", audit_key="dups")
    audit_duplicates(ds, "gt", audit_key="dups", iou_thresh=0.99)  # re-run: old results deleted first
    for s in samples:
        assert "dups:duplicate" not in s.gt.detections[1].tags
        assert not s.gt.detections[1].has_field("dups_dup_of")
        assert not s.has_field("dups_duplicate")
    assert_matches_database(ds, samples)
    audit_duplicates(ds, "gt", audit_key="dups")
    delete_audit(ds, "dups")
    for s in samples:
        assert s.gt.detections[1].tags == []
        assert not s.gt.detections[1].has_field("dups_max_iou")
    assert_matches_database(ds, samples)


def test_held_samples_saved_after_refresh_keep_the_values(held):
    """The refreshed values are not marked as changed, and saving a held sample keeps them."""
    ds, samples = held
    audit_duplicates(ds, "gt", audit_key="dups")
    s = samples[0]
    s["note"] = "edited"
    s.save()
    stored = ds.select(s.id).first()
    assert stored["note"] == "edited"
    assert "dups:duplicate" in stored.gt.detections[1].tags
    assert stored.gt.detections[1]["dups_max_iou"] == s.gt.detections[1]["dups_max_iou"]
    assert_matches_database(ds, samples)


def test_held_sample_with_unsaved_list_edit_is_reloaded(held):
    """A held sample whose label list differs from the database's is reloaded by FiftyOne."""
    ds, samples = held
    samples[2].gt.detections.append(fo.Detection(label="unsaved", bounding_box=[0.1, 0.1, 0.1, 0.1]))
    audit_duplicates(ds, "gt", audit_key="dups")
    assert [d.label for d in samples[2].gt.detections].count("unsaved") == 0
    assert_matches_database(ds, samples)


def test_held_samples_partial_columns_and_sample_values(held):
    """write_many with an attribute set on some labels only, tags, and sample values."""
    ds, samples = held
    table = read_label_table(ds, "gt")
    lids = list(table.label_id)
    stats = write_many(ds, labels={"gt": {"attributes": {"q": {lids[0]: 0.5, lids[7]: 2}},
                                          "tags": {lids[3]: ["t1", "t2"]}}},
                       sample_values={"score": {samples[1].id: 1.5}})
    assert stats["labels"]["gt"]["labels"] == 3
    assert samples[0].gt.detections[0]["q"] == 0.5
    assert not samples[0].gt.detections[1].has_field("q")
    assert samples[0].gt.detections[3].tags == ["t1", "t2"]
    assert samples[1]["score"] == 1.5
    assert_matches_database(ds, samples)


def test_refresh_held_reads_database_values(held):
    """A value written behind FiftyOne's back (raw collection) is what the refresh shows."""
    ds, samples = held
    s = samples[4]
    lid = s.gt.detections[0].id
    from bson import ObjectId

    fop.raw_sample_collection(ds).update_one(
        {"_id": ObjectId(s.id)}, {"$set": {"gt.detections.0.raw_attr": 7, "gt.detections.0.tags": ["raw"]}})
    out = refresh_held(ds, [s.id], [("gt.detections", "gt.detections", ["raw_attr"], True)])
    assert out == {"held": 1, "reloaded": 0}
    assert s.gt.detections[0].id == lid
    assert s.gt.detections[0]["raw_attr"] == 7
    assert s.gt.detections[0].tags == ["raw"]


def test_iterated_dataset_samples_are_refreshed(held):
    """Samples obtained by iterating the dataset (and kept) are held samples too."""
    ds, samples = held
    del samples[:]
    kept = list(ds)
    audit_duplicates(ds, "gt", audit_key="dups")
    assert all("dups:duplicate" in s.gt.detections[1].tags for s in kept)
    assert_matches_database(ds, kept)


def test_held_samples_see_prediction_and_agreement_writes():
    """audit_predictions and audit_agreement write through the same bulk path (save_audit)."""
    from iou_audit.audits.agreement import audit_agreement
    from iou_audit.audits.predictions import audit_predictions

    samples = _samples(4, seed=1)
    for s in samples:
        s["pred"] = fo.Detections(detections=[
            fo.Detection(label="cell", bounding_box=[b + 0.01 if k < 2 else b for k, b in enumerate(d.bounding_box)],
                         confidence=0.9) for d in s.gt.detections[:3]])
        s["other"] = fo.Detections(detections=[d.copy() for d in s.gt.detections[::2]])
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    try:
        audit_predictions(ds, "pred", "gt", audit_key="pr", coco_metrics=False, tide=False)
        # every label gets <key>_quality (findings, hence tags, depend on the calibrated scores: on
        # four samples none may pass min_score); the held objects must show the written values
        assert all(d["pr_quality"] is not None for s in samples for d in s.gt.detections)
        assert all(d["pr_iou"] is not None for s in samples for d in s.pred.detections)
        assert_matches_database(ds, samples)
        audit_agreement(ds, ["gt", "other"], audit_key="ag", compute_map=False)
        assert any(t.startswith("ag:") for s in samples for d in s.gt.detections for t in d.tags)
        assert_matches_database(ds, samples)
    finally:
        ds.delete()
