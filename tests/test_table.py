"""iou_audit.table: bulk reads checked against FiftyOne's own label objects, bulk writes checked
against FiftyOne's set_label_values and against the raw documents."""
import math

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")
from fiftyone import ViewField as F  # noqa: E402

from iou_audit.table import (  # noqa: E402
    iter_label_tables,
    read_label_table,
    require_frame_sizes,
    split_by_attribute,
    tag_labels_by_id,
    untag_labels,
    update_labels,
    validate_table,
    write_label_attributes,
    write_sample_values,
)
from iou_audit.table.write import write_many  # noqa: E402

RNG = np.random.default_rng(0)


def _random_detections(n, rater=None):
    dets = []
    for _ in range(n):
        x, y = RNG.uniform(0, 0.7, 2)
        w, h = RNG.uniform(0.01, 0.3, 2)
        d = fo.Detection(label=str(RNG.choice(["cat", "dog", "rbc"])), bounding_box=[x, y, w, h],
                         confidence=float(RNG.uniform()) if RNG.uniform() < 0.7 else None)
        if RNG.uniform() < 0.2:
            d["iscrowd"] = 1
        if rater:
            d["rater"] = rater[RNG.integers(len(rater))]
        dets.append(d)
    return fo.Detections(detections=dets)


@pytest.fixture
def det_dataset(dataset):
    samples = [fo.Sample(filepath=f"/nonexistent/{i}.png", gt=_random_detections(int(RNG.integers(0, 6)), rater=["r1", "r2"]))
               for i in range(12)]
    samples.append(fo.Sample(filepath="/nonexistent/none.png"))  # field is None
    samples.append(fo.Sample(filepath="/nonexistent/empty.png", gt=fo.Detections()))  # empty list
    dataset.add_samples(samples, progress=False)
    return dataset


def _oracle_rows(view, field):
    """Per-label rows from FiftyOne's label objects (the independent path)."""
    rows = []
    for s in view.iter_samples():
        for d in (s[field].detections if s[field] is not None else []):
            x, y, w, h = d.bounding_box
            rows.append((s.id, d.id, d.label, (x, y, x + w, y + h),
                         math.nan if d.confidence is None else d.confidence, bool(d.get_field("iscrowd") if d.has_field("iscrowd") else False)))
    return rows


@pytest.mark.parametrize("make_view", [
    lambda ds: ds,
    lambda ds: ds.sort_by("filepath", reverse=True),
    lambda ds: ds.filter_labels("gt", F("label") == "cat", only_matches=False),
    lambda ds: ds.skip(3).limit(6),
])
def test_read_matches_fiftyone_labels(det_dataset, make_view):
    view = make_view(det_dataset)
    t = read_label_table(view, "gt", attributes=["rater"])
    rows = _oracle_rows(view, "gt")
    assert list(t.sample_ids) == view.values("id")
    assert len(t) == len(rows)
    assert t.offsets[-1] == len(rows) and t.offsets[0] == 0
    assert list(t.row_sample_id) == [r[0] for r in rows]
    assert list(t.label_id) == [r[1] for r in rows]
    assert list(t.label) == [r[2] for r in rows]
    np.testing.assert_allclose(t.box, np.array([r[3] for r in rows]).reshape(-1, 4))
    np.testing.assert_array_equal(np.isnan(t.confidence), [math.isnan(r[4]) for r in rows])
    np.testing.assert_allclose(np.nan_to_num(t.confidence), [0 if math.isnan(r[4]) else r[4] for r in rows])
    assert list(t.iscrowd) == [r[5] for r in rows]
    assert t.masks is None  # auto: nobody has a mask
    assert len(validate_table(t)) == 0


def test_none_and_empty_fields_give_zero_rows(det_dataset):
    view = det_dataset.match(F("filepath").is_in(["/nonexistent/none.png", "/nonexistent/empty.png"]))
    t = read_label_table(view, "gt")
    assert len(t) == 0 and t.offsets.tolist() == [0, 0, 0] and t.num_samples == 2


def test_iter_label_tables_concatenates_to_full_table(det_dataset):
    full = read_label_table(det_dataset, "gt")
    parts = list(iter_label_tables(det_dataset, "gt", batch_size=5))
    assert [p.num_samples for p in parts] == [5, 5, 4]
    assert np.concatenate([p.label_id for p in parts]).tolist() == full.label_id.tolist()
    np.testing.assert_array_equal(np.concatenate([p.box for p in parts]), full.box)
    assert np.concatenate([p.sample_ids for p in parts]).tolist() == full.sample_ids.tolist()
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_label_tables(det_dataset, "gt", batch_size=0))


