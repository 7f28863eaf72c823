"""Real agreement: the two LVIS raters of ../shared/data/lvis-double-200, rasterised with pycocotools
into one class map per rater (iou_audit.examples.lvis_semantic), audited as two Segmentation fields.

Oracles: FiftyOne's ``evaluate_segmentations`` on the same fields (its dataset confusion matrix over
all LVIS categories gives mIoU and pixel accuracy), and Krippendorff's alpha from the raters' pixel
value counts (pairable values: every pixel has two), computed straight from the PNG files.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.examples.lvis_semantic import load_dataset


@pytest.fixture(scope="module")
def lvis(shared_data, tmp_path_factory):
    ds = load_dataset(tmp_path_factory.mktemp("lvis_masks"), shared_data / "lvis-double-200")
    yield ds
    ds.delete()


def test_lvis_raters_agreement_equals_fiftyone(lvis):
    r = audit_segmentation_agreement(lvis, ["seg_r1", "seg_r2"], regions_field="lvis_disagree",
                                     min_region_pixels=500, batch_size=64)
    assert r.metrics["n_images"] == 200 and r.metrics["n_skipped"] == 0
    targets = lvis.mask_targets["seg_r1"]
    fo_res = lvis.evaluate_segmentations("seg_r2", gt_field="seg_r1", mask_targets=targets)
    c = fo_res.pixel_confusion_matrix.astype(float)
    inter = np.diag(c)
    union = c.sum(0) + c.sum(1) - inter
    present = union > 0
    assert r.metrics["miou"] == pytest.approx((inter[present] / union[present]).mean(), abs=1e-12)
    assert r.metrics["pixel_accuracy"] == pytest.approx(inter.sum() / c.sum(), abs=1e-12)
    per_class = r.tables["per_class"].set_index("class")
    names = [targets[v] for v in sorted(targets)]
    for i in np.flatnonzero(present):
        assert per_class.loc[names[i], "iou"] == pytest.approx(inter[i] / union[i], abs=1e-12)

    # alpha from pixel value counts of the PNGs (no confusion matrix): n = 2 values per pixel
    disagree, counts, pixels = 0, {}, 0
    for p1, p2 in zip(lvis.values("seg_r1.mask_path"), lvis.values("seg_r2.mask_path")):
        a, b = cv2.imread(p1, cv2.IMREAD_UNCHANGED), cv2.imread(p2, cv2.IMREAD_UNCHANGED)
        disagree += int((a != b).sum())
        pixels += a.size
        for m in (a, b):
            vals, n = np.unique(m, return_counts=True)
            for v, k in zip(vals.tolist(), n.tolist()):
                counts[v] = counts.get(v, 0) + k
    n = 2 * pixels
    n_c = np.array(list(counts.values()), dtype=float)
    alpha = 1 - (n - 1) * (2 * disagree) / (n * n - (n_c**2).sum())
    assert r.metrics["alpha"] == pytest.approx(alpha, abs=1e-12)
    assert 0.3 < r.metrics["alpha"] < 1.0  # two real raters agree, not perfectly
    assert r.metrics["n_regions"] == sum(len(d.detections) for d in lvis.values("lvis_disagree"))
    print({k: r.metrics[k] for k in ("miou", "fwiou", "pixel_accuracy", "mean_image_miou", "alpha", "n_low_miou",
                                     "n_class_missing", "n_regions")})
