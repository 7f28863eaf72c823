"""The demo's segmentation section (``iou_audit.demo_segmentation``, called by ``./run demo``) on the
two real LVIS raters: what it prints, checked against FiftyOne's ``evaluate_segmentations`` run here
on the demo's dataset (its pixel confusion matrix gives mIoU, frequency-weighted IoU, pixel
accuracy and, as the coincidence matrix C + C^T, Krippendorff's alpha), and what it stores."""
from __future__ import annotations

import re

import fiftyone as fo
import numpy as np
import pytest

from iou_audit.results import list_audits


def _scores(c):
    c = c.astype(float)
    inter, rows, cols = np.diag(c), c.sum(1), c.sum(0)
    union = rows + cols - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    coincidence = c + c.T
    n_c, n = coincidence.sum(1), coincidence.sum()
    alpha = 1 - (n - 1) * (n - np.trace(coincidence)) / (n * n - (n_c ** 2).sum())
    return {"miou": np.nanmean(iou), "fwiou": (rows * np.nan_to_num(iou)).sum() / c.sum(),
            "pixel_accuracy": inter.sum() / c.sum(), "alpha": alpha}


def test_segmentation_demo_section(shared_data, tmp_path, capsys):
    from iou_audit.demo import _show, _top
    from iou_audit.demo_segmentation import AUDIT_KEY, REGIONS_FIELD, run_segmentation_demo

    name = "demo-lvis-seg-test"
    r = run_segmentation_demo(name, shared_data / "lvis-double-200", mask_dir=tmp_path, show=_show, top=_top)
    try:
        out = capsys.readouterr().out
        ds = fo.load_dataset(name)
        assert ds.persistent and list_audits(ds) == [AUDIT_KEY] and len(ds) == 200
        targets = ds.mask_targets["seg_r1"]
        fo_res = ds.evaluate_segmentations("seg_r2", gt_field="seg_r1", mask_targets=targets, progress=False)
        s = _scores(fo_res.pixel_confusion_matrix)
        n_regions = ds.count(f"{REGIONS_FIELD}.detections")
        line = (f"rater agreement over 200 images: mIoU {s['miou']:.3f}, frequency-weighted IoU {s['fwiou']:.3f}, "
                f"pixel accuracy {s['pixel_accuracy']:.3f}, Krippendorff's alpha over pixels {s['alpha']:.3f}")
        assert line in out, out
        assert f"{n_regions} regions of >= 500 px where they disagree" in out, out
        assert s["miou"] == pytest.approx(0.764, abs=5e-4) and s["alpha"] == pytest.approx(0.908, abs=5e-4)

        # the top findings: the worst image's printed mIoU is FiftyOne's on that image alone
        m = re.search(r"low_miou\s+\S+\s+lvis (\d+): mIoU ([\d.]+)", out)
        assert m, out
        sid = ds.match(fo.ViewField("lvis_id") == int(m.group(1))).first().id
        one = ds.select(sid).evaluate_segmentations("seg_r2", gt_field="seg_r1", mask_targets=targets, progress=False)
        assert float(m.group(2)) == pytest.approx(_scores(one.pixel_confusion_matrix)["miou"], abs=5e-4)
        low = r.findings[r.findings["kind"] == "low_miou"]
        assert float(m.group(2)) == pytest.approx(1 - low["score"].max(), abs=5e-4)  # the worst one is shown

        # the queue: one row per flagged image, one per region
        images = r.findings.loc[r.findings["sample_id"] != "", "sample_id"].nunique()
        assert f"triage queue: {images + n_regions} rows ({images} images, {n_regions} regions)" in out, out
        assert "has none of it" in out and "agree poorly on this image" in out
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_segmentation_demo_without_data_skips_with_a_message(tmp_path, capsys):
    from iou_audit.demo_segmentation import run_segmentation_demo

    assert run_segmentation_demo("demo-lvis-missing", tmp_path) is None
    assert f"not in {tmp_path}" in capsys.readouterr().out
    assert not fo.dataset_exists("demo-lvis-missing")