def test_split_by_attribute(det_dataset):
    t = read_label_table(det_dataset, "gt", attributes=["rater"])
    parts = split_by_attribute(t, "rater")
    assert set(parts) == {"r1", "r2"}
    for rater, p in parts.items():
        expected = [d.id for s in det_dataset for d in (s.gt.detections if s.gt else []) if d.rater == rater]
        assert p.label_id.tolist() == expected
        assert p.sample_ids.tolist() == t.sample_ids.tolist()
        owner = {d.id: s.id for s in det_dataset for d in (s.gt.detections if s.gt else [])}
        assert [owner[lid] for lid in p.label_id] == p.row_sample_id.tolist()
        np.testing.assert_array_equal(np.diff(p.offsets), np.bincount(p.sample_index, minlength=p.num_samples))
    with pytest.raises(ValueError, match="not read"):
        split_by_attribute(t, "annotator")


def test_polylines_boxes_are_point_bounds(dataset):
    polys = [
        fo.Polyline(label="a", points=[[(0.1, 0.2), (0.4, 0.25), (0.3, 0.7)]], closed=True, filled=True),
        fo.Polyline(label="b", points=[[(0.5, 0.5), (0.6, 0.5), (0.6, 0.6)], [(0.7, 0.1), (0.9, 0.15), (0.8, 0.3)]], filled=True),
    ]
    dataset.add_sample(fo.Sample(filepath="/nonexistent/p.png", poly=fo.Polylines(polylines=polys)))
    t = read_label_table(dataset, "poly")
    assert t.label_type == "polylines"
    for i, p in enumerate(polys):
        x, y, w, h = p.to_detection().bounding_box  # FiftyOne's own conversion is the oracle
        np.testing.assert_allclose(t.box[i], [x, y, x + w, y + h])
        assert len(t.polygons[i]) == len(p.points)
        for ring, shape in zip(t.polygons[i], p.points):
            np.testing.assert_allclose(ring, np.array(shape))


def test_masks_from_bytes_and_mask_path(dataset, tmp_path):
    from PIL import Image

    m1 = RNG.uniform(size=(12, 20)) > 0.5
    m2 = RNG.uniform(size=(30, 10)) > 0.5
    path = tmp_path / "m2.png"
    Image.fromarray((m2 * 255).astype(np.uint8)).save(path)
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(img)
    dets = [
        fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.1, 0.12], mask=m1),  # 20x12 px box: fits
        fo.Detection(label="b", bounding_box=[0.5, 0.5, 0.05, 0.3], mask_path=str(path)),  # 10x30: fits
        fo.Detection(label="c", bounding_box=[0.2, 0.2, 0.4, 0.4], mask=m1),  # 80x40 px box: 20x12 mask misfit
        fo.Detection(label="d", bounding_box=[0.0, 0.0, 0.1, 0.1]),
    ]
    dataset.add_sample(fo.Sample(filepath=str(img), gt=fo.Detections(detections=dets)))
    t = read_label_table(dataset, "gt")
    assert t.width.tolist() == [200.0] and t.height.tolist() == [100.0]  # metadata computed from the file
    np.testing.assert_array_equal(t.masks[0], m1)
    np.testing.assert_array_equal(t.masks[1], m2)
    assert t.masks[3] is None
    problems = validate_table(t)
    assert problems["problem"].tolist() == ["mask_shape"]
    assert problems["label_id"].tolist() == [dets[2].id]
    assert read_label_table(dataset, "gt", masks=False).masks is None


def test_bad_boxes_are_kept_and_reported(dataset):
    dataset.add_sample(fo.Sample(filepath="/nonexistent/b.png", gt=fo.Detections(detections=[
        fo.Detection(label="ok", bounding_box=[0.1, 0.1, 0.2, 0.2]),
        fo.Detection(label="zero", bounding_box=[0.1, 0.1, 0.0, 0.2]),
        fo.Detection(label="out", bounding_box=[0.9, 0.9, 0.3, 0.3]),
        fo.Detection(label="nan", bounding_box=[0.1, float("nan"), 0.2, 0.2]),
        fo.Detection(label="none"),
    ])))
    t = read_label_table(dataset, "gt")
    assert len(t) == 5
    problems = validate_table(t)
    by_label = dict(zip(t.label_id, t.label))
    got = {(by_label[lid], p) for lid, p in zip(problems["label_id"], problems["problem"])}
    assert got == {("zero", "degenerate_box"), ("out", "out_of_bounds"), ("nan", "nan_box"), ("none", "nan_box")}
    assert problems["sample_id"].unique().tolist() == [dataset.first().id]


