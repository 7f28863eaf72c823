"""One image, one large pair of box sets: ``iou_audit.box_iou`` vs a numpy broadcast.

Case: 1,000 predictions x 1,000 ground-truth boxes (relative xyxy, random) in one call, every
metric. Contenders, timed in the same run on the same boxes:
- ours: ``iou_audit.geometry.boxes.box_iou(b1, b2, metric)`` (one compiled call);
- numpy broadcast: ``bench/numpy_box_iou.numpy_box_iou``, the same formulas and conventions as
  (N, M) numpy broadcasts (what ``box_iou`` was before it called the compiled kernels);
- for IoU also: torchvision's ``box_iou`` formula in numpy (no degenerate handling),
  ``pycocotools.mask.iou`` and ``faster_coco_eval.core.mask.iou`` on xywh boxes.
Every contender's values are checked against ours first (outside the timers). Rounds are
interleaved (each round times every contender once); medians of wall and process CPU time are
reported (CPU time is the fairer number on a shared machine: everything here is one thread).
``--sweep`` also times ours vs the numpy broadcast from 1 x 1 up, to show where (if anywhere)
numpy's lower call overhead wins on tiny inputs.

Run: python bench/bench_box_iou_single.py            (1,000 x 1,000, 15 rounds, ~1 minute)
     python bench/bench_box_iou_single.py --sweep    (adds the size sweep)
     python bench/bench_box_iou_single.py --quick    (few rounds, to check it runs)
Target: ours >= 5x the numpy broadcast at 1,000 x 1,000 for IoU.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_box_iou import METRICS, numpy_box_iou, torchvision_style_iou  # noqa: E402


def make_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 0.9, (n, 2))
    wh = rng.uniform(0.01, 0.3, (n, 2))
    return np.c_[xy, np.minimum(xy + wh, 1.0)]


def timed(fn, rounds_wall: list, rounds_cpu: list) -> None:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    rounds_wall.append(time.perf_counter() - w0)
    rounds_cpu.append(time.process_time() - c0)


def run_rounds(contenders: dict, rounds: int) -> tuple[dict, dict]:
    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            timed(fn, wall[name], cpu[name])
    return ({k: float(np.median(v)) for k, v in wall.items()},
            {k: float(np.median(v)) for k, v in cpu.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000, help="boxes per side")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sweep", action="store_true", help="also time sizes 1 .. 1,000")
    parser.add_argument("--quick", action="store_true", help="few rounds, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3

    from iou_audit.geometry.boxes import box_iou

    rng = np.random.default_rng(0)
    n = args.n
    b1, b2 = make_boxes(rng, n), make_boxes(rng, n)
    x1 = np.c_[b1[:, :2], b1[:, 2:] - b1[:, :2]]  # xywh for the COCO libraries
    x2 = np.c_[b2[:, :2], b2[:, 2:] - b2[:, :2]]
    no_crowd = [0] * n
    extra = {"torchvision formula (numpy)": lambda: torchvision_style_iou(b1, b2)}
    try:
        from pycocotools import mask as coco_mask
        extra["pycocotools mask.iou"] = lambda: coco_mask.iou(x1, x2, no_crowd)
    except ImportError:
        print("pycocotools not installed: skipped")
    try:
        from faster_coco_eval.core import mask as fce_mask
        extra["faster-coco-eval mask.iou"] = lambda: fce_mask.iou(x1, x2, no_crowd)
    except ImportError:
        print("faster-coco-eval not installed: skipped")

    # same numbers from everyone (outside the timers); the first call also loads numba's cache
    for metric in METRICS:
        np.testing.assert_allclose(box_iou(b1, b2, metric), numpy_box_iou(b1, b2, metric),
                                   rtol=0, atol=1e-12)
    ref = box_iou(b1, b2)
    for name, fn in extra.items():
        np.testing.assert_allclose(np.asarray(fn()), ref, rtol=0, atol=1e-12, err_msg=name)

    print(f"one image, {n:,} x {n:,} boxes = {n * n:,} pairs per call; median of {args.rounds} "
          f"interleaved rounds; ratio = contender time / ours (higher: ours is faster)")
    verdicts = []
    for metric in METRICS:
        contenders = {f"ours box_iou({metric})": lambda m=metric: box_iou(b1, b2, m),
                      f"numpy broadcast ({metric})": lambda m=metric: numpy_box_iou(b1, b2, m)}
        if metric == "iou":
            contenders.update(extra)
        wall, cpu = run_rounds(contenders, args.rounds)
        ours = f"ours box_iou({metric})"
        print(f"\n{metric:5s} {'':38s} {'wall ms':>8s} {'x ours':>7s} {'cpu ms':>8s} "
              f"{'x ours':>7s} {'ns/pair':>8s}")
        for name in contenders:
            print(f"      {name:38s} {wall[name] * 1e3:8.2f} {wall[name] / wall[ours]:7.1f} "
                  f"{cpu[name] * 1e3:8.2f} {cpu[name] / cpu[ours]:7.1f} "
                  f"{cpu[name] / (n * n) * 1e9:8.2f}")
        np_name = f"numpy broadcast ({metric})"
        verdicts.append((metric, wall[np_name] / wall[ours], cpu[np_name] / cpu[ours]))
    print("\nours vs numpy broadcast at "
          f"{n:,} x {n:,} (wall, cpu): " + "; ".join(f"{m} {w:.1f}x, {c:.1f}x"
                                                     for m, w, c in verdicts))
    w, c = verdicts[0][1], verdicts[0][2]
    print(f"target >= 5x numpy broadcast for iou: wall {w:.1f}x, cpu {c:.1f}x "
          f"({'met' if min(w, c) >= 5 else 'MISSED'})")

    if args.sweep:
        print("\nsize sweep, ours vs numpy broadcast (cpu time per call, median):")
        print(f"{'n x n':>11s} " + " ".join(f"{m + ' x':>8s}" for m in METRICS)
              + f" {'ours iou us':>12s} {'numpy iou us':>13s}")
        for size in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
            s1, s2 = make_boxes(rng, size), make_boxes(rng, size)
            reps = max(3, min(2000, 2_000_000 // (size * size)))
            ratios, t_ours, t_np = [], 0.0, 0.0
            for metric in METRICS:
                _, cpu = run_rounds({"ours": lambda m=metric: box_iou(s1, s2, m),
                                     "numpy": lambda m=metric: numpy_box_iou(s1, s2, m)}, reps)
                ratios.append(cpu["numpy"] / cpu["ours"])
                if metric == "iou":
                    t_ours, t_np = cpu["ours"], cpu["numpy"]
            print(f"{size:5d} x {size:<5d} " + " ".join(f"{r:8.1f}" for r in ratios)
                  + f" {t_ours * 1e6:12.1f} {t_np * 1e6:13.1f}")


if __name__ == "__main__":
    main()
