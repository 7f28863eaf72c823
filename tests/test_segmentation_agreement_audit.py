"""audit_segmentation_agreement on fo.Segmentation fields in a real FiftyOne database.

Oracles: FiftyOne's ``evaluate_segmentations`` (pixel confusion matrix, incl. its nearest-neighbour
resize and RGB hex mask targets), scikit-learn's ``jaccard_score`` per image, OpenCV's
``connectedComponentsWithStats`` for the regions of disagreement, a per-pixel vote count for the
consensus. Masks are both in the database and PNG files (mask_path).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.metrics import jaccard_score

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.geometry.dense_masks import boundary_iou
from iou_audit.results import delete_audit, list_audits

VALUES = [0, 1, 2, 5]


def _pair(rng, h, w):
    a = rng.choice(VALUES, size=(h, w)).astype(np.uint8)
    a[: h // 2, : w // 2] = 1  # a big block so regions of disagreement are sizable
    b = a.copy()
    b[h // 2 : h // 2 + 6, w // 2 : w // 2 + 9] = 2
    b[rng.random((h, w)) < 0.1] = 0
    return a, b


@pytest.fixture
def seg_dataset(dataset, tmp_path):
    import fiftyone as fo

    rng = np.random.default_rng(7)
    maps, samples = [], []
    for i in range(9):
        a, b = _pair(rng, 30 + i, 40)
        if i == 4:
            b[b == 5] = 0  # class 5 present in r1 only
        if i % 3 == 1:
            path = str(tmp_path / f"b{i}.png")
            cv2.imwrite(path, b)
            seg_b = fo.Segmentation(mask_path=path)
        else:
            seg_b = fo.Segmentation(mask=b)
        samples.append(fo.Sample(filepath=str(tmp_path / f"img{i}.jpg"), r1=fo.Segmentation(mask=a), r2=seg_b))
        maps.append((a, b))
    samples.append(fo.Sample(filepath=str(tmp_path / "only_r1.jpg"), r1=fo.Segmentation(mask=maps[0][0])))
    dataset.add_samples(samples)
    dataset.mask_targets = {"r1": {0: "background", 1: "road", 2: "car", 5: "sign"}}
    dataset.save()
    return dataset, maps


def test_agreement_against_fiftyone_sklearn_and_opencv(seg_dataset):
    ds, maps = seg_dataset
    r = audit_segmentation_agreement(ds, ["r1", "r2"], regions_field="r_disagree", consensus_field="r_consensus",
                                     min_region_pixels=20, batch_size=4)
    # the dataset's confusion matrix is FiftyOne's
    full = ds.exists("r2")
    fo_res = full.evaluate_segmentations("r2", gt_field="r1", mask_targets={v: str(v) for v in VALUES})
    conf = r.tables["confusion"]
    ours = np.zeros((4, 4), int)
    name_to_value = {"background": 0, "road": 1, "car": 2, "sign": 5}
    for ca, cb, n in zip(conf["class_a"], conf["class_b"], conf["pixels"]):
        ours[VALUES.index(name_to_value[ca]), VALUES.index(name_to_value[cb])] += n
    assert (ours == fo_res.pixel_confusion_matrix).all()
    # per-image mIoU: sklearn; alpha definition: 1 for identical maps only
    per_image = r.tables["per_image"].set_index("sample_id")
    ids = full.values("id")
    for sid, (a, b) in zip(ids, maps):
        present = sorted(set(a.ravel()) | set(b.ravel()))
        want = jaccard_score(a.ravel(), b.ravel(), labels=present, average=None).mean()
        assert per_image.loc[sid, "miou"] == pytest.approx(want)
        assert ds[sid].segmentation_agreement_miou == pytest.approx(want)
    assert r.metrics["n_images"] == 9 and r.metrics["n_skipped"] == 1 and r.metrics["n_missing_mask"] == 1
    # class 5 ("sign") in r1 only, on image 4 only
    missing = r.findings[r.findings["kind"] == "class_missing"]
    assert missing[["sample_id", "field", "label"]].values.tolist() == [[ids[4], "r1", "sign"]]
    # regions: OpenCV's 8-connected components of a != b with >= 20 pixels
    n_regions = 0
    for sid, (a, b) in zip(ids, maps):
        n, lab, stats, _ = cv2.connectedComponentsWithStats((a != b).astype(np.uint8), connectivity=8)
        big = sorted(int(s) for s in stats[1:, cv2.CC_STAT_AREA] if s >= 20)
        got = ds[sid].r_disagree.detections
        assert sorted(d["pixels"] for d in got) == big
        assert sorted(int(d.mask.sum()) for d in got) == big
        n_regions += len(big)
    assert r.metrics["n_regions"] == n_regions > 0
    # consensus of two fields: the tie rule keeps r1's value everywhere
    for sid, (a, _) in zip(ids, maps):
        assert (ds[sid].r_consensus.get_mask() == a).all()
    # delete_audit removes the new fields and the per-sample values
    delete_audit(ds, "segmentation_agreement")
    assert "segmentation_agreement" not in list_audits(ds)
    for name in ("r_disagree", "r_consensus", "segmentation_agreement_miou"):
        assert ds.get_field(name) is None


def test_three_fields_consensus_is_the_vote(dataset, tmp_path):
    import fiftyone as fo

    rng = np.random.default_rng(3)
    base = rng.integers(0, 4, size=(12, 14)).astype(np.uint8)
    fields = [np.where(rng.random(base.shape) < 0.3, rng.integers(0, 4, base.shape), base).astype(np.uint8)
              for _ in range(3)]
    dataset.add_sample(fo.Sample(filepath=str(tmp_path / "x.jpg"),
                                 **{f"s{i}": fo.Segmentation(mask=m) for i, m in enumerate(fields)}))
    r = audit_segmentation_agreement(dataset, ["s0", "s1", "s2"], consensus_field="vote", heatmap_field="heat",
                                     boundary=True)
    got = dataset.first().vote.get_mask()
    heat = dataset.first().heat
    assert heat.range == [0, 255]
    for y in range(base.shape[0]):
        for x in range(base.shape[1]):
            vals = [int(m[y, x]) for m in fields]
            best = max(vals.count(v) for v in vals)
            assert got[y, x] == next(v for v in vals if vals.count(v) == best)
            assert heat.map[y, x] == round(255 * (1 - best / 3))
    # Boundary IoU: per pair the mean over present classes of the binary masks' Boundary IoU
    want = np.mean([np.mean([boundary_iou(fields[i] == v, fields[j] == v)
                             for v in np.union1d(fields[i], fields[j])]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert dataset.first().segmentation_agreement_boundary_iou == pytest.approx(want)
    assert r.metrics["boundary_iou"] == pytest.approx(want) and 0 < want < 1


def test_size_mismatch_is_named_or_resized_as_fiftyone(dataset, tmp_path):
    import fiftyone as fo

    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, size=(20, 30)).astype(np.uint8)
    b = rng.integers(0, 3, size=(10, 15)).astype(np.uint8)
    s = fo.Sample(filepath=str(tmp_path / "x.jpg"), gt=fo.Segmentation(mask=a), pred=fo.Segmentation(mask=b))
    dataset.add_sample(s)
    with pytest.raises(ValueError, match=rf"{s.id} \('pred' 10x15 vs 20x30\)"):
        audit_segmentation_agreement(dataset, ["gt", "pred"], save=False)
    r = audit_segmentation_agreement(dataset, ["gt", "pred"], resize="nearest", save=False)
    with pytest.warns(UserWarning, match="Resizing"):
        fo_res = dataset.evaluate_segmentations("pred", gt_field="gt", mask_targets={0: "0", 1: "1", 2: "2"})
    ours = np.zeros((3, 3), int)
    for ca, cb, n in r.tables["confusion"][["class_a", "class_b", "pixels"]].values:
        ours[int(ca), int(cb)] += n
    assert (ours == fo_res.pixel_confusion_matrix).all()


def test_rgb_masks_with_hex_targets_as_fiftyone(dataset, tmp_path):
    import fiftyone as fo

    colours = {"#000000": "bg", "#ff6d04": "cone", "#1020ff": "sky"}
    rgb = np.array([[0, 0, 0], [255, 109, 4], [16, 32, 255]], np.uint8)
    rng = np.random.default_rng(9)
    a = rng.integers(0, 3, size=(16, 18))
    b = np.where(rng.random(a.shape) < 0.7, a, rng.integers(0, 3, size=a.shape))
    path = str(tmp_path / "b.png")
    cv2.imwrite(path, rgb[b][..., ::-1])  # OpenCV writes BGR
    dataset.add_sample(fo.Sample(filepath=str(tmp_path / "x.jpg"), gt=fo.Segmentation(mask=rgb[a]),
                                 pred=fo.Segmentation(mask_path=path)))
    dataset.mask_targets = {"gt": colours}
    dataset.save()
    r = audit_segmentation_agreement(dataset, ["gt", "pred"], consensus_field="cons")
    assert (dataset.first().cons.get_mask() == rgb[a]).all()  # RGB in, RGB out (two fields: the first's)
    fo_res = dataset.evaluate_segmentations("pred", gt_field="gt", mask_targets=colours)
    order = [colours[k] for k in sorted(colours, key=lambda h: int(h[1:], 16))]  # FiftyOne sorts by value
    ours = np.zeros((3, 3), int)
    for ca, cb, n in r.tables["confusion"][["class_a", "class_b", "pixels"]].values:
        ours[order.index(ca), order.index(cb)] += n
    assert (ours == fo_res.pixel_confusion_matrix).all()
    assert set(r.tables["per_class"]["class"]) <= set(colours.values())


def test_bad_fields_are_named(seg_dataset):
    ds, _ = seg_dataset
    with pytest.raises(ValueError, match="'nope' does not exist; Segmentation fields: \\['r1', 'r2'\\]"):
        audit_segmentation_agreement(ds, ["r1", "nope"], save=False)
    with pytest.raises(ValueError, match="distinct"):
        audit_segmentation_agreement(ds, ["r1", "r1"], save=False)
    with pytest.raises(ValueError, match="must be new"):
        audit_segmentation_agreement(ds, ["r1", "r2"], consensus_field="r2", save=False)
    with pytest.raises(ValueError, match="already exists"):
        audit_segmentation_agreement(ds, ["r1", "r2"], regions_field="filepath")


def test_unreadable_mask_file_is_named_and_nothing_is_written(dataset, tmp_path):
    import fiftyone as fo

    missing = str(tmp_path / "gone.png")
    dataset.add_sample(fo.Sample(filepath=str(tmp_path / "x.jpg"), gt=fo.Segmentation(mask=np.zeros((4, 4), np.uint8)),
                                 pred=fo.Segmentation(mask_path=missing)))
    with pytest.raises(OSError, match="gone.png"):
        audit_segmentation_agreement(dataset, ["gt", "pred"], consensus_field="cons")
    assert dataset.list_runs() == [] and dataset.get_field("cons") is None


@pytest.mark.parametrize("dtype,top", [(np.uint8, 9), (np.uint16, 9), (np.uint16, 4000), (bool, 1)])
def test_two_field_consensus_and_heatmap(dataset, tmp_path, dtype, top):
    """Two fields: the consensus is the first map (tie rule), stored as uint8 when its values fit
    (uint16 beyond 255), whether its stored bytes are reused or not; the heatmap is 128 (half the
    fields not with the majority, 255 x 1/2 rounded) where the maps differ, 0 elsewhere."""
    import fiftyone as fo

    rng = np.random.default_rng(4)
    maps = []
    for s in range(3):
        a = np.kron(rng.integers(0, top + 1, (6, 7)), np.ones((5, 5), int)).astype(dtype)
        b = np.where(rng.random(a.shape) < 0.2, rng.integers(0, top + 1, a.shape), a).astype(dtype)
        maps.append((a, b))
    path = str(tmp_path / "first.png")
    cv2.imwrite(path, maps[2][0].astype(np.uint16 if top > 255 else np.uint8))
    dataset.add_samples([fo.Sample(filepath=str(tmp_path / f"{s}.jpg"),
                                   gt=fo.Segmentation(mask=a) if s < 2 else fo.Segmentation(mask_path=path),
                                   pred=fo.Segmentation(mask=b)) for s, (a, b) in enumerate(maps)])
    audit_segmentation_agreement(dataset, ["gt", "pred"], consensus_field="cons", heatmap_field="heat")
    for sample, (a, b) in zip(dataset, maps):
        got = sample.cons.get_mask()
        assert got.dtype == (np.uint16 if top > 255 else np.uint8) and np.array_equal(got, a.astype(got.dtype))
        assert np.array_equal(sample.heat.get_map(), np.where(a != b, 128, 0)) and sample.heat.range == [0, 255]