def test_frame_sizes_unknown_gives_clear_error(det_dataset):
    t = read_label_table(det_dataset, "gt")
    assert np.isnan(t.width).all()
    with pytest.raises(ValueError, match="CIoU needs image sizes.*" + t.sample_ids[t.counts > 0][0]):
        require_frame_sizes(t, "CIoU")


def test_bad_fields_raise(det_dataset):
    det_dataset.add_sample_field("cls", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    with pytest.raises(ValueError, match="'missing' does not exist"):
        read_label_table(det_dataset, "missing")
    with pytest.raises(ValueError, match="'cls' holds Classification"):
        read_label_table(det_dataset, "cls")
    with pytest.raises(ValueError, match="masks must be"):
        read_label_table(det_dataset, "gt", masks="yes")


def test_video_is_not_supported_yet():
    ds = fo.Dataset()
    try:
        ds.add_sample(fo.Sample(filepath="/nonexistent/v.mp4"))
        ds.add_frame_field("gt", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
        for field in ("frames.gt", "gt"):
            with pytest.raises(NotImplementedError, match="video"):
                read_label_table(ds, field)
    finally:
        ds.delete()


# ---------------------------------------------------------------- writes


def _docs(ds):
    return {d["_id"]: d for d in ds._sample_collection.find({})}


def test_write_by_id_survives_reorder_and_edit(det_dataset):
    t = read_label_table(det_dataset, "gt")
    values = {lid: float(i) for i, lid in enumerate(t.label_id)}
    # Between read and write: reverse every list, delete one label, add a new one.
    deleted = t.label_id[0]
    for s in det_dataset.iter_samples(autosave=True):
        if s.gt is None:
            continue
        dets = [d for d in s.gt.detections if d.id != deleted][::-1]
        if s.id == t.sample_ids[0]:
            dets.insert(0, fo.Detection(label="new", bounding_box=[0.1, 0.1, 0.1, 0.1]))
        s.gt.detections = dets
    stats = write_label_attributes(det_dataset, "gt", {"qa_val": values})
    assert stats["missing"] == [deleted] and stats["labels"] == len(t) - 1
    seen = 0
    for s in det_dataset:
        for d in (s.gt.detections if s.gt else []):
            if d.label == "new":
                assert not d.has_field("qa_val") or d.qa_val is None
            else:
                assert d.qa_val == values[d.id]
                seen += 1
    assert seen == len(t) - 1


def test_write_equals_fiftyone_set_label_values_and_keeps_schema(det_dataset):
    t = read_label_table(det_dataset, "gt")
    ids = t.label_id[::2]
    values = {"qa_iou": {lid: np.float64(i / 10) for i, lid in enumerate(ids)},
              "qa_n": {lid: np.int64(i) for i, lid in enumerate(ids)},
              "qa_flag": {lid: bool(i % 2) for i, lid in enumerate(ids)},
              "qa_match": {lid: str(i) for i, lid in enumerate(ids)}}
    oracle = det_dataset.clone()
    try:
        for attr, by_id in values.items():
            oracle.set_label_values(f"gt.detections.{attr}", {k: v.item() if hasattr(v, "item") else v for k, v in by_id.items()}, dynamic=True)
        write_label_attributes(det_dataset, "gt", values)
        for attr in values:
            assert det_dataset.values(f"gt.detections.{attr}") == oracle.values(f"gt.detections.{attr}")
        schema = det_dataset.get_field_schema(flat=True)
        assert isinstance(schema["gt.detections.qa_iou"], fo.FloatField)
        assert isinstance(schema["gt.detections.qa_n"], fo.IntField)
        assert isinstance(schema["gt.detections.qa_flag"], fo.BooleanField)
        assert isinstance(schema["gt.detections.qa_match"], fo.StringField)
        # the App-facing typed reads work, e.g. filtering on the new attribute
        assert det_dataset.filter_labels("gt", F("qa_iou") >= 0).count("gt.detections") == len(ids)
    finally:
        oracle.delete()


def test_last_modified_only_on_touched_samples_and_originals_unchanged(det_dataset):
    t = read_label_table(det_dataset, "gt")
    before = _docs(det_dataset)
    target = t.label_id[t.sample_index == int(np.flatnonzero(t.counts)[0])][:1].tolist()
    update_labels(det_dataset, "gt", {"qa_x": {target[0]: 1.5}}, {target[0]: ["qa:dup", "qa:dup"]})
    after = _docs(det_dataset)
    touched = {k for k in after if after[k]["last_modified_at"] != before[k]["last_modified_at"]}
    assert touched == {before_id for before_id in before if any(
        str(d["_id"]) == target[0] for d in ((before[before_id].get("gt") or {}).get("detections") or []))}
    assert all(after[k]["last_modified_at"] > before[k]["last_modified_at"] for k in touched)
    for k, doc in before.items():
        for d_before, d_after in zip(((doc.get("gt") or {}).get("detections") or []),
                                     ((after[k].get("gt") or {}).get("detections") or [])):
            extra = {"qa_x", "tags"}
            assert {a: v for a, v in d_after.items() if a not in extra} == {a: v for a, v in d_before.items() if a not in extra}
            assert d_after["tags"] == (["qa:dup"] if str(d_after["_id"]) == target[0] else d_before["tags"])


def test_tags_are_not_duplicated_and_untag(det_dataset):
    t = read_label_table(det_dataset, "gt")
    tag_labels_by_id(det_dataset, "gt", t.label_id[:3], "qa:dup")
    tag_labels_by_id(det_dataset, "gt", t.label_id[:4], "qa:dup")
    assert det_dataset.count_label_tags() == {"qa:dup": 4}
    assert all(tags.count("qa:dup") <= 1 for tags in det_dataset.values("gt.detections.tags", unwind=True))
    untag_labels(det_dataset, "gt", "qa:dup")
    assert det_dataset.count_label_tags() == {}


def test_writes_on_views(det_dataset):
    t = read_label_table(det_dataset, "gt")
    view = det_dataset.filter_labels("gt", F("label") == "cat")
    cats = set(view.values("gt.detections.id", unwind=True))
    stats = write_label_attributes(view, "gt", {"qa_v": {lid: 1.0 for lid in t.label_id}})
    assert set(stats["missing"]) == set(t.label_id) - cats
    assert set(det_dataset.filter_labels("gt", F("qa_v") == 1.0).values("gt.detections.id", unwind=True)) == cats
    patches = det_dataset.to_patches("gt")
    with pytest.raises(ValueError, match="patches"):
        write_label_attributes(patches, "gt", {"qa_w": {t.label_id[0]: 1.0}})


def test_write_sample_values(det_dataset):
    ids = det_dataset.values("id")
    before = dict(zip(ids, det_dataset.values("last_modified_at")))
    stats = write_sample_values(det_dataset.limit(5), {"qa_count": {ids[1]: np.int64(3), ids[7]: 2}})
    assert stats == {"samples": 1, "missing": [ids[7]]}
    assert det_dataset.values("qa_count")[:3] == [None, 3, None]
    assert isinstance(det_dataset.get_field("qa_count"), fo.IntField)
    after = dict(zip(ids, det_dataset.values("last_modified_at")))
    assert [i for i in ids if after[i] != before[i]] == [ids[1]]
    for bad in ("filepath", "gt", "a.b"):
        with pytest.raises(ValueError, match=repr(bad)):
            write_sample_values(det_dataset, {bad: {ids[0]: 1}})


def test_protected_label_attributes_and_bad_ids(det_dataset):
    t = read_label_table(det_dataset, "gt")
    for attr in ("label", "bounding_box", "confidence", "tags"):
        with pytest.raises(ValueError, match="original label attributes"):
            write_label_attributes(det_dataset, "gt", {attr: {t.label_id[0]: 1}})
    with pytest.raises(ValueError, match="not a label id"):
        write_label_attributes(det_dataset, "gt", {"qa": {"nope": 1}})


def test_iter_label_tables_fails_at_call_for_bad_field(det_dataset):
    with pytest.raises(ValueError, match="'nope' does not exist"):
        iter_label_tables(det_dataset, "nope")


def test_type_mismatch_changes_nothing(det_dataset):
    t = read_label_table(det_dataset, "gt")
    write_label_attributes(det_dataset, "gt", {"qa_iou": {t.label_id[0]: 0.5}})
    docs = _docs(det_dataset)
    with pytest.raises(ValueError, match="exists as FloatField; cannot write StringField"):
        write_label_attributes(det_dataset, "gt", {"qa_iou": {t.label_id[1]: "high"}})
    assert _docs(det_dataset) == docs
    write_label_attributes(det_dataset, "gt", {"qa_iou": {t.label_id[1]: 2}})  # ints fit a FloatField
    write_label_attributes(det_dataset, "gt", {"qa_info": {t.label_id[1]: {"a": 1}}})
    assert isinstance(det_dataset.get_field("gt.detections.qa_info"), fo.DictField)


def test_polylines_and_long_lists(dataset):
    n = 1500  # one sample with many labels: one UpdateOne looking up 1500 ids
    polys = [fo.Polyline(label="a", points=[[(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)]], filled=True) for _ in range(n)]
    dataset.add_sample(fo.Sample(filepath="/nonexistent/p.png", poly=fo.Polylines(polylines=polys)))
    t = read_label_table(dataset, "poly")
    values = {lid: i for i, lid in enumerate(t.label_id)}
    stats = write_label_attributes(dataset, "poly", {"qa_i": values})
    assert stats == {"labels": n, "samples": 1, "missing": []}
    assert dataset.values("poly.polylines.qa_i", unwind=True) == list(range(n))
    assert dataset.values("poly.polylines.id", unwind=True) == t.label_id.tolist()


def test_repeated_label_id_in_one_list_is_written_once(dataset):
    d = fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2])
    dataset.add_sample(fo.Sample(filepath="/nonexistent/r.png", gt=fo.Detections(detections=[d])))
    doc = dataset._sample_collection.find_one({})
    dataset._sample_collection.update_one({"_id": doc["_id"]}, {"$push": {"gt.detections": doc["gt"]["detections"][0]}})
    write_label_attributes(dataset, "gt", {"qa": {d.id: 1.0}})
    tag_labels_by_id(dataset, "gt", [d.id], "qa:x")
    assert dataset.values("gt.detections.qa", unwind=True) == [1.0, 1.0]
    assert dataset.values("gt.detections.tags") == [[["qa:x"], ["qa:x"]]]


