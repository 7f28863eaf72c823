"""COCO bbox evaluation end to end: iou_audit vs pycocotools vs faster-coco-eval, same data, same run.

Each contender computes every same-image box IoU (crowd IoU for crowd ground truth), matches
greedily per image and category at the ten IoU thresholds 0.50:0.95 and accumulates 101-point
precision; all are restricted to COCO's ``area=all, maxDets=100`` so they do the same work:

- ours: ``geometry.boxes.batched_box_iou`` + ``matching.coco_evaluate`` on flat arrays;
- pycocotools: ``COCOeval(...).evaluate(); accumulate()``;
- faster-coco-eval: ``COCOeval_faster(...).evaluate(); accumulate()`` (C++).

Loading the annotations into each library's own structures is not timed. The script checks that
the three precision arrays agree before printing medians over interleaved rounds and ratios.
Data: random boxes on 640 x 480 images, detections are jittered copies of ground truth plus
background boxes, scores rounded to 3 decimals (ties), 1% crowd ground truth.

    python bench/bench_matching.py            # 5,000 images x 20 ground truths x 25 detections
    python bench/bench_matching.py --quick    # 300 images
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import numpy as np

from iou_audit.geometry.boxes import batched_box_iou
from iou_audit.matching import coco_evaluate

W, H = 640.0, 480.0


def make_data(n_images: int, n_gt: int, n_dt: int, n_cats: int, seed: int = 0):
    """Flat arrays (our layout, images in id order) for n_images images."""
    rng = np.random.default_rng(seed)
    g_xy = rng.uniform(0, [W - 40, H - 40], (n_images, n_gt, 2))
    g_wh = rng.uniform(8, 200, (n_images, n_gt, 2))
    g_wh = np.minimum(g_wh, np.array([W, H]) - g_xy)
    gt = np.concatenate([g_xy, g_xy + g_wh], axis=2).reshape(-1, 4)
    gt_cat = rng.integers(1, n_cats + 1, n_images * n_gt)
    crowd = rng.random(n_images * n_gt) < 0.01
    n_copy = min(n_dt, n_gt)
    src = gt.reshape(n_images, n_gt, 4)[:, :n_copy]
    jitter = rng.normal(0, 0.08, src.shape) * np.repeat(src[..., 2:] - src[..., :2], 2, axis=2)
    copies = np.clip(src + jitter, 0, [W, H, W, H])
    copies[..., 2:] = np.maximum(copies[..., 2:], copies[..., :2] + 1)
    b_xy = rng.uniform(0, [W - 40, H - 40], (n_images, n_dt - n_copy, 2))
    background = np.concatenate([b_xy, b_xy + rng.uniform(8, 150, b_xy.shape)], axis=2)
    dt = np.concatenate([copies, background], axis=1).reshape(-1, 4)
    dt_cat = np.concatenate([gt_cat.reshape(n_images, n_gt)[:, :n_copy],
                             rng.integers(1, n_cats + 1, (n_images, n_dt - n_copy))], axis=1)
    # a tenth of the copies get a wrong class (false positives of another category)
    flip = rng.random(dt_cat.shape) < 0.1
    dt_cat = np.where(flip, rng.integers(1, n_cats + 1, dt_cat.shape), dt_cat).reshape(-1)
    scores = np.round(rng.random(n_images * n_dt), 3)
    return dict(gt=gt, gt_cat=gt_cat, crowd=crowd, dt=dt, dt_cat=dt_cat, scores=scores,
                gt_off=np.arange(n_images + 1) * n_gt, dt_off=np.arange(n_images + 1) * n_dt,
                n_images=n_images, n_gt=n_gt, n_dt=n_dt, n_cats=n_cats)


def to_coco(d):
    """COCO-format dicts (xywh pixels) for the two reference libraries."""
    def xywh(b):
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1).tolist()
    img_gt = np.repeat(np.arange(1, d["n_images"] + 1), d["n_gt"])
    img_dt = np.repeat(np.arange(1, d["n_images"] + 1), d["n_dt"])
    g = xywh(d["gt"])
    gts = [dict(id=i + 1, image_id=int(img_gt[i]), category_id=int(d["gt_cat"][i]), bbox=g[i],
                area=g[i][2] * g[i][3], iscrowd=int(d["crowd"][i])) for i in range(len(g))]
    t = xywh(d["dt"])
    dts = [dict(image_id=int(img_dt[i]), category_id=int(d["dt_cat"][i]), bbox=t[i],
                score=float(d["scores"][i])) for i in range(len(t))]
    dataset = dict(images=[dict(id=i, width=W, height=H) for i in range(1, d["n_images"] + 1)],
                   annotations=gts, categories=[dict(id=c) for c in range(1, d["n_cats"] + 1)])
    return dataset, dts


def ours(d):
    values, po = batched_box_iou(d["dt"], d["dt_off"], d["gt"], d["gt_off"], crowd2=d["crowd"])
    r = coco_evaluate(values, po, d["dt_off"], d["gt_off"], d["scores"], d["dt_cat"], d["gt_cat"],
                      gt_crowd=d["crowd"], categories=np.arange(1, d["n_cats"] + 1))
    return r.precision


def load_reference(module_coco, dataset, dts):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = module_coco()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([dict(x) for x in dts])
    return gt, dt


def reference(evaluator, gt, dt):
    ev = evaluator(gt, dt, "bbox")
    ev.params.areaRng, ev.params.areaRngLbl, ev.params.maxDets = [[0, 1e10]], ["all"], [100]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"])[:, :, :, 0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--gt", type=int, default=20, help="ground truths per image")
    parser.add_argument("--dt", type=int, default=25, help="detections per image")
    parser.add_argument("--cats", type=int, default=10, help="categories")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--quick", action="store_true", help="300 images, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 300, 2

    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    d = make_data(args.images, args.gt, args.dt, args.cats)
    dataset, dts = to_coco(d)
    py_gt, py_dt = load_reference(COCO, dataset, dts)
    f_gt, f_dt = load_reference(FCOCO, dataset, dts)
    ours(d)  # compile the numba kernels outside the timings

    runs = {"iou_audit": lambda: ours(d),
            "pycocotools": lambda: reference(COCOeval, py_gt, py_dt),
            "faster-coco-eval": lambda: reference(COCOeval_faster, f_gt, f_dt)}
    times = {k: [] for k in runs}
    results = {}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    np.testing.assert_array_equal(results["iou_audit"], results["pycocotools"])
    fce_diff = float(np.abs(results["iou_audit"] - results["faster-coco-eval"]).max())

    med = {k: statistics.median(v) for k, v in times.items()}
    valid = results["iou_audit"][results["iou_audit"] > -1]
    print(f"COCO bbox evaluation, {args.images} images x {args.gt} gt x {args.dt} detections, "
          f"{args.cats} categories, 10 IoU thresholds (area all, maxDets 100); "
          f"median of {args.rounds} interleaved rounds")
    print(f"AP = {valid.mean():.6f}; precision identical to pycocotools; max |diff| to "
          f"faster-coco-eval {fce_diff:.2e}")
    for name in runs:
        print(f"  {name:<17} {med[name]:8.3f} s   ours is {med[name] / med['iou_audit']:6.1f}x faster")


if __name__ == "__main__":
    main()
