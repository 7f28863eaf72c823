"""Keypoints label tables read from a real FiftyOne dataset (the CrowdPose example, converted by
FiftyOne's own COCO parser), checked against the JSON files; bad keypoint values are clear errors."""
from __future__ import annotations

import json

import fiftyone as fo
import numpy as np
import pytest

from iou_audit.table import read_label_table
from iou_audit.table.read import ALL_LABEL_TYPES


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    yield ds
    ds.delete()


def test_keypoint_table_matches_the_json(crowdpose, shared_data):
    gt_json = json.loads((shared_data / "crowdpose-example" / "example_crowdpose_val.json").read_text())
    pred_json = json.loads((shared_data / "crowdpose-example" / "example_crowdpose_preds.json").read_text())
    size = {im["id"]: (im["width"], im["height"]) for im in gt_json["images"]}
    gt = read_label_table(crowdpose, "ground_truth", label_types=ALL_LABEL_TYPES, compute_metadata=False)
    pred = read_label_table(crowdpose, "predictions", attributes=["score"], label_types=ALL_LABEL_TYPES,
                            compute_metadata=False)
    assert gt.label_type == "keypoints" and gt.points.shape == (10, 14, 2) and pred.points.shape == (15, 14, 2)
    ids = crowdpose.values("coco_id")
    for table, anns in ((gt, gt_json["annotations"]), (pred, pred_json)):
        for s, coco_id in enumerate(ids):
            rows = slice(table.offsets[s], table.offsets[s + 1])
            mine = [a for a in anns if a["image_id"] == coco_id]
            assert table.counts[s] == len(mine)
            k = np.array([a["keypoints"] for a in mine], dtype=np.float64).reshape(-1, 14, 3)
            w, h = size[coco_id]
            px = table.points[rows] * [w, h]
            if table is gt:
                v = k[..., 2]
                np.testing.assert_array_equal(table.visibility[rows], v)
                np.testing.assert_allclose(px[v > 0], k[..., :2][v > 0], rtol=1e-12)
                assert np.isnan(px[v == 0]).all()  # FiftyOne stores unlabeled points as NaN
            else:
                np.testing.assert_allclose(px, k[..., :2], rtol=1e-12)
                np.testing.assert_allclose(table.point_confidence[rows], k[..., 2], rtol=1e-12)
                np.testing.assert_allclose(table.attributes["score"][rows], [a["score"] for a in mine])
                np.testing.assert_allclose(table.confidence[rows], k[..., 2].mean(axis=1), rtol=1e-12)
    assert (gt.num_points == 14).all() and np.isnan(gt.point_confidence).all()
    # the box is the extent of the points that are there
    np.testing.assert_allclose(gt.box[0, :2], np.nanmin(gt.points[0], axis=0))
    sub = gt.take(np.array([1, 3]))
    np.testing.assert_array_equal(sub.visibility, gt.visibility[[1, 3]])


def test_box_readers_refuse_keypoints_clearly(crowdpose):
    with pytest.raises(ValueError, match="holds Keypoints, expected Detections or Polylines"):
        read_label_table(crowdpose, "ground_truth")


def test_bad_keypoint_values_are_clear_errors():
    ds = fo.Dataset()
    try:
        ds.add_sample(fo.Sample(filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=10, height=10),
                                kp=fo.Keypoints(keypoints=[fo.Keypoint(points=[(0.1, 0.1), (0.2, 0.2)],
                                                                       visible=[2, 2, 2])])))
        with pytest.raises(ValueError, match="visible of .* has 3 values for 2 points"):
            read_label_table(ds, "kp", label_types=ALL_LABEL_TYPES, compute_metadata=False)
        # labels of different lengths are padded with NaN, num_points says how many
        ds.add_sample(fo.Sample(filepath="/nonexistent/b.jpg", kp=fo.Keypoints(keypoints=[
            fo.Keypoint(points=[(0.5, 0.5)], confidence=[0.9])])))
        ds.match({"filepath": "/nonexistent/a.jpg"}).set_values("kp.keypoints.visible", [[[2, 0]]])
        t = read_label_table(ds, "kp", label_types=ALL_LABEL_TYPES, compute_metadata=False)
        assert t.num_points.tolist() == [2, 1] and np.isnan(t.points[1, 1]).all()
        assert t.visibility[0].tolist() == [2, 0] and t.point_confidence[1, 0] == 0.9
    finally:
        ds.delete()
