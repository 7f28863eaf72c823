"""COCO keypoint evaluation (greedy COCO matching on OKS) against independent references:

- the published faster-coco-eval result on ../shared/data/crowdpose-example (iouType
  "keypoints_crowd", use_area=False, CrowdPose sigmas; values from its own test, quoted in
  shared/data/README.md);
- pycocotools ``COCOeval(iouType="keypoints")`` on random COCO-style cases (all 10 stats and the
  per-image matches), including unlabeled and crowd ground truths and more than 20 detections.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.geometry.keypoints import COCO_SIGMAS, CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS, box_areas
from iou_audit.matching.keypoints import KEYPOINT_STAT_NAMES, keypoint_evaluate, keypoint_stats

sys.path.insert(0, str(Path(__file__).parent))
from test_geometry_keypoints import _random_case  # noqa: E402

CROWDPOSE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crowdpose-example"
# Published by faster-coco-eval's test on exactly these files (shared/data/README.md).
PUBLISHED = {"AP": 0.7877215935879303, "AP50": 0.9881188118811886, "AP75": 0.7314356435643564,
             "AR": 0.8222222222222223, "AR50": 1.0, "AR75": 0.7777777777777778}
PUBLISHED_BY_CROWD = {"easy": 1.0, "medium": 0.9802, "hard": 0.4116}  # rounded to 4 places there


def _crowdpose_arrays(image_ids=None):
    if not CROWDPOSE.is_dir():
        pytest.skip(f"{CROWDPOSE} is absent (shared/ is laid beside the checkout)")
    gt = json.loads((CROWDPOSE / "example_crowdpose_val.json").read_text())
    dts = json.loads((CROWDPOSE / "example_crowdpose_preds.json").read_text())
    ids = sorted(im["id"] for im in gt["images"] if image_ids is None or im["id"] in image_ids)
    g = [[a for a in gt["annotations"] if a["image_id"] == i] for i in ids]
    d = [[a for a in dts if a["image_id"] == i] for i in ids]
    def kp(anns):
        return np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), 14, 3)
    gk, dk = kp(sum(g, [])), kp(sum(d, []))
    boxes = np.array([a["bbox"] for a in sum(g, [])], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    off = lambda groups: np.concatenate([[0], np.cumsum([len(x) for x in groups])])  # noqa: E731
    return dict(dt_points=dk[..., :2], dt_offsets=off(d), dt_scores=[a["score"] for a in sum(d, [])],
                gt_points=gk[..., :2], gt_offsets=off(g), gt_visibility=gk[..., 2], gt_boxes=boxes,
                gt_areas=box_areas(boxes, CROWDPOSE_AREA_FACTOR),
                gt_crowd=[a["iscrowd"] for a in sum(g, [])], num_keypoints=[a["num_keypoints"] for a in sum(g, [])],
                crowd_index={im["id"]: im["crowdIndex"] for im in gt["images"]})


def _evaluate_crowdpose(arrays):
    args = {k: v for k, v in arrays.items() if k not in ("num_keypoints", "crowd_index")}
    return keypoint_evaluate(**args, sigmas=CROWDPOSE_SIGMAS, area_ranges=None)[0]


def test_crowdpose_published_numbers():
    arrays = _crowdpose_arrays()
    # COCO ignores ground truth with num_keypoints == 0; we derive it from the visibility flags.
    # CrowdPose's num_keypoints counts differently (12 where 14 flags are > 0) but is 0 exactly
    # where no flag is > 0, so the ignore rule is the same
    labeled = (arrays["gt_visibility"] > 0).sum(axis=1)
    assert ((labeled == 0) == (np.array(arrays["num_keypoints"]) == 0)).all() and (labeled == 0).sum() == 1
    stats = keypoint_stats(_evaluate_crowdpose(arrays))
    for name, want in PUBLISHED.items():
        assert stats[name] == pytest.approx(want, abs=1e-12), name


def test_crowdpose_published_by_crowd_index():
    # faster-coco-eval's easy/medium/hard: images by crowdIndex < 0.2, < 0.8, else; mean precision
    index = _crowdpose_arrays()["crowd_index"]
    groups = {"easy": [i for i, c in index.items() if c < 0.2], "medium": [i for i, c in index.items() if 0.2 <= c < 0.8],
              "hard": [i for i, c in index.items() if c >= 0.8]}
    for name, ids in groups.items():
        r = _evaluate_crowdpose(_crowdpose_arrays(set(ids)))
        assert round(float(np.mean(r.eval_precision)), 4) == PUBLISHED_BY_CROWD[name], name


def _pycocotools_eval(images):
    gt = COCO()
    anns, dts = [], []
    for img_id, (gts, dt) in enumerate(images, start=1):
        for a in gts:
            anns.append({**a, "image_id": img_id, "id": len(anns) + 1})
        dts += [{**d, "image_id": img_id} for d in dt]
    gt.dataset = {"images": [{"id": i} for i in range(1, len(images) + 1)],
                  "categories": [{"id": 1, "name": "person"}], "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dts), "keypoints")
        ev.evaluate(); ev.accumulate(); ev.summarize()
    return ev, anns


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_equal_pycocotools_cocoeval(seed):
    rng = np.random.default_rng(seed)
    images = []
    for s in range(8):
        gts, dts = _random_case(rng, 17, n_gt=int(rng.integers(1, 6)), n_dt=int(rng.integers(0, 26)), p_empty=0.15)
        for g in gts:  # areas spanning the small/medium/large split; a few crowds
            g["area"] = float(rng.choice([500.0, 3000.0, 20000.0]) * rng.uniform(0.5, 1.5))
            g["iscrowd"] = int(rng.random() < 0.1)
        images.append((gts, dts))
    ev, anns = _pycocotools_eval(images)
    gt_k = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64); boxes[:, 2:] += boxes[:, :2]
    dts = [d for _, dt in images for d in dt]
    dt_k = np.array([d["keypoints"] for d in dts], dtype=np.float64).reshape(-1, 17, 3)
    off = lambda k: np.concatenate([[0], np.cumsum([len(im[k]) for im in images])])  # noqa: E731
    r, _, _ = keypoint_evaluate(dt_k[..., :2], off(1), [d["score"] for d in dts], gt_k[..., :2], off(0),
                                [a["area"] for a in anns], gt_k[..., 2], boxes, COCO_SIGMAS,
                                gt_crowd=[a["iscrowd"] for a in anns])
    ours = keypoint_stats(r)
    assert list(ours) == list(KEYPOINT_STAT_NAMES)
    np.testing.assert_allclose(list(ours.values()), ev.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.eval_precision[..., 0], ev.eval["precision"][..., 0], atol=1e-12)
    # per-image TP count at OKS 0.5 in the "all" range, from pycocotools' evalImgs
    t = 0
    for s in range(len(images)):
        e = ev.evalImgs[s]  # catId 1, area "all", image s+1
        if e is None:
            continue
        tp = int(((e["dtMatches"][t] > 0) & ~e["dtIgnore"][t]).sum())
        assert r.tp[t, s] == tp, s