def test_real_bccd_sizes_computed_from_media(shared_data):
    from PIL import Image

    ds = fo.Dataset.from_dir(dataset_type=fo.types.VOCDetectionDataset,
                             data_path=str(shared_data / "bccd" / "JPEGImages"),
                             labels_path=str(shared_data / "bccd" / "Annotations"),
                             label_field="gt", max_samples=4, shuffle=False, progress=False)
    try:
        ds.set_values("metadata", [None] * len(ds))  # force the missing-metadata path
        t = read_label_table(ds, "gt")
        sizes = [Image.open(p).size for p in t.filepaths]
        assert t.width.tolist() == [float(w) for w, _ in sizes]
        assert t.height.tolist() == [float(h) for _, h in sizes]
        require_frame_sizes(t, "CIoU")  # known now: no error
    finally:
        ds.delete()


# ------------------------------------------------- bulk paths (one aggregation read, one bulk write)


def test_iter_label_tables_on_a_sorted_view_keeps_its_order(det_dataset):
    view = det_dataset.sort_by("filepath", reverse=True)
    full = read_label_table(view, "gt", attributes=["rater"])
    parts = list(iter_label_tables(view, "gt", batch_size=4, attributes=["rater"]))
    assert [p.num_samples for p in parts] == [4, 4, 4, 2]
    assert np.concatenate([p.sample_ids for p in parts]).tolist() == view.values("id")
    assert np.concatenate([p.label_id for p in parts]).tolist() == view.values("gt.detections.id", unwind=True)
    assert np.concatenate([p.attributes["rater"] for p in parts]).tolist() == full.attributes["rater"].tolist()


