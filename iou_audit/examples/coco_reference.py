"""COCO reference check through FiftyOne: our IoU + matching + AP vs pycocotools' published numbers.

Loads the 100 COCO val2014 images of ``../shared/data/coco-val2014-100`` (annotations only, no
pixels: image sizes come from the JSON) and cocoapi's fake bbox results into a throw-away FiftyOne
dataset with FiftyOne's own COCO label parser, reads both fields back in bulk as label tables,
computes all same-image box IoUs in one batched pass (crowd IoU for ``iscrowd`` ground truth),
matches greedily (COCO) and optimally (Hungarian), and prints AP, AP50 and AP75 next to the values
pycocotools printed for the same files (``val2014_fake_eval_res.txt``).

Run:  python -m iou_audit.examples.coco_reference [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re

import numpy as np

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-val2014-100"
GT_FILE = "instances_val2014_100.json"
RESULTS_FILE = "instances_val2014_fakebbox100_results.json"
PUBLISHED_FILE = "val2014_fake_eval_res.txt"


def published_bbox_ap(path: pathlib.Path) -> dict[str, float]:
    """AP, AP50, AP75 (area all, maxDets 100) of the bbox section of cocoapi's printed results."""
    section = path.read_text().split("type=bbox")[1].split("type=")[0]
    found = dict(re.findall(r"\(AP\) @\[ IoU=(\S+)\s+\| area=\s*all .*= ([0-9.]+)", section))
    return {"AP": float(found["0.50:0.95"]), "AP50": float(found["0.50"]), "AP75": float(found["0.75"])}


def load_dataset(data_dir: pathlib.Path):
    """A non-persistent dataset: one sample per image, ``ground_truth`` and ``predictions`` fields."""
    import fiftyone as fo
    import fiftyone.utils.coco as fouc

    gt = json.loads((data_dir / GT_FILE).read_text())
    images = sorted(gt["images"], key=lambda im: im["id"])  # pycocotools evaluates ids in order
    dataset = fo.Dataset()
    # No pixels ship with the reference data: filepaths name where the images would be, and the
    # sizes FiftyOne needs to convert pixel boxes to relative ones come from the JSON.
    dataset.add_samples([
        fo.Sample(filepath=str(data_dir / "images" / im["file_name"]), coco_id=im["id"],
                  metadata=fo.ImageMetadata(width=im["width"], height=im["height"]))
        for im in images
    ])
    categories = {c["id"]: c["name"] for c in gt["categories"]}
    fouc.add_coco_labels(dataset, "ground_truth", str(data_dir / GT_FILE), categories,
                         coco_id_field="coco_id")
    fouc.add_coco_labels(dataset, "predictions", str(data_dir / RESULTS_FILE), categories,
                         coco_id_field="coco_id")
    return dataset, sorted(categories.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path(
        os.environ.get("IOU_AUDIT_COCO_REFERENCE", DEFAULT_DATA)))
    args = parser.parse_args(argv)
    if not (args.data / GT_FILE).is_file():
        parser.error(f"COCO reference data not found in {args.data} (pass --data)")

    from iou_audit.geometry.boxes import batched_box_iou
    from iou_audit.matching import batched_match, coco_evaluate, label_agreement
    from iou_audit.table import read_label_table

    dataset, categories = load_dataset(args.data)
    try:
        gt = read_label_table(dataset, "ground_truth", compute_metadata=False)
        pred = read_label_table(dataset, "predictions", compute_metadata=False)
        print(f"{len(dataset)} images, {len(gt.box)} ground-truth boxes ({gt.iscrowd.sum()} crowd), "
              f"{len(pred.box)} predicted boxes")

        # every same-image (prediction, ground truth) pair in one pass; crowd IoU = inter / area(pred)
        values, pair_offsets = batched_box_iou(pred.box, pred.offsets, gt.box, gt.offsets,
                                               crowd2=gt.iscrowd)
        result = coco_evaluate(values, pair_offsets, pred.offsets, gt.offsets, pred.confidence,
                               pred.label, gt.label, gt_crowd=gt.iscrowd, max_dets=100,
                               categories=np.array(categories, dtype=object))
        published = published_bbox_ap(args.data / PUBLISHED_FILE)
        print(f"\n{'metric':<6} {'iou_audit':>10} {'pycocotools (published)':>24}")
        for name in ("AP", "AP50", "AP75"):
            print(f"{name:<6} {getattr(result, name):>10.4f} {published[name]:>24.3f}")

        for thr in (0.5, 0.75):
            t = int(np.flatnonzero(np.isclose(result.iou_thresholds, thr))[0])
            print(f"\nIoU {thr}: greedy COCO matching: TP {result.tp[t].sum()}, FP {result.fp[t].sum()}, "
                  f"FN {result.fn[t].sum()}, {result.ignored[t].sum()} predictions absorbed by crowds")
        # optimal one-to-one matching of the same pairs, classes first, no crowd rule
        regular = ~gt.iscrowd
        keep = np.flatnonzero(regular)
        gt_offsets = np.concatenate([[0], np.cumsum(np.bincount(gt.sample_index[keep],
                                                                minlength=len(gt.offsets) - 1))])
        v2, po2 = batched_box_iou(pred.box, pred.offsets, gt.box[keep], gt_offsets)
        greedy = batched_match(v2, po2, pred.offsets, gt_offsets, pred.confidence, 0.5,
                               labels1=pred.label, labels2=gt.label[keep])[0]
        optimal = batched_match(v2, po2, pred.offsets, gt_offsets, None, 0.5, method="hungarian",
                                labels1=pred.label, labels2=gt.label[keep])[0]
        print(f"\nWithout crowd ground truth, IoU 0.5, class-aware: greedy matches {(greedy >= 0).sum()} "
              f"pairs, Hungarian {(optimal >= 0).sum()}; they differ on "
              f"{(greedy != optimal).sum()} predictions")
        geo = batched_match(v2, po2, pred.offsets, gt_offsets, None, 0.5, method="hungarian",
                            labels1=pred.label, labels2=gt.label[keep], mode="geometry_first")[0]
        same = label_agreement(geo, pred.label, gt.label[keep])
        print(f"Geometry first (CVAT-style): {(geo >= 0).sum()} matched shapes, "
              f"{(geo >= 0).sum() - same.sum()} with a different class")
    finally:
        dataset.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
