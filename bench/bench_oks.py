"""Batched OKS over a dataset vs the per-image loops of pycocotools, faster-coco-eval and FiftyOne.

Dataset: N images, each with G ground-truth persons (17 COCO keypoints, ~30 % unlabeled, a few
persons without labeled keypoints) and D predictions near them. Every contender computes the same
(D x G) OKS matrix of every image with COCO's sigmas:
- ours: ``iou_audit.geometry.keypoints.batched_oks`` on consecutive batches of 1,000 images;
- pycocotools: ``COCOeval.computeOks(img, cat)`` image by image (its own per-image loop);
- faster-coco-eval: ``COCOeval_faster.computeOks`` image by image;
- FiftyOne: ``fiftyone.utils.iou.compute_ious`` on Keypoint lists (its OKS: relative
  coordinates and its own area, so different values; timed only), on a subsample of images and
  extrapolated linearly (stated in the output).
Inputs are prepared outside the timers (COCO objects and their index, Keypoint objects). Rounds
are interleaved and medians reported; the largest difference from pycocotools is printed.

Run: python bench/bench_oks.py            (20,000 images x 12 predictions x 10 persons)
     python bench/bench_oks.py --quick
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
K = 17


def make_data(n_images: int, n_gt: int, n_dt: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for img in range(1, n_images + 1):
        for j in range(n_gt):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(20, 200, 2)
            pts = np.stack([rng.uniform(x, x + w, K), rng.uniform(y, y + h, K)], axis=1)
            v = rng.choice([1, 2], K)
            v[rng.random(K) < 0.3] = 0
            if rng.random() < 0.05:
                v[:] = 0
            kp = np.concatenate([np.where(v[:, None] > 0, pts, 0), v[:, None]], axis=1)
            gts.append({"id": len(gts) + 1, "image_id": img, "category_id": 1, "iscrowd": 0,
                        "bbox": [x, y, w, h], "area": w * h * 0.6, "keypoints": kp.reshape(-1).tolist(),
                        "num_keypoints": int((v > 0).sum())})
        base = gts[-n_gt:]
        for i in range(n_dt):
            g = np.reshape(base[i % n_gt]["keypoints"], (K, 3))[:, :2]
            pts = g + rng.normal(0, 8, (K, 2))
            dts.append({"image_id": img, "category_id": 1, "score": float(1 - i / (n_dt + 1)),
                        "keypoints": np.concatenate([pts, np.ones((K, 1))], axis=1).reshape(-1).tolist()})
    return gts, dts


def ours_inputs(gts, dts, n_images, n_gt, n_dt):
    g = np.array([a["keypoints"] for a in gts]).reshape(-1, K, 3)
    d = np.array([a["keypoints"] for a in dts]).reshape(-1, K, 3)
    boxes = np.array([a["bbox"] for a in gts], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    return (d[..., :2].copy(), np.arange(n_images + 1) * n_dt, g[..., :2].copy(), np.arange(n_images + 1) * n_gt,
            np.array([a["area"] for a in gts]), g[..., 2].copy(), boxes)


def run_ours(inputs, n_images, n_gt, n_dt, batch=1000):
    from iou_audit.geometry.keypoints import batched_oks

    p1, o1, p2, o2, areas, vis, boxes = inputs
    out = []
    for s in range(0, n_images, batch):
        e = min(s + batch, n_images)
        a1, b1, a2, b2 = s * n_dt, e * n_dt, s * n_gt, e * n_gt
        out.append(batched_oks(p1[a1:b1], o1[s:e + 1] - a1, p2[a2:b2], o2[s:e + 1] - a2, areas[a2:b2],
                               vis[a2:b2], boxes[a2:b2])[0])
    return np.concatenate(out)


def coco_eval(lib, gts, dts, n_images):
    if lib == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in range(1, n_images + 1)],
                  "categories": [{"id": 1, "name": "person"}], "annotations": gts}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = Eval(gt, gt.loadRes([dict(d) for d in dts]), "keypoints")
        ev.params.imgIds = list(range(1, n_images + 1))
        ev._prepare()
    return ev


def run_coco(ev, n_images):
    return [ev.computeOks(i, 1) for i in range(1, n_images + 1)]


def fo_inputs(gts, dts, n_images, n_gt, n_dt, size=640.0):
    import fiftyone as fo

    def kp(a):
        k = np.reshape(a["keypoints"], (K, 3))
        return fo.Keypoint(label="person", points=[(x / size, y / size) if v > 0 else (np.nan, np.nan)
                                                   for x, y, v in k])
    return [([kp(d) for d in dts[i * n_dt:(i + 1) * n_dt]], [kp(g) for g in gts[i * n_gt:(i + 1) * n_gt]])
            for i in range(n_images)]


def run_fo(pairs):
    import warnings

    from fiftyone.utils.iou import compute_ious

    with warnings.catch_warnings():  # its "All-NaN slice" warning on persons without labeled points
        warnings.simplefilter("ignore", RuntimeWarning)
        return [compute_ious(p, g) for p, g in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--gt", type=int, default=10)
    parser.add_argument("--dt", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fo-images", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds, args.fo_images = 500, 2, 50
    n, g, d = args.images, args.gt, args.dt
    gts, dts = make_data(n, g, d)
    inputs = ours_inputs(gts, dts, n, g, d)
    evs = {lib: coco_eval(lib, gts, dts, n) for lib in ("pycocotools", "faster-coco-eval")}
    fo_n = min(args.fo_images, n)
    fo_pairs = fo_inputs(gts, dts, fo_n, g, d)
    run_ours(inputs, min(n, 10), g, d)  # compile outside the timers

    times: dict[str, list] = {"ours": [], "pycocotools": [], "faster-coco-eval": [], "FiftyOne": []}
    for _ in range(args.rounds):
        t = time.perf_counter(); ours = run_ours(inputs, n, g, d); times["ours"].append(time.perf_counter() - t)
        for lib, ev in evs.items():
            t = time.perf_counter(); ref = run_coco(ev, n); times[lib].append(time.perf_counter() - t)
            if lib == "pycocotools":
                # pycocotools' rows are by descending score: here the input order (scores decrease)
                diff = float(np.max(np.abs(ours - np.concatenate([np.asarray(m).reshape(-1) for m in ref]))))
        t = time.perf_counter(); run_fo(fo_pairs); times["FiftyOne"].append((time.perf_counter() - t) * n / fo_n)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{n} images x {d} predictions x {g} persons x {K} keypoints; median of {args.rounds} rounds")
    print(f"max |ours - pycocotools| = {diff:.2e}")
    for k, v in med.items():
        extra = f" (extrapolated from {fo_n} images)" if k == "FiftyOne" else ""
        ratio = "" if k == "ours" else f"  {v / med['ours']:.1f}x ours"
        print(f"{k:<17} {v:8.3f} s{ratio}{extra}")


if __name__ == "__main__":
    main()
