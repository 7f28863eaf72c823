"""The 100 COCO val2014 images of ``../shared/data/coco-val2014-100`` as semantic segmentation:
the labels against cocoapi's fake segmentation results.

Both are rasterised with pycocotools (:func:`iou_audit.examples.semantic_maps.class_map`:
background 0, the COCO ``category_id`` elsewhere, largest object painted first): ``seg_gt`` from
every annotation of the image (crowd regions too, as their category), ``seg_fake`` from the fake
results (``instances_val2014_fakesegm100_results.json``, loaded with ``COCO.loadRes``) whose score is
at least ``min_score``. Images without results get an all-background map.

Run:  python -m iou_audit.examples.coco_semantic [--data DIR] [--min-score S]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pathlib

from iou_audit.examples.coco_reference import DEFAULT_DATA, GT_FILE
from iou_audit.examples.semantic_maps import category_targets, class_map, maps_dataset, print_agreement

RESULTS_FILE = "instances_val2014_fakesegm100_results.json"
#: Results painted into ``seg_fake``: score at least this.
MIN_SCORE = 0.5


def load_dataset(mask_dir, data_dir: pathlib.Path = DEFAULT_DATA, min_score: float = MIN_SCORE,
                 name: str | None = None):
    """A non-persistent dataset, one sample per image (ascending id), fields ``seg_gt``/``seg_fake``."""
    from pycocotools.coco import COCO

    data_dir = pathlib.Path(data_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(data_dir / GT_FILE))
        results = coco.loadRes(str(data_dir / RESULTS_FILE))
    layers = {
        "seg_gt": lambda image_id: class_map(coco, image_id, coco.imgToAnns[image_id]),
        "seg_fake": lambda image_id: class_map(results, image_id, [a for a in results.imgToAnns[image_id]
                                                                   if a["score"] >= min_score]),
    }
    return maps_dataset(mask_dir, coco, sorted(coco.imgs), layers, category_targets(coco),
                        lambda info: str(data_dir / "images" / info["file_name"]), name=name,
                        coco_id=lambda info: info["id"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--min-score", type=float, default=MIN_SCORE)
    args = parser.parse_args(argv)
    print_agreement(lambda tmp: load_dataset(tmp, args.data, args.min_score), ["seg_gt", "seg_fake"])


if __name__ == "__main__":
    main()
