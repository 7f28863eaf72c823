"""Incremental re-audit of plain runs (``keep_parts=True``, ``iou_audit.rerun_changed``).

Per audit: a plain run that keeps its parts stores exactly the run made without parts; after label
edits, a deleted sample and added samples, ``rerun_changed`` recomputes only the parts holding them,
and the stored run (every raw sample document: label attributes, tags, per-sample fields, the
consensus; the findings, tables, metrics incl. alpha / mAP / COCO AP / drift; the saved views; the
schema) equals a full re-run from scratch on a copy of the edited dataset (``clone()``, the run
deleted there first). Each test also checks that the edits changed the result, so an incremental
re-run that missed them would fail.
"""
import os

import pytest
from incremental_support import _bench_scale, full_run_on_copy, same, snapshot

N_SAMPLES, PART = 600, 100


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("incr-img"))
    _bench_scale().ensure_images(path, N_SAMPLES + 10)
    return path


@pytest.fixture
def ds(image_dir, request):
    """600 samples of bench_scale's generator (annotators a, b, c, predictions pred, split, 32 x 32 images)."""
    import fiftyone as fo

    dataset = _bench_scale().build_dataset(f"incr-{request.node.name[:40]}", N_SAMPLES, image_dir)
    yield dataset
    for name in [n for n in fo.list_datasets() if n.startswith(dataset.name)]:
        fo.delete_dataset(name)


def _duplicates(samples, key, **kw):
    from iou_audit import audit_duplicates

    return audit_duplicates(samples, "a", batch_size=PART, audit_key=key, **kw)


def _agreement(samples, key, **kw):
    from iou_audit import audit_agreement

    return audit_agreement(samples, ["a", "b", "c"], batch_size=PART, consensus_field="cons", audit_key=key, **kw)


def _predictions(samples, key, **kw):
    from iou_audit import audit_predictions

    return audit_predictions(samples, "pred", "a", audit_key=key, **kw)


def _splits(samples, key, **kw):
    from iou_audit import audit_splits

    return audit_splits(samples, split_field="split", label_field="a", audit_key=key, **kw)


AUDITS = {"duplicates": _duplicates, "agreement": _agreement, "predictions": _predictions, "splits": _splits}
#: the metrics (or table) each audit's edits must move: global statistics, not only counts
MOVED = {"duplicates": ("n_duplicate", "n_labels"), "agreement": ("alpha_nominal", "map", "f1"),
         "predictions": ("AP", "AP50", "precision", "recall"), "splits": ("n_leak_exact",)}


def edit(ds) -> dict:
    """Edits in parts 1, 3 and 4 (samples 100-199, 300-399, 400-499), 3 samples added (a new part);
    parts 0, 2 and 5 untouched. Returns the ids it touched."""
    import fiftyone as fo

    ids, paths, splits = ds.values("id"), ds.values("filepath"), ds.values("split")
    s = ds[ids[150]]
    for det in s.a.detections[:3]:  # moved and relabelled
        det.bounding_box = [0.1, 0.1, 0.3, 0.3]
        det.label = "z"
    s.a.detections.append(s.a.detections[-1].copy())  # a duplicate of its last box
    s.save()
    s = ds[ids[330]]
    s.b.detections = s.b.detections[1:]
    s.pred.detections = s.pred.detections[2:]
    s.split = "test" if s.split != "test" else "val"
    s.save()
    ds.delete_samples(ids[420])
    src = ds[ids[10]]
    other = "test" if splits[10] != "test" else "val"
    new = ds.add_samples([fo.Sample(filepath=paths[10] if i == 0 else paths[20 + i], split=other, **{
        f: fo.Detections(detections=[fo.Detection(label=d.label, bounding_box=list(d.bounding_box),
                                                  confidence=d.confidence) for d in src[f].detections])
        for f in ("a", "b", "c", "pred")}) for i in range(3)])  # the first is an exact copy of sample 10's image
    return {"edited": [ids[150], ids[330]], "deleted": ids[420], "added": list(new)}