def test_read_attributes_equal_fiftyone_values(dataset):
    dets = [fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2], score=0.5, meta={"k": 1}, n=3),
            fo.Detection(label="b", bounding_box=[0.3, 0.3, 0.2, 0.2], score=None, meta={"k": 2}, n=4),
            fo.Detection(label="c", bounding_box=[0.5, 0.5, 0.2, 0.2])]
    dataset.add_sample(fo.Sample(filepath="/nonexistent/a.png", gt=fo.Detections(detections=dets)))
    t = read_label_table(dataset, "gt", attributes=["score", "meta", "n"])
    for attr in ("score", "meta", "n"):  # FiftyOne's typed read is the oracle (None -> NaN for numbers)
        expected = dataset.values(f"gt.detections.{attr}", unwind=True)
        got = [None if isinstance(v, float) and np.isnan(v) else v for v in t.attributes[attr].tolist()]
        assert got == expected, attr
    assert t.attributes["score"].dtype == np.float64 and t.attributes["meta"].dtype == object


def test_writes_reload_samples_held_in_memory(det_dataset):
    t = read_label_table(det_dataset, "gt")
    held = det_dataset[t.sample_ids[int(np.flatnonzero(t.counts)[0])]]  # a Sample object kept by the user
    lid = held.gt.detections[0].id
    update_labels(det_dataset, "gt", {"qa_m": {lid: 0.5}}, {lid: ["qa:held"]})
    write_sample_values(det_dataset, {"qa_c": {held.id: 7}})
    assert held.gt.detections[0].qa_m == 0.5 and held.gt.detections[0].tags == ["qa:held"] and held.qa_c == 7


