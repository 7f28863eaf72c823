"""audit_keypoint_duplicates on the CrowdPose example in a FiftyOne database: the pairs it flags
and their OKS equal pycocotools' ``computeOks`` run both ways (the oracle), on the pose model's
real predictions; a skeleton copied into the real labels is found exactly once."""
from __future__ import annotations

import contextlib
import copy
import io

import fiftyone as fo
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.audits.keypoints.duplicates import audit_keypoint_duplicates
from iou_audit.geometry.keypoints import CROWDPOSE_SIGMAS
from iou_audit.results import delete_audit


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    yield ds
    ds.delete()


def _pycocotools_self_oks(points_px: np.ndarray) -> np.ndarray:
    """OKS of one image's skeletons with each other, pycocotools computing it each way: every
    skeleton as ground truth (all points labeled, area and box of the points' extent, as our
    default) against every skeleton as a result (equal scores keep the input order)."""
    anns, dts = [], []
    for i, p in enumerate(points_px):
        x0, y0 = p.min(axis=0)
        x1, y1 = p.max(axis=0)
        kp = np.concatenate([p, np.full((len(p), 1), 2.0)], axis=1).reshape(-1).tolist()
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": kp,
                     "num_keypoints": len(p), "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        dts.append({"image_id": 1, "category_id": 1, "keypoints": kp, "score": 1.0})
    coco = COCO()
    coco.dataset = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "person"}], "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "keypoints")
    ev.params.kpt_oks_sigmas = CROWDPOSE_SIGMAS
    ev.params.imgIds = [1]
    ev._prepare()
    m = np.asarray(ev.computeOks(1, 1))  # rows: results (stable sort of equal scores: input order)
    return (m + m.T) / 2


def test_flagged_pairs_equal_pycocotools_on_real_predictions(crowdpose):
    thresh = 0.3
    r = audit_keypoint_duplicates(crowdpose, "predictions", audit_key="kpdup", sigmas=CROWDPOSE_SIGMAS,
                                  oks_thresh=thresh)
    want = {}
    for sample in crowdpose.select_fields("predictions"):
        kps = sample.predictions.keypoints
        if len(kps) < 2:
            continue
        size = [sample.metadata.width, sample.metadata.height]
        sym = _pycocotools_self_oks(np.array([kp.points for kp in kps]) * size)
        for i in range(len(kps)):
            for j in range(i + 1, len(kps)):
                if sym[i, j] >= thresh:
                    want[kps[j].id, kps[i].id] = float(sym[i, j])
    got = {(a, b): v for a, b, v in zip(r.findings["label_id"], r.findings["other_label_id"], r.findings["iou"])}
    assert want and set(got) == set(want)  # the model's real near-duplicate poses, found with pycocotools' OKS
    for pair, v in want.items():
        assert got[pair] == pytest.approx(v, rel=1e-12, abs=1e-15)
    assert r.metrics["n_duplicate_skeleton"] == len(want)
    delete_audit(crowdpose, "kpdup")


def test_a_copied_skeleton_is_found_once(crowdpose):
    assert len(audit_keypoint_duplicates(crowdpose, "ground_truth", sigmas=CROWDPOSE_SIGMAS, save=False).findings) == 0
    values = crowdpose.values("ground_truth")
    edited = copy.deepcopy(values)
    source = edited[0].keypoints[0]
    twin = fo.Keypoint(label=source.label, points=[(x + 0.002, y + 0.001) if x == x else (x, y)
                                                   for x, y in source.points], visible=list(source.visible))
    edited[0].keypoints.append(twin)
    crowdpose.set_values("edited", edited)
    try:
        r = audit_keypoint_duplicates(crowdpose, "edited", audit_key="kpdup2", sigmas=CROWDPOSE_SIGMAS)
        assert r.findings[["kind", "label_id"]].values.tolist() == [["duplicate_skeleton", twin.id]]
        stored = crowdpose.values("edited.keypoints")[0]
        assert stored[0].id == r.findings["other_label_id"][0]
        assert "kpdup2:duplicate_skeleton" in stored[-1].tags and stored[-1]["kpdup2_oks"] > 0.9
        delete_audit(crowdpose, "kpdup2")
    finally:
        crowdpose.delete_sample_field("edited")


def test_empty_field():
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=10, height=10))])
        ds.add_sample_field("kp", fo.EmbeddedDocumentField, embedded_doc_type=fo.Keypoints)
        r = audit_keypoint_duplicates(ds, "kp", save=False)
        assert len(r.findings) == 0 and r.metrics["n_labels"] == 0
    finally:
        ds.delete()