@pytest.mark.parametrize("audit", sorted(AUDITS))
def test_rerun_changed_equals_full_rerun(ds, audit):
    import iou_audit
    from iou_audit import shards
    from iou_audit.results import delete_audit
    from iou_audit.shards import store

    run, key = AUDITS[audit], f"i_{audit}"
    run(ds, key)
    plain = snapshot(ds, key)
    assert not shards.list_plans(ds, key)
    run(ds, key, keep_parts=PART)  # replaces the run: same stored run, now with its parts
    with_parts = snapshot(ds, key)
    same(plain, with_parts)
    plan = shards.list_plans(ds, key)[0]
    assert plan["origin"] == "plain" and [s["n_samples"] for s in plan["shards"]] == [PART] * 6
    first_parts = [s["file_id"] for s in plan["shards"]]

    edit(ds)
    want = full_run_on_copy(ds, key, run)
    result, info = iou_audit.rerun_changed(ds, key)
    assert info["n_changed"] == 5, info  # 2 edited + 3 added
    assert info["n_samples"] == N_SAMPLES - 1 + 3 and info["n_shards"] == 7
    new_plan = shards.get_plan(info["plan_id"])
    reused = [s["index"] for s in new_plan["shards"] if s["reused"]]
    # the untouched parts were not read again; duplicates parts are whole read batches, so after
    # the deletion in part 4 every later part is cut again
    untouched = [0, 2] if audit == "duplicates" else [0, 2, 5]
    assert reused == untouched, reused
    assert [new_plan["shards"][k]["file_id"] for k in untouched] == [first_parts[k] for k in untouched]
    got = snapshot(ds, key)
    moved = [m for m in MOVED[audit] if not (plain["metrics"][m] == want["metrics"][m])]
    assert moved, f"the edits did not change {MOVED[audit]}: the test would not see a missed edit"
    same(want, got)
    same(result.metrics, load_audit_metrics(ds, key))

    parts = first_parts + [s["file_id"] for s in new_plan["shards"]]
    _, info2 = iou_audit.rerun_changed(ds, key)
    if audit != "splits":  # reading the added samples' labels computed their image sizes (a write)
        # the 3 added samples: in one part, or (duplicates, cut again in batches) in the last two
        assert info2["n_changed"] == 3 and info2["n_recomputed"] == (2 if audit == "duplicates" else 1), info2
        same(want, snapshot(ds, key))
        parts += [s["file_id"] for s in shards.get_plan(info2["plan_id"])["shards"]]
        _, info2 = iou_audit.rerun_changed(ds, key)
    assert info2["n_changed"] == 0 and info2["n_recomputed"] == 0  # nothing changed since: nothing recomputed
    # one plan left, the superseded ones' own parts gone; delete_audit removes the rest
    assert [str(p["_id"]) for p in shards.list_plans(ds, key)] == [info2["plan_id"]]
    delete_audit(ds, key)
    assert not shards.list_plans(ds, key)
    assert store._db()[f"{store.BUCKET}.files"].count_documents({"_id": {"$in": parts}}) == 0


def load_audit_metrics(ds, key):
    from iou_audit.results import load_audit

    return load_audit(ds, key).metrics


def test_part_edited_while_the_parts_are_computed_is_recomputed(ds):
    """An edit made after its part was read, while later parts are computed, is caught next time."""
    import iou_audit

    ids = ds.values("id")
    calls = []

    def progress(fraction, label):
        if fraction > 0.5 and not calls:  # part 0 is read; later parts are still to come
            calls.append(fraction)
            s = ds[ids[5]]
            s.a.detections = s.a.detections[1:]
            s.save()

    _duplicates(ds, "win", keep_parts=PART, progress=progress)
    assert calls
    want = full_run_on_copy(ds, "win", _duplicates)
    _, info = iou_audit.rerun_changed(ds, "win")
    assert info["n_changed"] == 1 and info["n_recomputed"] == 1
    same(want, snapshot(ds, "win"))


def test_shared_inputs_changed_recomputes_every_part(ds):
    """Predictions read an ``area`` attribute when the labels' schema has one: once a label gets
    one, every part is read again (the reason is reported) and the run equals a full re-run."""
    import iou_audit

    _predictions(ds, "area", keep_parts=PART)
    s = ds[ds.values("id")[250]]
    s.a.detections[0]["area"] = 77.0
    s.save()
    ds.add_dynamic_sample_fields()  # the schema now has a.detections.area: every part reads it
    want = full_run_on_copy(ds, "area", _predictions)
    _, info = iou_audit.rerun_changed(ds, "area")
    assert info["n_recomputed"] == info["n_shards"] == 6 and "gt_area" in info["reason"]
    same(want, snapshot(ds, "area"))


