"""Trust suite: the split audit turns unreadable image files (missing, truncated, not an image,
no permission) into ``unreadable_image`` findings and goes on with the other images."""
import os
import shutil

import fiftyone as fo
import fiftyone.operators as foo
import pytest

import iou_audit

SPLITS_OP = "@iou-audit/iou-audit/audit_splits"


@pytest.fixture
def bad_files_ds(tmp_path, shared_data):
    src = sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[:6]
    paths = []
    for k, p in enumerate(src):
        dst = tmp_path / f"img{k}.jpg"
        shutil.copy(p, dst)
        paths.append(str(dst))
    exact_copy = tmp_path / "copy_of_0.jpg"
    shutil.copy(paths[0], exact_copy)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(paths[1], "rb").read()[:600])
    not_image = tmp_path / "not_an_image.jpg"
    not_image.write_text("this is not a JPEG")
    missing = str(tmp_path / "missing.jpg")
    splits = ["train", "train", "val", "val", "test", "test"]
    samples = [fo.Sample(filepath=p, split=s) for p, s in zip(paths, splits)]
    samples += [fo.Sample(filepath=str(exact_copy), split="test"),
                fo.Sample(filepath=str(truncated), split="val"),
                fo.Sample(filepath=str(not_image), split="train"),
                fo.Sample(filepath=missing, split="test")]
    ds = fo.Dataset()
    ds.add_samples(samples)
    yield ds, {"truncated": str(truncated), "not_image": str(not_image), "missing": missing,
               "copy": str(exact_copy), "orig": paths[0]}
    ds.delete()


def _unreadable(result):
    f = result.findings
    return f[f["kind"] == "unreadable_image"]


def test_unreadable_images_are_findings_and_the_audit_goes_on(bad_files_ds):
    ds, p = bad_files_ds
    r = iou_audit.audit_splits(ds, split_field="split", label_field=None, audit_key="spl")
    bad = _unreadable(r)
    by_path = {ds[sid].filepath: d for sid, d in zip(bad["sample_id"], bad["detail"])}
    assert set(by_path) == {p["truncated"], p["not_image"], p["missing"]}
    for path, detail in by_path.items():
        assert path in detail and "Error" in detail  # names the path and the error
    assert "FileNotFoundError" in by_path[p["missing"]]
    assert (bad["score"] == 1.0).all()
    assert r.metrics["n_unreadable_image"] == 3
    assert "unreadable_image" in iou_audit.audits.splits.audit.KINDS
    # the readable images were audited: the exact copy across splits is found
    exact = r.findings[r.findings["kind"] == "leak_exact"]
    pairs = {frozenset((ds[a].filepath, ds[b].filepath)) for a, b in zip(exact["sample_id"], exact["other_sample_id"])}
    assert frozenset((p["copy"], p["orig"])) in pairs
    # unreadable files never pair with each other (their hashes are placeholders)
    leaks = r.findings[r.findings["kind"].str.startswith("leak")]
    bad_ids = set(bad["sample_id"])
    assert not (set(leaks["sample_id"]) | set(leaks["other_sample_id"])) & bad_ids
    # stored: saved view, per-sample count, reload
    ds.reload()
    assert "spl-unreadable_image" in ds.list_saved_views()
    assert ds.count("spl_unreadable_image") == 3
    loaded = iou_audit.load_audit(ds, "spl")
    assert set(_unreadable(loaded)["sample_id"]) == bad_ids
    # a re-run (hash cache in place) still reports them, and the file fixed in between is read
    shutil.copy(p["orig"], p["missing"])
    r2 = iou_audit.audit_splits(ds, split_field="split", label_field=None, audit_key="spl")
    assert {ds[s].filepath for s in _unreadable(r2)["sample_id"]} == {p["truncated"], p["not_image"]}
    iou_audit.delete_audit(ds, "spl")
    assert not any(n.startswith("spl_") for n in ds.get_field_schema())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_is_a_finding(bad_files_ds):
    ds, p = bad_files_ds
    os.chmod(p["orig"], 0)
    try:
        r = iou_audit.audit_splits(ds, split_field="split", label_field=None, save=False)
    finally:
        os.chmod(p["orig"], 0o644)
    assert p["orig"] in " ".join(_unreadable(r)["detail"])


def test_unreadable_images_with_labels_and_the_operator(bad_files_ds):
    ds, p = bad_files_ds
    for s in ds:
        s["gt"] = fo.Detections(detections=[fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.3, 0.3])])
        s.save()
    res = foo.execute_operator(SPLITS_OP, ctx=dict(dataset=ds, params={
        "split_source": "field", "split_field": "split", "label_field": "gt", "audit_key": "spl_op"}))
    assert res.result["n_unreadable_image"] == 3


def test_every_image_unreadable_leaves_a_readable_dataset(tmp_path):
    """All files missing: the hash columns are all None. They must not be written as undeclared
    fields (FiftyOne would then fail to read those samples), and delete_audit leaves the schema
    as it was."""
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(tmp_path / f"missing{i}.jpg"), split=("train", "val")[i % 2])
                    for i in range(3)])
    before = sorted(ds.get_field_schema())
    try:
        result = iou_audit.audit_splits(ds, split_field="split", audit_key="spl")
        assert (result.findings["kind"] == "unreadable_image").sum() == 3
        for sample in ds.iter_samples():  # every sample reads back (no FieldDoesNotExist)
            assert sample["spl_unreadable_image"] == 1
        iou_audit.delete_audit(ds, "spl")
        assert sorted(ds.get_field_schema()) == before
        assert len(ds.select_fields().first().field_names) > 0
    finally:
        ds.delete()
