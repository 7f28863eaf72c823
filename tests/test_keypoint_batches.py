"""The keypoint audits read their fields in batches (``batch_size`` samples at a time): the results
do not depend on the batch size.

Oracles: pycocotools' ``COCOeval(iouType="keypoints")`` on the labels as stored (random people
over 40 images, some images without labels or predictions, unlabeled points and ground truths
without labeled points), and the published CrowdPose AP, both reached with every batch size; the
findings, tables and written values of a run in small batches equal those of one read of
everything (same rows in the same order; per-keypoint means to 1e-12, their sums run per batch).
"""
from __future__ import annotations

import contextlib
import io

import fiftyone as fo
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.audits.keypoints import (
    audit_keypoint_agreement,
    audit_keypoint_duplicates,
    audit_keypoint_predictions,
)
from iou_audit.geometry.keypoints import COCO_SIGMAS

W, H, K = 640, 480, 17
N_IMAGES = 40
BATCHES = (1, 7, 40_000)  # one sample, several batches with a short last one, one read
STATS = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large")
PUBLISHED_AP = 0.7877215935879303


def _random_people(rng, n):
    """``n`` people: (n, K, 2) pixels and (n, K) COCO flags (0 unlabeled, 1 occluded, 2 visible)."""
    centre = rng.uniform([60, 60], [W - 60, H - 60], size=(n, 1, 2))
    pts = centre + rng.normal(0, rng.uniform(10, 50, size=(n, 1, 1)), size=(n, K, 2))
    vis = rng.choice([0, 1, 2], size=(n, K), p=[0.15, 0.25, 0.6])
    vis[rng.random(n) < 0.08] = 0  # some ground truths without any labeled point
    return np.clip(pts, 0, [W - 1, H - 1]), vis


@pytest.fixture(scope="module")
def random_people():
    """A dataset (``gt``, ``pred``, ``copy`` = gt with noise) and the COCO dicts of its gt and preds."""
    rng = np.random.default_rng(2026)
    ds = fo.Dataset()
    samples, images, anns, results = [], [], [], []
    for i in range(N_IMAGES):
        n_gt = int(rng.integers(0, 5)) if i % 9 else 0
        g_pts, g_vis = _random_people(rng, n_gt)
        gts, copies, preds = [], [], []
        for p, v in zip(g_pts, g_vis):
            lab = v > 0
            x0, y0 = (p[lab].min(0) if lab.any() else p.min(0)) - 5
            x1, y1 = (p[lab].max(0) if lab.any() else p.max(0)) + 5
            area = float((x1 - x0) * (y1 - y0))
            rel = [(float(x) / W, float(y) / H) if f else (float("nan"), float("nan")) for (x, y), f in zip(p, v)]
            box = [float(x0) / W, float(y0) / H, float(x1 - x0) / W, float(y1 - y0) / H]
            gts.append(fo.Keypoint(label="person", points=rel, visible=v.tolist(), area=area, bbox=box))
            noisy = [(x + rng.normal(0, 0.004), y + rng.normal(0, 0.004)) for x, y in rel]
            copies.append(fo.Keypoint(label="person", points=noisy, visible=v.tolist(), area=area, bbox=box))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": area,
                         "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                         "keypoints": np.column_stack([p, v]).reshape(-1).tolist(), "num_keypoints": int(lab.sum())})
            if rng.random() < 0.85:  # a prediction near this person
                preds.append(p + rng.normal(0, rng.uniform(1, 25), size=(K, 2)))
        for _ in range(int(rng.integers(0, 3)) if i % 11 else 0):  # spurious predictions
            preds.append(_random_people(rng, 1)[0][0])
        scores = rng.uniform(0.05, 1.0, size=len(preds))
        pred_labels = []
        for p, sc in zip(preds, scores):
            p = np.clip(p, 0, [W - 1, H - 1])
            pred_labels.append(fo.Keypoint(label="person", points=(p / [W, H]).tolist(), score=float(sc)))
            results.append({"image_id": i + 1, "category_id": 1, "score": float(sc),
                            "keypoints": np.column_stack([p, np.ones(K)]).reshape(-1).tolist()})
        images.append({"id": i + 1, "width": W, "height": H, "file_name": f"{i}.jpg"})
        samples.append(fo.Sample(filepath=f"/nonexistent/batches/{i}.jpg", metadata=fo.ImageMetadata(width=W, height=H),
                                 gt=fo.Keypoints(keypoints=gts), copy=fo.Keypoints(keypoints=copies),
                                 pred=fo.Keypoints(keypoints=pred_labels)))
    ds.add_samples(samples, progress=False)
    gt_json = {"images": images, "annotations": anns,
               "categories": [{"id": 1, "name": "person", "keypoints": [f"kp{k}" for k in range(K)]}]}
    yield ds, gt_json, results
    ds.delete()


