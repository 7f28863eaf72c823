"""Export of the relabel queue through FiftyOne's exporters, read back with FiftyOne's importers
(the oracle), and the path rules: nothing is ever written outside the chosen directory."""
import json
import os
import xml.etree.ElementTree as ET

import fiftyone as fo
import pytest
from relabel_support import make_dataset

import iou_audit
from iou_audit.relabel import REASON_ATTR, UnsafeExportPath, export_relabel_queue, select_labels


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    d = make_dataset(tmp_path_factory.mktemp("img"))
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree", consensus_field="cons")
    yield d
    d.delete()


def _tree(path):
    return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


def _by_file(samples, field="gt"):
    """{image file name: sorted [(class, rounded xywh box)]}."""
    out = {}
    for fp, dets in zip(*samples.values(["filepath", f"{field}.detections"])):
        out[os.path.basename(fp)] = sorted((d.label, tuple(round(v, 4) for v in d.bounding_box)) for d in dets or [])
    return out


def test_coco_export_reads_back_with_fiftyone_and_carries_reasons(ds, tmp_path):
    sel = select_labels(ds, "gt")  # every label with a finding tag: 4 labels on 2 samples
    assert len(sel) == 4 and len(sel.samples) == 2
    out = export_relabel_queue(sel, tmp_path / "coco", format="coco")
    assert out["n_samples"] == 2 and out["n_flagged"] == 4 and out["n_labels"] == 4  # all of their labels
    assert {"labels.json", "relabel_queue.json", "data/img0.png", "data/img1.png"} == set(out["files"])
    back = fo.Dataset.from_dir(dataset_dir=str(tmp_path / "coco"), dataset_type=fo.types.COCODetectionDataset,
                               label_field="gt", label_types="detections")
    try:
        assert _by_file(back) == _by_file(sel.samples)
        reasons = {a.get(REASON_ATTR) for a in json.loads((tmp_path / "coco/labels.json").read_text())["annotations"]}
        assert "agree:class_conflict (gt says 'dog'; votes cat:2, dog:1)" in reasons
    finally:
        back.delete()
    queue = json.loads((tmp_path / "coco/relabel_queue.json").read_text())
    assert sorted(q["label_id"] for q in queue) == sorted(sel.label_ids)
    dup = next(q for q in queue if "dups:duplicate" in q["tags"] and "agree:extra_in_annotator" in q["tags"])
    assert "dups:duplicate (cat vs cat: IoU 1.000" in dup[REASON_ATTR] and dup["filepath"].endswith("img0.png")
    assert ds.get_field(f"gt.detections.{REASON_ATTR}") is None  # the export wrote nothing to the dataset


def test_cvat_export_holds_the_reason_attribute(ds, tmp_path):
    sel = select_labels(ds, "gt", tags=["agree:class_conflict"])
    out = export_relabel_queue(sel, tmp_path / "cvat", format="cvat", export_media=False)
    assert out["n_flagged"] == 1 and out["n_labels"] == 3 and "labels.xml" in out["files"]
    root = ET.parse(tmp_path / "cvat/labels.xml").getroot()
    boxes = root.findall(".//image/box")
    assert len(boxes) == 3
    texts = [a.text for b in boxes for a in b.findall("attribute") if a.get("name") == REASON_ATTR]
    assert texts == ["agree:class_conflict (gt says 'dog'; votes cat:2, dog:1)"]
    assert not (tmp_path / "cvat/data").exists()  # labels only


def test_yolo_export_only_flagged(ds, tmp_path):
    sel = select_labels(ds, "gt", label_ids=[ds.first().gt.detections[2].id])
    out = export_relabel_queue(sel, tmp_path / "yolo", format="yolo", only_flagged=True)
    assert out["n_labels"] == 1
    back = fo.Dataset.from_dir(dataset_dir=str(tmp_path / "yolo"), dataset_type=fo.types.YOLOv5Dataset,
                               split="val", label_field="gt")
    try:
        assert _by_file(back) == {"img0.png": [("dog", (0.6, 0.6, 0.2, 0.2))]}
    finally:
        back.delete()


def test_paths_outside_the_directory_are_refused_before_writing(ds, tmp_path):
    sel = select_labels(ds, "gt", tags=["agree:class_conflict"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "x").mkdir()
    with pytest.raises(UnsafeExportPath, match=r"contains '\.\.'"):
        export_relabel_queue(sel, str(tmp_path / "x" / ".." / "outside"))
    with pytest.raises(UnsafeExportPath, match="is absolute"):
        export_relabel_queue(sel, tmp_path / "a", labels_path=str(outside / "labels.json"))
    with pytest.raises(UnsafeExportPath, match=r"contains '\.\.'"):
        export_relabel_queue(sel, tmp_path / "b", labels_path="../outside/labels.json")
    # a symlink inside the chosen directory leading out of it
    (tmp_path / "c").mkdir()
    os.symlink(outside, tmp_path / "c" / "data")
    with pytest.raises(UnsafeExportPath, match="symlinks pointing outside"):
        export_relabel_queue(sel, tmp_path / "c", format="coco")
    (tmp_path / "e").mkdir()
    os.symlink(outside / "l.json", tmp_path / "e" / "l.json")
    with pytest.raises(UnsafeExportPath):
        export_relabel_queue(sel, tmp_path / "e", labels_path="l.json")
    (tmp_path / "f.txt").write_text("")
    with pytest.raises(UnsafeExportPath, match="not a directory"):
        export_relabel_queue(sel, tmp_path / "f.txt")
    with pytest.raises(ValueError, match="format must be one of"):
        export_relabel_queue(sel, tmp_path / "g", format="voc")
    assert _tree(outside) == [] and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert sorted(os.listdir(tmp_path / "c")) == ["data"]


def test_selection_errors_name_the_ids(ds):
    with pytest.raises(ValueError, match=r"label ids not found in field 'gt'.*'0{24}'"):
        select_labels(ds, "gt", label_ids=["0" * 24])
    with pytest.raises(ValueError, match="does not exist"):
        select_labels(ds, "nope")
    with pytest.raises(ValueError, match="no labels of field 'ann_b'"):
        select_labels(ds, "ann_b", tags=["dups:duplicate"])


def test_reviewed_labels_stay_out_of_a_tag_selection(tmp_path):
    from iou_audit.review import mark_review

    d = make_dataset(tmp_path / "img")
    try:
        iou_audit.audit_duplicates(d, "gt", audit_key="dups")
        iou_audit.audit_agreement(d, ["gt", "ann_b", "ann_c"], audit_key="agree")
        kept, copy, dog = (x.id for x in d.first().gt.detections)  # the finding is on the copy
        assert set(select_labels(d, "gt", tags=["dups:duplicate"]).label_ids) == {kept, copy}
        mark_review(d, [copy], "not_an_error")
        assert select_labels(d, "gt", tags=["dups:duplicate"]).label_ids == (kept,)
        assert set(select_labels(d, "gt", tags=["dups:duplicate"], skip_reviewed=False).label_ids) == {kept, copy}
        assert select_labels(d, "gt", label_ids=[copy]).label_ids == (copy,)  # explicit ids: always
        mark_review(d, [dog], "not_an_error")
        with pytest.raises(ValueError, match="all 1 flagged labels of 'gt' are reviewed"):
            select_labels(d, "gt", tags=["agree:class_conflict"])
        s = d.first()
        s.gt.detections[2].bounding_box = [0.5, 0.5, 0.2, 0.2]  # changed since the review: back in
        s.save()
        assert select_labels(d, "gt", tags=["agree:class_conflict"]).label_ids == (dog,)
    finally:
        d.delete()
