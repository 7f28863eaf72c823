"""Every public name resolves, and geometry stays importable without FiftyOne."""
import subprocess
import sys

import iou_audit


def test_every_export_resolves():
    for name in iou_audit.__all__:
        assert getattr(iou_audit, name) is not None, name


def test_geometry_and_matching_do_not_import_fiftyone():
    code = ("import sys, iou_audit; iou_audit.box_iou; iou_audit.batched_box_iou; iou_audit.greedy_match; "
            "iou_audit.cropped_mask_iou; import iou_audit.geometry.polygons; iou_audit.oks; iou_audit.keypoint_evaluate; "
            "bad = [m for m in ('fiftyone', 'pandas') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
