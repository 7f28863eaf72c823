"""COCO's 12 summary numbers end to end: iou_audit vs pycocotools vs faster-coco-eval, same data.

All three do the full ``COCOeval`` work: 10 IoU thresholds x 4 area ranges (all/small/medium/large)
x maxDets 1/10/100, then ``summarize``'s 12 stats (AP, AP50, AP75, AP s/m/l, AR1/10/100, AR s/m/l):

- ours: ``geometry.boxes.batched_box_iou`` + ``matching.coco_evaluate(..., max_dets=(1, 10, 100),
  dt_area=, gt_area=).stats`` on flat arrays;
- pycocotools: ``COCOeval(...).evaluate(); accumulate(); summarize()``;
- faster-coco-eval: ``COCOeval_faster(...)`` likewise (C++).

Same synthetic data as ``bench_matching.py`` (640 x 480 images, jittered copies of the ground
truth plus background boxes, tied scores, 1% crowds). Loading into each library is not timed. The
script checks that our stats and precision array equal pycocotools' before printing medians over
interleaved rounds and ratios.

    python bench/bench_coco_stats.py            # 2,000 images x 20 ground truths x 25 detections
    python bench/bench_coco_stats.py --quick    # 300 images
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_matching import load_reference, make_data, to_coco  # noqa: E402

from iou_audit.geometry.boxes import batched_box_iou  # noqa: E402
from iou_audit.matching import coco_evaluate  # noqa: E402


def box_area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def ours(d):
    values, po = batched_box_iou(d["dt"], d["dt_off"], d["gt"], d["gt_off"], crowd2=d["crowd"])
    r = coco_evaluate(values, po, d["dt_off"], d["gt_off"], d["scores"], d["dt_cat"], d["gt_cat"],
                      gt_crowd=d["crowd"], categories=np.arange(1, d["n_cats"] + 1), max_dets=(1, 10, 100),
                      dt_area=box_area(d["dt"]), gt_area=box_area(d["gt"]))
    return r.stats, r.eval_precision


def reference(evaluator, gt, dt):
    ev = evaluator(gt, dt, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats), np.asarray(ev.eval["precision"])


def contenders(d) -> dict:
    """name -> callable returning (stats, precision); each library's structures loaded here, untimed."""
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, dts = to_coco(d)  # ground-truth "area" is the box area, as loadRes gives detections
    loaded = {name: load_reference(coco, dataset, dts) for name, coco in (("py", COCO), ("fce", FCOCO))}
    return {"iou_audit": lambda: ours(d),
            "pycocotools": lambda: reference(COCOeval, *loaded["py"]),
            "faster-coco-eval": lambda: reference(COCOeval_faster, *loaded["fce"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="images (20 gt, 25 detections, 10 categories)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--quick", action="store_true", help="300 images, 2 rounds")
    args = parser.parse_args()
    n_images, rounds = (300, 2) if args.quick else (args.images, args.rounds)
    d = make_data(n_images, 20, 25, 10)
    runs = contenders(d)
    runs["iou_audit"]()  # compile the numba kernels outside the timings
    times = {name: [] for name in runs}
    results = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    for ours_part, theirs_part in zip(results["iou_audit"], results["pycocotools"]):
        np.testing.assert_array_equal(ours_part, theirs_part)
    fce_diff = float(np.abs(results["iou_audit"][0] - results["faster-coco-eval"][0]).max())

    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"COCO bbox summarize (12 stats: 10 IoU thresholds x 4 area ranges x maxDets 1/10/100), "
          f"{n_images} images x 20 gt x 25 detections, 10 categories; median of {rounds} interleaved rounds")
    print(f"AP = {results['iou_audit'][0][0]:.6f}; stats and precision identical to pycocotools; "
          f"max |stats diff| to faster-coco-eval {fce_diff:.2e}")
    for name in runs:
        print(f"  {name:<17} {med[name]:8.3f} s   ours is {med[name] / med['iou_audit']:6.1f}x faster")


if __name__ == "__main__":
    main()
