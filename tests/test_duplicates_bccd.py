"""The duplicate audit on real, human-annotated BCCD, checked against FiftyOne's own IoU code and
against the raw VOC XML files (parsed here with ElementTree, independently of FiftyOne's importer)."""
import pathlib
import xml.etree.ElementTree as ET

import fiftyone as fo
import fiftyone.utils.iou as foui
import numpy as np
import pytest

from iou_audit.audits.duplicates import audit_duplicates
from iou_audit.ingest import ingest
from iou_audit.results import delete_audit, list_audits


@pytest.fixture(scope="module")
def bccd(shared_data):
    ds = ingest(shared_data / "bccd", format=None, progress=False)
    yield ds
    ds.delete()


def _xml_boxes(directory: pathlib.Path):
    """{image stem: [(name, xmin, ymin, xmax, ymax)]} straight from the XML files."""
    out = {}
    for path in sorted((directory / "Annotations").glob("*.xml")):
        root = ET.parse(path).getroot()
        out[path.stem] = [(o.findtext("name"), *(float(o.find("bndbox").findtext(k))
                                                  for k in ("xmin", "ymin", "xmax", "ymax")))
                          for o in root.iter("object")]
    return out


def test_ingest_matches_files(bccd, shared_data):
    xml = _xml_boxes(shared_data / "bccd")
    assert bccd.count() == len(xml) == 364
    assert bccd.count("ground_truth.detections") == sum(len(v) for v in xml.values())
    main = shared_data / "bccd" / "ImageSets" / "Main"
    expected = {s: len((main / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")}
    assert bccd.count_values("split") == expected
    assert bccd.count_sample_tags() == expected
    stems = [pathlib.Path(p).stem for p in bccd.match(fo.ViewField("split") == "test").values("filepath")]
    assert sorted(stems) == sorted((main / "test.txt").read_text().split())


def test_degenerate_boxes_are_the_zero_size_boxes_of_the_xml(bccd, shared_data):
    xml = _xml_boxes(shared_data / "bccd")
    expected = sorted((stem, b) for stem, boxes in xml.items() for b in boxes if b[3] <= b[1] or b[4] <= b[2])
    assert expected, "BCCD is known to contain zero-size boxes"
    result = audit_duplicates(bccd, "ground_truth", audit_key="dups_degenerate", save=False)
    deg = result.findings[result.findings.kind == "degenerate_box"]
    id_to_stem = dict(zip(bccd.values("id"), (pathlib.Path(p).stem for p in bccd.values("filepath"))))
    assert sorted(id_to_stem[s] for s in deg.sample_id) == [stem for stem, _ in expected]
    assert (deg.score == 1.0).all()


def test_duplicate_ious_and_fiftyone_find_duplicates(bccd):
    thresh = 0.75
    result = audit_duplicates(bccd, "ground_truth", iou_thresh=thresh, audit_key="dups", save=False)
    dups = result.findings[result.findings.kind == "duplicate"]
    assert len(dups) >= 5, "BCCD has several shifted double annotations of the same cell"

    # every pair's IoU agrees with FiftyOne's compute_ious on the two Detection objects
    dets = {d.id: d for dl in bccd.values("ground_truth.detections") for d in dl}
    for _, row in dups.iterrows():
        fo_iou = foui.compute_ious([dets[row.label_id]], [dets[row.other_label_id]])[0, 0]
        assert row.iou == pytest.approx(fo_iou, abs=1e-9)
        assert dets[row.label_id].label == dets[row.other_label_id].label

    # find_duplicates ("simple": the later label of every pair with IoU > thresh) flags the same labels.
    # Differences would come from: FO compares across classes unless classwise=True, and uses a
    # strict ">" where we use ">="; on BCCD no cross-class pair exceeds IoU 0.2 and no pair sits at
    # exactly 0.75, so the sets must be equal with and without classwise.
    ours = set(dups.label_id)
    assert set(foui.find_duplicates(bccd, "ground_truth", iou_thresh=thresh, classwise=True)) == ours
    assert set(foui.find_duplicates(bccd, "ground_truth", iou_thresh=thresh)) == ours
    # FiftyOne's own default (0.999, exact copies) finds none of these shifted copies; nor do we at 0.999
    assert foui.find_duplicates(bccd, "ground_truth") == []
    at_999 = audit_duplicates(bccd, "ground_truth", iou_thresh=0.999, save=False).findings
    assert (at_999.kind == "duplicate").sum() == 0


def test_saved_results_and_delete_restore_the_dataset(bccd):
    before_boxes = bccd.values("ground_truth.detections.bounding_box")
    before_fields = set(bccd.get_field_schema(flat=True))
    result = audit_duplicates(bccd, "ground_truth", audit_key="dups_saved", max_iou_labels="overlapping")
    n_dup = int((result.findings.kind == "duplicate").sum())
    assert "dups_saved" in list_audits(bccd)
    tags = bccd.count_label_tags()
    assert tags.get("dups_saved:duplicate", 0) >= n_dup and tags.get("dups_saved:degenerate_box") == 2
    # max_iou on exactly the labels overlapping another label of their class (checked with FiftyOne)
    overlapping = set()
    for dl in bccd.values("ground_truth.detections"):
        if len(dl) > 1:
            ious = foui.compute_ious(dl, dl, classwise=True)
            np.fill_diagonal(ious, 0)
            overlapping |= {d.id for d, row in zip(dl, ious) if row.max() > 0}
    with_attr = bccd.filter_labels("ground_truth", fo.ViewField("dups_saved_max_iou") != None)
    assert set(with_attr.values("ground_truth.detections.id", unwind=True)) == overlapping
    assert bccd.count("ground_truth.detections.dups_saved_dup_of") == n_dup
    flagged = bccd.filter_labels("ground_truth", fo.ViewField("dups_saved_dup_of") != None)
    assert set(flagged.values("ground_truth.detections.id", unwind=True)) == set(
        result.findings.label_id[result.findings.kind == "duplicate"])
    # same key again: replaced, not duplicated; by default max_iou only on the flagged pairs' labels
    again = audit_duplicates(bccd, "ground_truth", audit_key="dups_saved")
    assert bccd.count_label_tags() == tags
    pairs = again.findings[again.findings.kind.isin(["duplicate", "class_conflict", "contained"])]
    with_attr = bccd.filter_labels("ground_truth", fo.ViewField("dups_saved_max_iou") != None)
    assert set(with_attr.values("ground_truth.detections.id", unwind=True)) == (
        set(pairs.label_id) | set(pairs.other_label_id))
    assert bccd.values("ground_truth.detections.bounding_box") == before_boxes
    delete_audit(bccd, "dups_saved")
    assert "dups_saved" not in list_audits(bccd)
    assert not any(t.startswith("dups_saved") for t in bccd.count_label_tags())
    assert set(bccd.get_field_schema(flat=True)) == before_fields