def _cocoeval_stats(gt_json, results) -> dict:
    coco = COCO()
    coco.dataset = gt_json
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STATS, ev.stats))


def _same(a, b):
    """Two runs' findings (same rows, same order), metrics and tables."""
    pd.testing.assert_frame_equal(a.findings, b.findings)
    assert a.metrics.keys() == b.metrics.keys()
    for name, value in a.metrics.items():
        assert value == pytest.approx(b.metrics[name], rel=1e-12, abs=1e-12, nan_ok=True), name
    for name, table in a.tables.items():
        pd.testing.assert_frame_equal(table, b.tables[name], check_exact=False, rtol=1e-12, atol=1e-12)


def test_prediction_audit_in_batches_equals_pycocotools(random_people):
    ds, gt_json, results = random_people
    oracle = _cocoeval_stats(gt_json, results)
    runs = {}
    for size in BATCHES:
        r = audit_keypoint_predictions(ds, "pred", "gt", audit_key=f"kp_b{size}", score_attribute="score",
                                       area_attribute="area", box_attribute="bbox", batch_size=size)
        for name in STATS:
            assert r.metrics[name] == pytest.approx(oracle[name], abs=1e-12), (size, name)
        runs[size] = r
    assert len(runs[1].findings) > 20 and {"possible_missing", "possible_spurious"} <= set(runs[1].findings["kind"])
    for size in BATCHES[:-1]:
        _same(runs[size], runs[BATCHES[-1]])
        # what each run wrote on the labels: the same values
        for field in ("gt", "pred"):
            assert ds.values(f"{field}.keypoints.kp_b{size}_oks", unwind=True) == \
                ds.values(f"{field}.keypoints.kp_b{BATCHES[-1]}_oks", unwind=True)
            assert ds.values(f"{field}.keypoints.kp_b{size}_match_id", unwind=True) == \
                ds.values(f"{field}.keypoints.kp_b{BATCHES[-1]}_match_id", unwind=True)


def test_agreement_and_duplicates_in_batches_equal_one_read(random_people):
    ds = random_people[0]
    agree = {size: audit_keypoint_agreement(ds, ["gt", "copy", "pred"], area_attribute="area", box_attribute="bbox",
                                            batch_size=size, save=False) for size in BATCHES}
    assert len(agree[1].findings) > 20
    dup = {size: audit_keypoint_duplicates(ds, "pred", oks_thresh=0.5, batch_size=size, save=False)
           for size in BATCHES}
    for size in BATCHES[:-1]:
        _same(agree[size], agree[BATCHES[-1]])
        _same(dup[size], dup[BATCHES[-1]])


def test_crowdpose_published_ap_in_batches_of_one(shared_data):
    from iou_audit.demo_keypoints import crowdpose_params
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    try:
        r = audit_keypoint_predictions(ds, "predictions", "ground_truth", batch_size=1, save=False,
                                       **crowdpose_params())
        assert r.metrics["AP"] == pytest.approx(PUBLISHED_AP, abs=1e-12)
    finally:
        ds.delete()


def test_point_counts_are_checked_across_batches():
    """A label whose point count differs from an earlier batch's is the same clear error as in one
    read, also when the first batches hold no labels (they wait until K is known)."""
    def person(n):
        return fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1 + 0.01 * j, 0.2) for j in range(n)])])

    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/nonexistent/k{i}.jpg", metadata=fo.ImageMetadata(width=100, height=80),
                                  gt=g) for i, g in enumerate([None, person(3), person(3), person(2)])])
        for size in (1, 2, 10):
            with pytest.raises(ValueError, match="same number of points"):
                audit_keypoint_duplicates(ds, "gt", sigmas=(0.1, 0.1, 0.1), batch_size=size, save=False)
        ds.skip(3).set_values("gt", [person(3)])
        runs = [audit_keypoint_duplicates(ds, "gt", sigmas=(0.1, 0.1, 0.1), batch_size=size, save=False)
                for size in (1, 10)]
        assert runs[0].metrics == runs[1].metrics and runs[0].metrics["n_labels"] == 3
    finally:
        ds.delete()
