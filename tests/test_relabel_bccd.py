"""The round trip on real BCCD: delete every duplicate the audit flags, checked with FiftyOne's own
duplicate finder (``fiftyone.utils.iou.find_duplicates``) before and after, then undo everything and
compare the label lists byte for byte; export the queue as COCO and read it back with FiftyOne."""
import time

import fiftyone as fo
import fiftyone.utils.iou as foui
import pytest
from relabel_support import raw_labels

from iou_audit.audits.duplicates import audit_duplicates
from iou_audit.ingest import ingest
from iou_audit.relabel import apply_fix, export_relabel_queue, plan_fix, select_labels, undo_fix


@pytest.fixture(scope="module")
def bccd(shared_data):
    ds = ingest(shared_data / "bccd", format=None, progress=False)
    yield ds
    ds.delete()


def test_delete_all_flagged_duplicates_then_undo(bccd, tmp_path):
    audit_duplicates(bccd, "ground_truth", audit_key="dups", progress=False)
    # FiftyOne's finder: one id per pair with IoU > 0.8 (README: 7 copies at 0.915-0.933, one at 0.83)
    oracle_before = set(foui.find_duplicates(bccd, "ground_truth", iou_thresh=0.8, method="greedy"))
    flagged = [lid for lid, of in zip(*bccd.values(["ground_truth.detections.id",
                                                    "ground_truth.detections.dups_dup_of"], unwind=True)) if of]
    assert len(flagged) == len(oracle_before) == 8
    before = raw_labels(bccd, "ground_truth")
    before_ids = bccd.values("ground_truth.detections.id", unwind=True)
    t0 = time.perf_counter()
    records = [apply_fix(bccd, plan_fix(bccd, "ground_truth", lid, "delete_duplicate")) for lid in flagged]
    t_apply = time.perf_counter() - t0
    remaining = set(bccd.values("ground_truth.detections.id", unwind=True))
    assert not remaining & set(flagged)
    # FiftyOne's finder now sees no pair at all: each pair lost one copy, none lost both
    assert foui.find_duplicates(bccd, "ground_truth", iou_thresh=0.8, method="greedy") == []
    assert len(remaining) == len(before_ids) - 8
    t0 = time.perf_counter()
    for rec in reversed(records):
        undo_fix(bccd, rec["fix_id"])
    t_undo = time.perf_counter() - t0
    assert raw_labels(bccd, "ground_truth") == before
    assert set(foui.find_duplicates(bccd, "ground_truth", iou_thresh=0.8, method="greedy")) == oracle_before
    print(f"apply 8 fixes: {t_apply:.2f} s, undo 8: {t_undo:.2f} s")


def test_export_queue_reads_back(bccd, tmp_path):
    if "dups" not in bccd.list_runs():
        audit_duplicates(bccd, "ground_truth", audit_key="dups", progress=False)
    sel = select_labels(bccd, "ground_truth", tags=["dups:duplicate"])
    out = export_relabel_queue(sel, tmp_path / "q", format="coco")
    back = fo.Dataset.from_dir(dataset_dir=str(tmp_path / "q"), dataset_type=fo.types.COCODetectionDataset,
                               label_field="gt", label_types="detections")
    try:
        assert len(back) == out["n_samples"] == len(sel.samples)
        assert back.count("gt.detections") == out["n_labels"] == sel.samples.count("ground_truth.detections")
        assert sorted(back.distinct("gt.detections.label")) == sorted(sel.samples.distinct("ground_truth.detections.label"))
    finally:
        back.delete()
