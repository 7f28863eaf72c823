"""Real-data oracle for the segmentation audit: the 100 COCO val2014 images of
../shared/data/coco-val2014-100, labels vs cocoapi's fake segmentation results, both rasterised with
pycocotools (``iou_audit.examples.coco_semantic``).

Oracle: FiftyOne's ``evaluate_segmentations`` run on each image alone (its pixel confusion matrix
over the 80 COCO categories and background) against our per-image confusion matrices (what the
review panel's selections count, ``evidence.image_confusions``) and the run's per-image mIoU, and
on the whole dataset against the run's stored confusion table and its mIoU / pixel accuracy.
"""
from __future__ import annotations

import numpy as np
import pytest

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.examples.coco_semantic import load_dataset
from iou_audit.results import load_audit
from iou_audit.results.evidence import image_confusions


@pytest.fixture(scope="module")
def coco(shared_data, tmp_path_factory):
    ds = load_dataset(tmp_path_factory.mktemp("coco_masks"), shared_data / "coco-val2014-100")
    yield ds
    ds.delete()


def _miou(c):
    c = c.astype(float)
    inter, union = np.diag(c), c.sum(0) + c.sum(1) - np.diag(c)
    return (inter[union > 0] / union[union > 0]).mean()


def test_per_image_confusion_matrices_equal_fiftyones(coco):
    ds = coco
    audit_segmentation_agreement(ds, ["seg_gt", "seg_fake"], audit_key="coco_seg")
    r = load_audit(ds, "coco_seg")
    assert r.metrics["n_images"] == 100
    targets = ds.mask_targets["seg_gt"]
    values = sorted(targets)
    where = {v: i for i, v in enumerate(values)}
    cells = image_confusions(ds, r, "seg_gt", "seg_fake")
    assert set(cells["value_a"]) | set(cells["value_b"]) <= set(values)
    per_image_miou = dict(zip(r.tables["per_image"]["sample_id"], r.tables["per_image"]["miou"]))
    by_sample = dict(list(cells.groupby("sample_id")))
    total = np.zeros((len(values), len(values)), np.int64)
    for sid in ds.values("id"):
        fo_res = ds.select(sid).evaluate_segmentations("seg_fake", gt_field="seg_gt", mask_targets=targets,
                                                       progress=False)
        theirs = fo_res.pixel_confusion_matrix.astype(np.int64)
        ours = np.zeros_like(theirs)
        d = by_sample[sid]
        ours[[where[v] for v in d["value_a"]], [where[v] for v in d["value_b"]]] = d["pixels"]
        assert (ours == theirs).all(), sid
        assert per_image_miou[sid] == pytest.approx(_miou(theirs), abs=1e-12), sid
        total += theirs
    # the stored dataset confusion and the metrics, from the sum of FiftyOne's per-image matrices
    stored = np.zeros_like(total)
    c = r.tables["confusion"]
    names = {v: n for v, n in targets.items()}
    index = {names[v]: i for v, i in where.items()}
    stored[[index[n] for n in c["class_a"]], [index[n] for n in c["class_b"]]] = c["pixels"]
    assert (stored == total).all()
    whole = ds.evaluate_segmentations("seg_fake", gt_field="seg_gt", mask_targets=targets, progress=False)
    assert (whole.pixel_confusion_matrix.astype(np.int64) == total).all()
    assert r.metrics["miou"] == pytest.approx(_miou(total), abs=1e-12)
    assert r.metrics["pixel_accuracy"] == pytest.approx(np.trace(total) / total.sum(), abs=1e-12)