def _update_ops_count(ds) -> int:
    """Update statements MongoDB has run on the dataset's sample collection (its ``top`` counters)."""
    coll = ds._sample_collection
    totals = coll.database.client.admin.command("top")["totals"]
    return totals.get(f"{coll.database.name}.{coll.name}", {}).get("update", {}).get("count", 0)


def test_write_many_is_one_update_per_touched_sample(det_dataset):
    det_dataset.clone_sample_field("gt", "gt2")
    t1, t2 = read_label_table(det_dataset, "gt"), read_label_table(det_dataset, "gt2")
    # b: the clones of three of a's labels, so both fields are written in the same samples
    a, b = t1.label_id[:4].tolist(), t2.label_id[1:4].tolist()
    lonely = t1.sample_ids[t1.counts == 0][0]  # gets a sample value only
    owner = dict(zip(t1.label_id, t1.row_sample_id)) | dict(zip(t2.label_id, t2.row_sample_id))
    expected_touched = {owner[i] for i in a + b} | {lonely}
    before = _docs(det_dataset)
    ops_before = _update_ops_count(det_dataset)
    stats = write_many(
        det_dataset,
        {"gt": {"attributes": {"qa_s": {i: 1.5 for i in a}}, "tags": {a[0]: "qa:x"}},
         "gt2": {"attributes": {"qa_s": {i: 2 for i in b}}}},
        {"qa_n": {lonely: 3, "0" * 24: 1}},
    )
    assert {owner[i] for i in b} <= {owner[i] for i in a}  # separate writes per field would run more updates
    assert _update_ops_count(det_dataset) - ops_before == len(expected_touched)
    assert stats["samples"] == len(expected_touched) and stats["missing_samples"] == ["0" * 24]
    assert stats["labels"]["gt"]["labels"] == 4 and stats["labels"]["gt2"]["labels"] == 3
    after = _docs(det_dataset)
    assert {str(k) for k in after if after[k]["last_modified_at"] != before[k]["last_modified_at"]} == expected_touched
    got1 = dict(zip(det_dataset.values("gt.detections.id", unwind=True), det_dataset.values("gt.detections.qa_s", unwind=True)))
    got2 = dict(zip(det_dataset.values("gt2.detections.id", unwind=True), det_dataset.values("gt2.detections.qa_s", unwind=True)))
    assert {k: v for k, v in got1.items() if v is not None} == {i: 1.5 for i in a}
    assert {k: v for k, v in got2.items() if v is not None} == {i: 2 for i in b}
    assert det_dataset.count_label_tags() == {"qa:x": 1}
    assert isinstance(det_dataset.get_field("gt2.detections.qa_s"), fo.IntField)
    assert det_dataset[lonely].qa_n == 3

    # a type conflict in any column: nothing written, nothing declared
    with pytest.raises(ValueError, match="gt2.detections.qa_s exists as IntField; cannot write StringField"):
        write_many(det_dataset, {"gt": {"attributes": {"qa_new": {a[1]: 1.0}}},
                                 "gt2": {"attributes": {"qa_s": {b[0]: "x"}}}}, {"qa_new_n": {lonely: 1}})
    assert _docs(det_dataset) == after
    assert det_dataset.get_field("gt.detections.qa_new") is None and det_dataset.get_field("qa_new_n") is None