def test_splits_image_changed_on_disk_recomputes_its_part(ds, tmp_path):
    """An image rewritten under the same path (no sample edit) is seen by its size:mtime."""
    import shutil

    import iou_audit

    ids, paths = ds.values("id"), ds.values("filepath")
    mine = str(tmp_path / "x.png")
    shutil.copy(paths[250], mine)
    ds.set_values("filepath", {ids[250]: mine}, key_field="id")
    _splits(ds, "media", keep_parts=PART)
    shutil.copy(paths[40], mine)  # now an exact copy of sample 40's image
    st = os.stat(paths[40])
    os.utime(mine, (st.st_atime, st.st_mtime + 5))
    want = full_run_on_copy(ds, "media", _splits)
    _, info = iou_audit.rerun_changed(ds, "media")
    assert info["n_changed"] == 0 and info["n_media_changed"] == 1 and info["n_recomputed"] == 1
    got = snapshot(ds, "media")
    exact = got["findings"][got["findings"]["kind"] == "leak_exact"]
    assert {ids[40], ids[250]} in [{a, b} for a, b in zip(exact.sample_id, exact.other_sample_id)] or \
        ds[ids[40]].split == ds[ids[250]].split
    same(want, got)


def test_runs_that_cannot_be_rerun_incrementally_say_why(ds):
    import fiftyone as fo

    import iou_audit
    from iou_audit import shards
    from iou_audit.shards import IncrementalError, incremental_status

    with pytest.raises(IncrementalError, match="no iou-audit run 'nope'"):
        iou_audit.rerun_changed(ds, "nope")
    _duplicates(ds, "plain")
    with pytest.raises(IncrementalError, match="kept no parts.*keep_parts=True"):
        iou_audit.rerun_changed(ds, "plain")
    assert "kept no parts" in incremental_status(ds, "plain")
    # a run replaced by one without parts drops the parts it kept
    _duplicates(ds, "plain", keep_parts=PART)
    assert incremental_status(ds, "plain") == "" and shards.list_plans(ds, "plain")
    _duplicates(ds, "plain")
    assert not shards.list_plans(ds, "plain")
    with pytest.raises(IncrementalError, match="kept no parts"):
        iou_audit.rerun_changed(ds, "plain")
    # keypoint audits cannot keep parts
    kp = fo.Dataset()
    kp.add_samples([fo.Sample(filepath=f"/k/{i}.jpg", metadata=fo.ImageMetadata(width=100, height=100),
                              kp=fo.Keypoints(keypoints=[
        fo.Keypoint(label="p", points=[[0.1 + 0.01 * i, 0.2], [0.3, 0.4]])])) for i in range(3)])
    iou_audit.audit_keypoint_duplicates(kp, "kp", sigmas=[0.05, 0.05], audit_key="kpd")
    with pytest.raises(IncrementalError, match="'keypoint_duplicates' audit, which cannot keep parts"):
        iou_audit.rerun_changed(kp, "kpd")
    kp.delete()
    # keeping parts needs a stored run and samples in id order
    with pytest.raises(ValueError, match="keep_parts=True needs save=True"):
        _duplicates(ds, "x", keep_parts=True, save=False)
    with pytest.raises(ValueError, match="id order.*sort_by"):
        _duplicates(ds.sort_by("filepath", reverse=True), "x", keep_parts=True)
    with pytest.raises(ValueError, match="keep_parts must be True or a number"):
        _duplicates(ds, "x", keep_parts=0)
    assert "x" not in iou_audit.list_audits(ds) and not shards.list_plans(ds, "x")


def test_rerun_changed_uses_the_runs_own_view(ds):
    """A run on a view re-runs on that view (stored with the run), not on the whole dataset."""
    from fiftyone import ViewField as F

    import iou_audit

    view = ds.match(F("split") == "train")
    _agreement(view, "view", keep_parts=PART)
    s = ds[view.values("id")[3]]
    s.c.detections = s.c.detections[:1]
    s.save()
    copy = ds.clone(f"{ds.name}-copy")
    iou_audit.delete_audit(copy, "view")
    _agreement(copy.match(F("split") == "train"), "view")
    want = snapshot(copy, "view")
    _, info = iou_audit.rerun_changed(ds, "view")
    assert info["n_samples"] == len(view) and info["n_recomputed"] == 1
    same(want, snapshot(ds, "view"))
