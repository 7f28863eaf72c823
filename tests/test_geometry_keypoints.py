"""geometry.keypoints against pycocotools' ``COCOeval.computeOks`` (the oracle) on random cases,
including COCO's rule for ground truths without labeled keypoints, occluded (v=1) points,
custom sigmas, and the batched layout. No expected value here was produced by our own code."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.geometry.keypoints import (
    COCO_SIGMAS,
    CROWDPOSE_SIGMAS,
    batched_oks,
    box_areas,
    extent_boxes,
    flip_order,
    keypoint_similarity,
    oks,
    resolve_sigmas,
)


def _random_case(rng, k, n_gt, n_dt, p_unlabeled=0.3, p_empty=0.0):
    """COCO-style gts and dts of one image, pixel coordinates, COCO xywh boxes."""
    gts, dts = [], []
    for j in range(n_gt):
        x, y = rng.uniform(0, 400, 2)
        w, h = rng.uniform(5, 200, 2)
        pts = np.stack([rng.uniform(x, x + w, k), rng.uniform(y, y + h, k)], axis=1)
        v = rng.choice([1, 2], size=k)
        v[rng.random(k) < p_unlabeled] = 0
        if rng.random() < p_empty:
            v[:] = 0
        kp = np.concatenate([np.where(v[:, None] > 0, pts, 0.0), v[:, None]], axis=1)
        gts.append({"id": j + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                    "bbox": [float(x), float(y), float(w), float(h)], "area": float(rng.uniform(10, w * h)),
                    "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((v > 0).sum())})
    for i in range(n_dt):
        base = gts[rng.integers(len(gts))] if gts and rng.random() < 0.7 else None
        if base is not None:
            b = np.array(base["keypoints"]).reshape(k, 3)[:, :2]
            bx, by, bw, bh = base["bbox"]
            pts = np.where(b == 0, [bx + bw / 2, by + bh / 2], b) + rng.normal(0, rng.uniform(0.5, 30), (k, 2))
        else:
            pts = rng.uniform(0, 600, (k, 2))
        kp = np.concatenate([pts, rng.uniform(0, 1, (k, 1))], axis=1)
        dts.append({"image_id": 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": float(1.0 - i * 0.01 - rng.uniform(0, 0.001))})
    return gts, dts


def _pycocotools_oks(gts, dts, k, sigmas):
    """computeOks as pycocotools runs it, rows back in input order (it sorts by score)."""
    gt = COCO()
    gt.dataset = {"images": [{"id": 1, "width": 640, "height": 640}],
                  "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(k)]}],
                  "annotations": gts}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dts)
        ev = COCOeval(gt, dt, "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas)
    ev.params.imgIds = [1]
    ev._prepare()
    got = np.asarray(ev.computeOks(1, 1))
    order = np.argsort([-d["score"] for d in dts], kind="mergesort")
    out = np.zeros((len(dts), len(gts)))
    out[order] = got
    return out


def _ours(gts, dts, k, sigmas):
    g = np.array([a["keypoints"] for a in gts], dtype=np.float64).reshape(len(gts), k, 3)
    d = np.array([a["keypoints"] for a in dts], dtype=np.float64).reshape(len(dts), k, 3)
    boxes = np.array([a["bbox"] for a in gts], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    return oks(d[..., :2], g[..., :2], [a["area"] for a in gts], g[..., 2], boxes2=boxes, sigmas=sigmas)


@pytest.mark.parametrize("seed", range(12))
def test_oks_equals_pycocotools_random(seed):
    rng = np.random.default_rng(seed)
    k, sigmas = (17, COCO_SIGMAS) if seed % 2 == 0 else (14, CROWDPOSE_SIGMAS)
    gts, dts = _random_case(rng, k, n_gt=int(rng.integers(1, 8)), n_dt=int(rng.integers(1, 15)), p_empty=0.25)
    np.testing.assert_allclose(_ours(gts, dts, k, sigmas), _pycocotools_oks(gts, dts, k, sigmas),
                               rtol=1e-13, atol=1e-15)


def test_no_labeled_gt_keypoints_follows_coco_rule():
    # every ground truth without labeled keypoints: the distance-to-grown-box rule over all K
    rng = np.random.default_rng(100)
    gts, dts = _random_case(rng, 17, n_gt=5, n_dt=12, p_empty=1.0)
    assert all(g["num_keypoints"] == 0 for g in gts)
    want = _pycocotools_oks(gts, dts, 17, COCO_SIGMAS)
    assert (want > 0).any() and (want < 1).any()  # the case exercises both inside and outside
    np.testing.assert_allclose(_ours(gts, dts, 17, COCO_SIGMAS), want, rtol=1e-13, atol=1e-15)


def test_custom_sigmas_and_few_keypoints():
    # K < 8 (numpy's plain summation) and K = 5 custom sigmas
    rng = np.random.default_rng(7)
    sig = rng.uniform(0.02, 0.2, 5)
    gts, dts = _random_case(rng, 5, n_gt=4, n_dt=9)
    np.testing.assert_allclose(_ours(gts, dts, 5, sig), _pycocotools_oks(gts, dts, 5, sig), rtol=1e-13, atol=1e-15)


def test_batched_equals_per_image_pycocotools():
    rng = np.random.default_rng(3)
    cases = [_random_case(rng, 17, int(rng.integers(0, 5)) + 1, int(rng.integers(0, 6))) for _ in range(6)]
    cases.insert(2, ([], []))  # an image with nothing
    p1, p2, areas, vis, boxes, o1, o2 = [], [], [], [], [], [0], [0]
    for gts, dts in cases:
        for a in dts:
            p1.append(np.reshape(a["keypoints"], (17, 3))[:, :2])
        for a in gts:
            g = np.reshape(a["keypoints"], (17, 3))
            p2.append(g[:, :2]); vis.append(g[:, 2]); areas.append(a["area"])
            x, y, w, h = a["bbox"]; boxes.append([x, y, x + w, y + h])
        o1.append(o1[-1] + len(dts)); o2.append(o2[-1] + len(gts))
    values, po = batched_oks(np.array(p1), o1, np.array(p2), o2, areas, np.array(vis), np.array(boxes))
    for s, (gts, dts) in enumerate(cases):
        block = values[po[s]:po[s + 1]].reshape(len(dts), len(gts))
        if dts and gts:
            np.testing.assert_allclose(block, _pycocotools_oks(gts, dts, 17, COCO_SIGMAS), rtol=1e-13, atol=1e-15)
        else:
            assert block.size == 0


def test_nan_prediction_point_contributes_zero():
    # a FiftyOne "not predicted" point: OKS is the mean with that point's term 0 (not NaN)
    gt = np.array([[[0.0, 0.0], [10.0, 10.0]]])
    pred = np.array([[[0.0, 0.0], [np.nan, np.nan]]])
    assert oks(pred, gt, [100.0], sigmas=[0.1, 0.1]).tolist() == [[0.5]]
    # and without labeled gt points, also 0 (not "inside the box")
    got = oks(pred, gt, [100.0], np.zeros((1, 2)), boxes2=[[0, 0, 10, 10]], sigmas=[0.1, 0.1])
    assert got.tolist() == [[0.5]]


def test_bad_input_is_a_clear_error():
    gt = np.zeros((1, 17, 2))
    with pytest.raises(ValueError, match="17"):
        resolve_sigmas(None, 14)
    with pytest.raises(ValueError, match="areas2"):
        oks(gt, gt, [np.nan])
    # no labeled keypoint and no box: nothing to compare, OKS 0 (not an error, not NaN)
    assert oks(gt, gt, [1.0], np.zeros((1, 17))).tolist() == [[0.0]]
    with pytest.raises(ValueError, match="boxes2 has 2 rows"):
        oks(gt, gt, [1.0], boxes2=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="keypoints per object"):
        oks(np.zeros((1, 14, 2)), gt, [1.0])
    with pytest.raises(ValueError, match="sigmas has 3"):
        oks(gt, gt, [1.0], sigmas=[0.1, 0.1, 0.1])
    assert oks(np.zeros((0, 17, 2)), gt, [1.0]).shape == (0, 1)


def test_helpers():
    # pycocotools loadRes gives a keypoint result the box of all its points
    pts = np.array([[[3.0, 4.0], [1.0, 9.0], [np.nan, np.nan]]])
    assert extent_boxes(pts).tolist() == [[1.0, 4.0, 3.0, 9.0]]
    assert box_areas([[0, 0, 2, 3]], 0.53).tolist() == [pytest.approx(3.18)]
    assert flip_order(((0, 1), (2, 3)), 5).tolist() == [1, 0, 3, 2, 4]
    # keypoint_similarity's terms average to OKS when every point is labeled
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 50, (3, 17, 2)), rng.uniform(0, 50, (3, 17, 2))
    sim = keypoint_similarity(a, b, [500.0] * 3, np.ones((3, 17), bool))
    np.testing.assert_allclose(sim.mean(axis=1), np.diag(oks(a, b, [500.0] * 3)), rtol=1e-12)
