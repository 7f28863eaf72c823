"""Batched box IoU over a whole dataset vs per-image loops of the existing libraries.

Dataset: N images, each with B predictions x B ground-truth boxes (relative xyxy, random). Every
contender computes the same (B x B) IoU matrix of every image:
- ours, batches: ``iou_audit.geometry.boxes.batched_box_iou`` on consecutive batches of
  ``--batch-images`` images (default 1,000), the way the audits read a dataset
  (``iter_label_tables``: memory bounded by the batch);
- ours, one call: the same function once over all N images. Its 8 * N * B * B bytes of output
  (320 MB at full size) are fresh memory, and first-touching it (page faults) costs more than the
  IoU arithmetic and varies several-fold with the machine's load;
- numpy loop: the numpy broadcast formula (``bench/numpy_box_iou.py``, what ``box_iou`` was
  before it called the compiled kernels) in a per-image Python loop (the vectorized-numpy baseline);
- box_iou loop: our per-image ``box_iou`` (one compiled call per image) in a Python loop;
- pycocotools loop: ``pycocotools.mask.iou`` on xywh boxes, image by image;
- faster-coco-eval loop: ``faster_coco_eval.core.mask.iou``, image by image;
- FiftyOne: ``fiftyone.utils.iou.compute_ious`` on Detection lists, timed on a subsample of
  images and extrapolated linearly to N (stated in the output).
Inputs are prepared outside the timers for every contender (xywh copies for the COCO libraries,
Detection objects for FiftyOne), so only the IoU computation is timed. Rounds are interleaved
(each round times every contender once) and medians are reported.

Run: python bench/bench_box_iou.py            (100,000 images x 20 x 20, about 1-3 minutes)
     python bench/bench_box_iou.py --quick    (small sizes, seconds)
Targets (issue 2): >= 40x the numpy loop, >= 6x the faster-coco-eval loop.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_box_iou import numpy_box_iou  # noqa: E402

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def make_data(n_images: int, n_boxes: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def boxes(n):
        xy = rng.uniform(0, 0.9, (n, 2))
        wh = rng.uniform(0.01, 0.3, (n, 2))
        return np.c_[xy, np.minimum(xy + wh, 1.0)]

    offsets = np.arange(n_images + 1, dtype=np.int64) * n_boxes
    return boxes(n_images * n_boxes), offsets, boxes(n_images * n_boxes), offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes", type=int, default=20, help="boxes per image per side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-images", type=int, default=1_000,
                        help="images per batched_box_iou call in the batched contender")
    parser.add_argument("--fo-images", type=int, default=500,
                        help="images timed for FiftyOne compute_ious (extrapolated)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds, args.fo_images = 2_000, 3, 50

    from faster_coco_eval.core import mask as fce_mask
    from fiftyone.core.labels import Detection
    from fiftyone.utils.iou import compute_ious
    from pycocotools import mask as coco_mask

    from iou_audit.geometry.boxes import batched_box_iou, box_iou

    b1, o1, b2, o2 = make_data(args.images, args.boxes)
    n, s = args.images, args.boxes
    pairs = n * s * s
    x1 = np.c_[b1[:, :2], b1[:, 2:] - b1[:, :2]]  # xywh for the COCO libraries
    x2 = np.c_[b2[:, :2], b2[:, 2:] - b2[:, :2]]
    no_crowd = [0] * s
    fo_n = min(args.fo_images, n)
    dets1 = [[Detection(label="a", bounding_box=list(r)) for r in x1[o1[i]:o1[i + 1]]]
             for i in range(fo_n)]
    dets2 = [[Detection(label="a", bounding_box=list(r)) for r in x2[o2[i]:o2[i + 1]]]
             for i in range(fo_n)]

    # Same numbers from everyone (checked once on a few images, outside the timers).
    values, po = batched_box_iou(b1, o1, b2, o2)
    for i in range(min(n, 20)):
        ours = values[po[i]:po[i + 1]].reshape(s, s)
        sl1, sl2 = slice(o1[i], o1[i + 1]), slice(o2[i], o2[i + 1])
        np.testing.assert_allclose(ours, coco_mask.iou(x1[sl1], x2[sl2], no_crowd), atol=1e-12)
        np.testing.assert_allclose(ours, fce_mask.iou(x1[sl1], x2[sl2], no_crowd), atol=1e-12)
        np.testing.assert_allclose(ours, box_iou(b1[sl1], b2[sl2]), atol=1e-12)
        np.testing.assert_allclose(ours, numpy_box_iou(b1[sl1], b2[sl2]), atol=1e-12)
        if i < fo_n:
            np.testing.assert_allclose(ours, compute_ious(dets1[i], dets2[i]), atol=1e-9)
    del values

    def ours():
        batched_box_iou(b1, o1, b2, o2)

    starts = list(range(0, n, args.batch_images)) + [n]

    def ours_batches():
        for a, b in zip(starts[:-1], starts[1:]):
            batched_box_iou(b1[o1[a]:o1[b]], o1[a:b + 1] - o1[a], b2[o2[a]:o2[b]],
                            o2[a:b + 1] - o2[a])

    def numpy_loop():
        for i in range(n):
            numpy_box_iou(b1[o1[i]:o1[i + 1]], b2[o2[i]:o2[i + 1]])

    def box_iou_loop():
        for i in range(n):
            box_iou(b1[o1[i]:o1[i + 1]], b2[o2[i]:o2[i + 1]])

    def pycocotools_loop():
        for i in range(n):
            coco_mask.iou(x1[o1[i]:o1[i + 1]], x2[o2[i]:o2[i + 1]], no_crowd)

    def fce_loop():
        for i in range(n):
            fce_mask.iou(x1[o1[i]:o1[i + 1]], x2[o2[i]:o2[i + 1]], no_crowd)

    def fiftyone_subsample():
        for i in range(fo_n):
            compute_ious(dets1[i], dets2[i])

    ours_name = f"iou_audit batched_box_iou, {args.batch_images:,}-image batches"
    contenders = {
        ours_name: (ours_batches, 1.0),
        "iou_audit batched_box_iou, one call": (ours, 1.0),
        "numpy per-image loop (broadcast formula)": (numpy_loop, 1.0),
        "iou_audit box_iou per-image loop": (box_iou_loop, 1.0),
        "pycocotools per-image loop": (pycocotools_loop, 1.0),
        "faster-coco-eval per-image loop": (fce_loop, 1.0),
        f"fiftyone compute_ious (x{n / fo_n:g} from {fo_n} images)": (fiftyone_subsample,
                                                                      n / fo_n),
    }
    ours_batches()  # warm-up: numba's cached machine code is loaded on the first call
    # Wall time and this process's CPU time: on a shared machine (here 2 cores for many users)
    # wall time also measures everyone else's load; every contender is single-threaded, so CPU
    # time compares the work itself.
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (fn, factor) in contenders.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - w0) * factor)
            cpu[name].append((time.process_time() - c0) * factor)

    print(f"{n:,} images x ({s} x {s}) boxes = {pairs:,} pairs; median of {args.rounds} "
          f"interleaved rounds")
    for title, times in (("wall", wall), ("cpu", cpu)):
        med = {name: float(np.median(t)) for name, t in times.items()}
        base = med[ours_name]
        print(f"\n{title + ' time':58s} {'seconds':>9s} {'ns/pair':>8s} {'x ours':>8s}")
        for name, t in med.items():
            print(f"{name:58s} {t:9.3f} {t / pairs * 1e9:8.2f} {t / base:8.1f}")
        ratio_np = med["numpy per-image loop (broadcast formula)"] / base
        ratio_fce = med["faster-coco-eval per-image loop"] / base
        print(f"target >= 40x numpy loop ({title}): {ratio_np:.1f}x "
              f"({'met' if ratio_np >= 40 else 'MISSED'})")
        print(f"target >= 6x faster-coco-eval loop ({title}): {ratio_fce:.1f}x "
              f"({'met' if ratio_fce >= 6 else 'MISSED'})")


if __name__ == "__main__":
    main()
