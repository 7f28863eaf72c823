"""audit_splits end to end on a real FiftyOne dataset built from BCCD images with planted leaks."""
import shutil

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image, ImageChops

from iou_audit.audits.splits import audit_splits
from iou_audit.results import delete_audit, load_audit


@pytest.fixture
def planted(shared_data, tmp_path, dataset):
    """12 distinct BCCD images over train/val/test plus planted leaks:
    exact byte copy (img0 -> test), re-encoded half-size copy (img1 -> val), the same path listed
    twice (img2 in train and test), a copied label set on a different image (img3 labels on img4),
    a group ("video-a") spanning train and val."""
    src = sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[100:112]
    paths = []
    for k, p in enumerate(src):
        paths.append(str(shutil.copy(p, tmp_path / f"img{k}.jpg")))
    exact = str(shutil.copy(paths[0], tmp_path / "copy_of_img0.jpg"))
    resized = tmp_path / "img1_small.jpg"
    im = Image.open(paths[1])
    im.resize((im.width // 2, im.height // 2)).save(resized, quality=70)
    shifted = tmp_path / "img9_shifted.jpg"  # the stage moved by 8 % right, 6 % down (new content wraps in)
    im = Image.open(paths[9])
    ImageChops.offset(im, int(0.08 * im.width), int(0.06 * im.height)).save(shifted, quality=90)
    mirrored = tmp_path / "img8_mirrored.jpg"  # pre-augmented copy: flipped left-right
    Image.open(paths[8]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored, quality=85)
    rotated = tmp_path / "img7_rot90.jpg"  # and rotated by 90 degrees (portrait now)
    Image.open(paths[7]).transpose(Image.Transpose.ROTATE_90).save(rotated, quality=85)
    splits = ["train", "train", "train", "train", "val", "val", "val", "test", "test", "test", "train", "val"]
    samples = [fo.Sample(filepath=p, split=s) for p, s in zip(paths, splits)]
    samples += [fo.Sample(filepath=exact, split="test"), fo.Sample(filepath=str(resized), split="val"),
                fo.Sample(filepath=paths[2], split="test"), fo.Sample(filepath=str(shifted), split="train"),
                fo.Sample(filepath=str(mirrored), split="val"), fo.Sample(filepath=str(rotated), split="train")]
    rng = np.random.default_rng(0)
    boxes = {}
    for k, s in enumerate(samples):
        dets = []
        for _ in range(4):
            x, y = rng.uniform(0.05, 0.6, 2)
            dets.append(fo.Detection(label=str(rng.choice(["RBC", "WBC"])), bounding_box=[x, y, 0.2, 0.15]))
        boxes[k] = dets
    # img4 (val) gets img3's (train) labels, each box moved by 1 px at 640 x 480
    boxes[4] = [fo.Detection(label=d.label, bounding_box=[d.bounding_box[0] + 1 / 640, d.bounding_box[1] - 1 / 480,
                                                          0.2, 0.15]) for d in boxes[3]]
    for k, s in enumerate(samples):
        s["ground_truth"] = fo.Detections(detections=boxes[k])
        s["video"] = "video-a" if k in (5, 10) else f"solo-{k}"
    dataset.add_samples(samples)
    dataset.compute_metadata()
    return dataset, paths, exact, str(resized)


def _pairs(result, kind, dataset):
    path = dict(zip(dataset.values("id"), dataset.values("filepath")))
    f = result.findings[result.findings.kind == kind]
    return {(path[a].rsplit("/", 1)[-1], path[b].rsplit("/", 1)[-1]) for a, b in zip(f.sample_id, f.other_sample_id)}


def test_planted_leaks_are_found(planted):
    ds, paths, exact, resized = planted
    r = audit_splits(ds, split_field="split", group_field="video")
    assert _pairs(r, "leak_exact", ds) == {("copy_of_img0.jpg", "img0.jpg"), ("img2.jpg", "img2.jpg")}
    assert _pairs(r, "leak_near", ds) == {("img1_small.jpg", "img1.jpg"), ("img9.jpg", "img9_shifted.jpg"),
                                          ("img8.jpg", "img8_mirrored.jpg"), ("img7.jpg", "img7_rot90.jpg")}
    copies = r.findings[r.findings.detail.str.contains(" copy: ")]
    assert sorted(d.split(": ")[1] for d in copies.detail) == ["mirrored left-right copy", "rotated 90-degree copy"]
    shift = r.findings[r.findings.detail.str.contains("shifted view")]
    assert len(shift) == 1 and shift.score.iloc[0] >= 0.8
    assert _pairs(r, "leak_annotation", ds) == {("img4.jpg", "img3.jpg")}
    assert _pairs(r, "leak_group", ds) == {("img5.jpg", "img10.jpg"), ("img10.jpg", "img5.jpg")}
    ann = r.findings[r.findings.kind == "leak_annotation"].iloc[0]
    assert ann.field == "ground_truth" and 0.85 <= ann.iou <= 1.0
    # every finding's two samples sit in different splits (read back from the dataset)
    split_of = dict(zip(ds.values("id"), ds.values("split")))
    leaks = r.findings[r.findings.kind.str.startswith("leak")]
    assert all(split_of[a] != split_of[b] for a, b in zip(leaks.sample_id, leaks.other_sample_id))
    assert set(r.tables) >= {"drift_tests", "class_counts", "splits"}


def test_views_pair_field_cache_and_delete(planted):
    ds, paths, exact, resized = planted
    r = audit_splits(ds, split_field="split", group_field="video", audit_key="sp")
    assert r.metrics["hash_cache_hits"] == 0
    view = ds.load_saved_view("sp-leak_near")
    names = [p.rsplit("/", 1)[-1] for p in view.values("filepath")]
    pair_ids = view.values("sp_pair")
    assert pair_ids == sorted(pair_ids) and len(set(pair_ids)) == 4
    # the two sides of each pair are adjacent in the view
    assert {frozenset(names[k:k + 2]) for k in range(0, 8, 2)} == {
        frozenset({"img1.jpg", "img1_small.jpg"}), frozenset({"img9.jpg", "img9_shifted.jpg"}),
        frozenset({"img8.jpg", "img8_mirrored.jpg"}), frozenset({"img7.jpg", "img7_rot90.jpg"})}
    # the exact view shows both pairs, each pair's two samples adjacent
    exact_view = ds.load_saved_view("sp-leak_exact")
    pair_ids = exact_view.values("sp_pair")
    assert pair_ids == sorted(pair_ids) and len(set(pair_ids)) == 2
    # hashes cached in the dataset: the second run reads instead of decoding
    assert ds.count("sp_phash") == len(ds) and all(len(h) == 16 for h in ds.values("sp_phash"))
    r2 = audit_splits(ds, split_field="split", group_field="video", audit_key="sp")
    assert r2.metrics["hash_cache_hits"] == len(ds)
    assert r2.findings.drop(columns="detail").equals(r.findings.drop(columns="detail"))
    # a changed file is re-hashed: overwrite img6 with img7's bytes -> new exact leak (val vs test)
    shutil.copy(paths[7], paths[6])
    r3 = audit_splits(ds, split_field="split", group_field="video", audit_key="sp")
    assert r3.metrics["hash_cache_hits"] == len(ds) - 1
    assert ("img7.jpg", "img6.jpg") in _pairs(r3, "leak_exact", ds)
    assert load_audit(ds, "sp").counts() == r3.counts()
    delete_audit(ds, "sp")
    assert not [f for f in ds.get_field_schema() if f.startswith("sp_")]
    assert not [v for v in ds.list_saved_views() if v.startswith("sp-")]


def test_split_tags_and_sample_with_two_splits(planted):
    ds, *_ = planted
    for split in ("train", "val", "test"):
        ds.match(fo.ViewField("split") == split).tag_samples(split)
    first = ds.first()
    first.tags.append("test")
    first.save()
    r = audit_splits(ds, split_tags=["train", "val", "test"], label_field=None, save=False)
    self_leak = r.findings[(r.findings.kind == "leak_exact") & (r.findings.sample_id == first.id)]
    assert (self_leak.other_sample_id == first.id).any()
    assert "leak_annotation" not in set(r.findings.kind)  # label_field=None skips label checks
    assert r.metrics["n_leak_near"] == 4  # resized, shifted, mirrored and rotated copies


def test_embeddings_leak(planted):
    ds, *_ = planted
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(ds), 16))
    ids = ds.values("id")
    emb[7] = emb[8] + 1e-4  # test vs test: same split, not a leak
    emb[11] = emb[0] + 1e-4  # val vs train
    ds.set_values("emb", [e.tolist() for e in emb])
    r = audit_splits(ds, split_field="split", embeddings_field="emb", label_field=None, save=False, shifted=False)
    near = r.findings[(r.findings.kind == "leak_near") & r.findings.detail.str.contains("embedding")]
    assert set(zip(near.sample_id, near.other_sample_id)) == {(ids[11], ids[0])}


