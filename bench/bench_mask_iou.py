"""Cropped-mask IoU: iou_audit vs pycocotools (encode + iou) vs FiftyOne's compute_ious(use_masks=True).

Every method gets the same objects: per image, N predictions and N ground-truth objects with
FiftyOne-style masks (each cropped to its pixel-aligned box, clustered so many boxes overlap).
- iou_audit: ``cropped_mask_iou`` straight from the cropped masks and relative boxes (all its work
  is timed: placement, area counts, overlap counting).
- pycocotools: what a pycocotools user does: the masks already pasted on full (H, W, N) Fortran-order
  canvases (built untimed, in its favour), then ``mask.encode`` + ``mask.iou`` timed.
- FiftyOne: ``fiftyone.utils.iou.compute_ious(preds, gts, use_masks=True, tolerance=None)`` on
  ``fo.Detection`` lists (its dense-pixel mode).
Each round times every method once on the same batch of images, in a rotating order; the medians
of the rounds are reported with ratios. All three must agree (checked before timing).

    python bench/bench_mask_iou.py            # sizes 64..512, 20 x 20 objects per image
    python bench/bench_mask_iou.py --quick    # small sizes, few rounds: checks that it runs
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def make_image(rng, width, height, n):
    """n objects: integer pixel boxes clustered around a centre, ellipse/noise masks cropped to them."""
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    boxes, masks = [], []
    for k in range(n):
        w = int(rng.integers(max(2, width // 12), max(3, width // 3)))
        h = int(rng.integers(max(2, height // 12), max(3, height // 3)))
        x = int(np.clip(cx + rng.normal(0, width / 6) - w / 2, 0, width - w))
        y = int(np.clip(cy + rng.normal(0, height / 6) - h / 2, 0, height - h))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
        if k % 2:
            mask &= rng.random((h, w)) < 0.8
        boxes.append((x, y, w, h))
        masks.append(mask)
    return boxes, masks


def relative_xyxy(boxes, width, height):
    return np.array([[x / width, y / height, (x + w) / width, (y + h) / height]
                     for x, y, w, h in boxes], dtype=np.float64)


def canvases(boxes, masks, width, height):
    full = np.zeros((height, width, len(boxes)), dtype=np.uint8, order="F")
    for k, ((x, y, w, h), m) in enumerate(zip(boxes, masks)):
        full[y:y + h, x:x + w, k] = m
    return full


def build(rng, width, height, n, n_images):
    import fiftyone as fo

    images = []
    for _ in range(n_images):
        pb, pm = make_image(rng, width, height, n)
        gb, gm = make_image(rng, width, height, n)
        images.append({
            "ours": (pm, relative_xyxy(pb, width, height), gm, relative_xyxy(gb, width, height)),
            "coco": (canvases(pb, pm, width, height), canvases(gb, gm, width, height)),
            "fo": ([fo.Detection(label="a", bounding_box=[x / width, y / height, w / width, h / height],
                                 mask=m) for (x, y, w, h), m in zip(pb, pm)],
                   [fo.Detection(label="a", bounding_box=[x / width, y / height, w / width, h / height],
                                 mask=m) for (x, y, w, h), m in zip(gb, gm)]),
        })
    return images


def run_ours(images, size):
    from iou_audit.geometry.masks import cropped_mask_iou

    return [cropped_mask_iou(pm, pb, gm, gb, size) for pm, pb, gm, gb in (im["ours"] for im in images)]


def run_coco(images, size):
    from pycocotools import mask as mask_utils

    out = []
    for pred_full, gt_full in (im["coco"] for im in images):
        pr, gr = mask_utils.encode(pred_full), mask_utils.encode(gt_full)
        out.append(np.asarray(mask_utils.iou(pr, gr, np.zeros(len(gr), np.uint8))))
    return out


def run_fo(images, size):
    import fiftyone.utils.iou as foui

    return [foui.compute_ious(p, g, use_masks=True, tolerance=None) for p, g in (im["fo"] for im in images)]


METHODS = {"iou_audit": run_ours, "pycocotools": run_coco, "fiftyone": run_fo}


def bench_size(width, height, n, n_images, rounds, fo_images, seed):
    rng = np.random.default_rng(seed)
    images = build(rng, width, height, n, n_images)
    size = (width, height)
    ref = run_coco(images, size)
    for name, fn in METHODS.items():  # agreement first (and numba compilation out of the timings)
        subset = images[:fo_images] if name == "fiftyone" else images
        for a, b in zip(fn(subset, size), ref):
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
    times = {name: [] for name in METHODS}
    for r in range(rounds):
        names = list(METHODS)
        names = names[r % 3:] + names[:r % 3]
        for name in names:
            # FiftyOne is timed on a subsample of the images and scaled to the full batch.
            subset = images[:fo_images] if name == "fiftyone" else images
            t0 = time.perf_counter()
            METHODS[name](subset, size)
            times[name].append((time.perf_counter() - t0) * len(images) / len(subset))
    med = {name: statistics.median(t) for name, t in times.items()}
    per_image_ms = {name: 1e3 * t / n_images for name, t in med.items()}
    pairs = sum(int((r > 0).sum()) for r in ref)
    print(f"{width}x{height}  {n}x{n} masks/image  {n_images} images ({pairs} overlapping pairs)  "
          f"median ms/image: iou_audit {per_image_ms['iou_audit']:.3f}  pycocotools "
          f"{per_image_ms['pycocotools']:.3f}  fiftyone {per_image_ms['fiftyone']:.1f} "
          f"(on {fo_images} images, scaled)  ->  x{med['pycocotools'] / med['iou_audit']:.1f} vs "
          f"pycocotools, x{med['fiftyone'] / med['iou_audit']:.0f} vs fiftyone", flush=True)
    return med


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    parser.add_argument("--objects", type=int, default=20, help="predictions and ground truths per image")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, n_images, rounds, fo_images = [(64, 64), (128, 96)], 10, 3, 2
    else:
        sizes, n_images, rounds, fo_images = [(64, 64), (128, 128), (256, 256), (512, 512)], 50, 7, 3
    print(f"cropped-mask IoU, medians of {rounds} interleaved rounds (targets: >= 2x pycocotools "
          f"encode+iou, >= 50x FiftyOne compute_ious(use_masks=True, tolerance=None))")
    for k, (w, h) in enumerate(sizes):
        bench_size(w, h, args.objects, n_images, rounds, fo_images, seed=k)


if __name__ == "__main__":
    main()