def test_untag_on_a_filtered_view_only_touches_its_labels(det_dataset):
    t = read_label_table(det_dataset, "gt")
    tag_labels_by_id(det_dataset, "gt", t.label_id, "qa:all")
    cats = det_dataset.filter_labels("gt", F("label") == "cat")
    n_cats = cats.count("gt.detections")
    assert untag_labels(cats, "gt", "qa:all")["labels"] == n_cats
    assert det_dataset.count_label_tags() == {"qa:all": len(t) - n_cats}
    assert cats.count_label_tags() == {}


def test_write_modules_docstring_examples_hold():
    import doctest

    import iou_audit.table.bulk
    import iou_audit.table.read
    import iou_audit.table.write

    for module in (iou_audit.table.read, iou_audit.table.write, iou_audit.table.bulk):
        failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0, module.__name__


def test_sample_values_for_unknown_or_malformed_ids_are_reported_not_written(det_dataset):
    before = _docs(det_dataset)
    stats = write_sample_values(det_dataset, {"qa_k": {"nope": 1, "f" * 24: 2}})
    assert stats == {"samples": 0, "missing": ["f" * 24, "nope"]}
    assert _docs(det_dataset) == before


def test_locate_without_the_id_filter_gives_the_same_writes(det_dataset, monkeypatch):
    """Large writes skip locate's $match on ids (query size limit): same result either way."""
    import iou_audit.table.bulk as bulk

    t = read_label_table(det_dataset, "gt")
    ids = t.label_id[::2].tolist()
    write_label_attributes(det_dataset, "gt", {"qa_a": {i: 1.0 for i in ids}})
    monkeypatch.setattr(bulk, "LOCATE_MATCH_MAX_IDS", 0)
    stats = write_label_attributes(det_dataset, "gt", {"qa_b": {i: 2.0 for i in ids} | {"0" * 24: 3.0}})
    assert stats["labels"] == len(ids) and stats["missing"] == ["0" * 24]
    got_a = det_dataset.values("gt.detections.qa_a", unwind=True)
    got_b = det_dataset.values("gt.detections.qa_b", unwind=True)
    assert [a is None for a in got_a] == [b is None for b in got_b] and got_a.count(1.0) == len(ids)


# ------------------------------------------- pipeline updates: partial columns, layout, races


def test_an_attribute_is_written_only_on_the_labels_of_its_column(det_dataset):
    t = read_label_table(det_dataset, "gt")
    s = int(np.flatnonzero(t.counts >= 2)[0])
    a, b = t.label_id[t.offsets[s]:t.offsets[s] + 2].tolist()
    write_many(det_dataset, {"gt": {"attributes": {"qa_x": {a: 1.0, b: 2.0}, "qa_y": {a: None}},
                                    "tags": {b: ["qa:t"]}}})
    docs = {str(d["_id"]): d for d in det_dataset._sample_collection.find({}, {"gt": 1})}
    labels = {str(d["_id"]): d for d in docs[t.sample_ids[s]]["gt"]["detections"]}
    assert labels[a]["qa_x"] == 1.0 and "qa_y" in labels[a] and labels[a]["qa_y"] is None
    assert labels[b]["qa_x"] == 2.0 and "qa_y" not in labels[b]  # not in qa_y's column: no key at all
    assert labels[a]["tags"] == [] and labels[b]["tags"] == ["qa:t"]


def test_writes_through_a_read_layout_equal_writes_that_locate(det_dataset):
    from iou_audit.table import ReadLayout

    det_dataset.clone_sample_field("gt", "gt2")
    t, t2 = read_label_table(det_dataset, "gt"), read_label_table(det_dataset, "gt2")
    values = {lid: float(i) for i, lid in enumerate(t.label_id)}
    values2 = {lid: float(i) for i, lid in enumerate(t2.label_id)}
    counts = {sid: int(n) for sid, n in zip(t.sample_ids, t.counts)}
    layout = ReadLayout()
    layout.add_table("gt2", t2)
    stats_located = write_many(det_dataset, {"gt": {"attributes": {"qa_v": values}}}, {"qa_n": counts})
    stats_layout = write_many(det_dataset, {"gt2": {"attributes": {"qa_v": values2}}}, {"qa_n2": counts}, layout=layout)
    assert stats_layout["samples"] == stats_located["samples"] == len(t.sample_ids)
    assert stats_layout["labels"]["gt2"] == stats_located["labels"]["gt"]
    assert det_dataset.values("gt2.detections.qa_v") == det_dataset.values("gt.detections.qa_v")
    assert det_dataset.values("qa_n2") == det_dataset.values("qa_n")