def test_errors_name_the_problem(planted):
    ds, *_ = planted
    with pytest.raises(ValueError, match="nope"):
        audit_splits(ds, split_field="nope", save=False)
    with pytest.raises(ValueError, match="exactly one"):
        audit_splits(ds, split_field="split", split_tags=["train"], save=False)
    with pytest.raises(ValueError, match="near_threshold"):
        audit_splits(ds, split_field="split", near_threshold=40, save=False)
    with pytest.raises(ValueError, match="annotation_iou"):
        audit_splits(ds, split_field="split", annotation_iou=1.5, save=False)
    with pytest.raises(ValueError, match="missing_group"):
        audit_splits(ds, split_field="split", group_field="missing_group", save=False)
    ds.add_sample(fo.Sample(filepath="/nonexistent/gone.jpg", split="val"))
    # a missing image is a finding, not an abort (tests/test_trust_splits_unreadable.py)
    r = audit_splits(ds, split_field="split", save=False)
    bad = r.findings[r.findings.kind == "unreadable_image"]
    assert len(bad) == 1 and "gone.jpg" in bad.detail.iloc[0]


def test_drift_findings_and_view(planted):
    """Test images get only Platelets, which train never has: class drift and an absent class."""
    ds, *_ = planted
    test = ds.match(fo.ViewField("split") == "test")
    test.set_values("ground_truth.detections.label", [["Platelets"] * len(d) for d in test.values("ground_truth.detections")])
    r = audit_splits(ds, split_field="split", audit_key="dr", shifted=False)
    drift = r.findings[r.findings.kind == "split_drift"]
    absent = drift[drift.detail.str.contains("absent from")]
    # train and val have RBC and WBC, test only Platelets: 3 absences against each of train and val
    assert sorted(absent.label) == ["Platelets", "Platelets", "RBC", "RBC", "WBC", "WBC"]
    assert all("test" in d for d in drift.detail)
    chi = r.tables["drift_tests"]
    row = chi[(chi.split_a == "train") & (chi.split_b == "test") & (chi.test == "chi-square")].iloc[0]
    assert row.effect_size > 0.9  # Cramer's V: the class tells the split apart almost perfectly
    view = ds.load_saved_view("dr-split_drift")
    assert set(view.values("split")) == set(r.metrics["drift_splits"]) and "test" in r.metrics["drift_splits"]
    assert view.values("split") == sorted(view.values("split"))