def test_a_layout_write_after_labels_vanished_corrupts_nothing(det_dataset):
    """With a layout the write trusts where labels were at read time: labels deleted since then
    get nothing, other labels keep their own values, and a cleared field stays None (not {})."""
    from iou_audit.table import ReadLayout

    t = read_label_table(det_dataset, "gt")
    layout = ReadLayout()
    layout.add_table("gt", t)
    with_labels = [s for s in range(len(t.sample_ids)) if t.counts[s] >= 2]
    cleared, edited = t.sample_ids[with_labels[0]], t.sample_ids[with_labels[1]]
    gone = t.label_id[t.offsets[with_labels[1]]]
    sample = det_dataset[cleared]
    sample["gt"] = None
    sample.save()
    sample = det_dataset[edited]
    sample.gt.detections = [d for d in sample.gt.detections if d.id != gone][::-1]
    sample.save()
    before = _docs(det_dataset)
    values = {lid: float(i) for i, lid in enumerate(t.label_id)}
    write_many(det_dataset, {"gt": {"attributes": {"qa_v": values}}}, {"qa_c": {cleared: 1}}, layout=layout)
    after = _docs(det_dataset)
    cleared_doc = next(d for k, d in after.items() if str(k) == cleared)
    cleared_before = next(d for k, d in before.items() if str(k) == cleared)
    assert cleared_doc.get("gt", "absent") == cleared_before.get("gt", "absent") and cleared_doc["qa_c"] == 1
    for d in det_dataset[edited].gt.detections:
        assert d.qa_v == values[d.id]
    assert gone not in [d.id for d in det_dataset[edited].gt.detections]
    # a sample whose written labels all vanished (and that gets no sample value) is not touched
    lonely = t.sample_ids[with_labels[2]]
    sample = det_dataset[lonely]
    sample.gt.detections = [fo.Detection(label="new", bounding_box=[0.1, 0.1, 0.2, 0.2])]
    sample.save()
    before = {str(k): d for k, d in _docs(det_dataset).items()}
    write_many(det_dataset, {"gt": {"attributes": {"qa_w": values}}}, layout=layout)
    assert {str(k): d for k, d in _docs(det_dataset).items()}[lonely] == before[lonely]


def test_upper_case_label_ids_are_written(det_dataset):
    t = read_label_table(det_dataset, "gt")
    lid = t.label_id[0]
    stats = write_label_attributes(det_dataset, "gt", {"qa_u": {lid.upper(): 3.0}})
    assert stats == {"labels": 1, "samples": 1, "missing": []}
    assert det_dataset.filter_labels("gt", F("qa_u") == 3.0).values("gt.detections.id", unwind=True) == [lid]


def test_read_dotted_and_odd_attributes_equal_fiftyone_values(dataset):
    """The raw-BSON reader against FiftyOne's typed values(): nested attributes, odd types,
    non-string labels, ints in boxes, missing and null values, unicode."""
    dets = [fo.Detection(label="çà", bounding_box=[0, 0, 1, 1], meta={"rater": "r1", "k": 2}, flag=True, when="x"),
            fo.Detection(label="b", bounding_box=[0.1, 0.2, 0.3, 0.4], meta={"k": 3}, flag=False, confidence=1),
            fo.Detection(label="c", bounding_box=[0.5, 0.5, 0.2, 0.2], tags=["t1", "t2"])]
    dataset.add_sample(fo.Sample(filepath="/nonexistent/a.png", gt=fo.Detections(detections=dets)))
    dataset.add_sample(fo.Sample(filepath="/nonexistent/b.png"))
    t = read_label_table(dataset, "gt", attributes=["meta.rater", "meta.k", "flag", "when"])
    for attr in ("meta.rater", "meta.k", "flag", "when"):
        expected = dataset.values(f"gt.detections.{attr}", unwind=True)
        got = [None if isinstance(v, float) and np.isnan(v) else v for v in t.attributes[attr].tolist()]
        assert got == expected, attr
    assert t.label.tolist() == ["çà", "b", "c"]
    assert t.label_id.tolist() == dataset.values("gt.detections.id", unwind=True)
    assert t.sample_ids.tolist() == dataset.values("id")
    assert t.filepaths.tolist() == dataset.values("filepath")
    assert t.tags == [[], [], ["t1", "t2"]]
    assert np.isnan(t.confidence[0]) and t.confidence[1] == 1.0
    assert t.box.tolist()[0] == [0.0, 0.0, 1.0, 1.0]
    assert t.offsets.tolist() == [0, 3, 3]
