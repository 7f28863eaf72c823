"""The two LVIS raters of ``../shared/data/lvis-double-200`` as semantic segmentation fields.

Each image's annotations of rater r1 and of rater r2 are rasterised with pycocotools into one
class map per rater (:func:`iou_audit.examples.semantic_maps.class_map`: background 0, the LVIS
``category_id`` elsewhere, largest object painted first), written as uint16 PNGs to ``mask_dir``
and stored as ``seg_r1``/``seg_r2`` ``mask_path``s, with the LVIS category names as the mask
targets. No pixels of the photos are needed (the sizes are in the JSON).

Run:  python -m iou_audit.examples.lvis_semantic [--data DIR] [--max-images N]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pathlib

import numpy as np

from iou_audit.examples.semantic_maps import category_targets, class_map, maps_dataset, print_agreement

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lvis-double-200"
ANNOTATIONS = "lvis_v1.0_val_doubly_annos_subset200.json"
RATERS = ("r1", "r2")


def rasterise(coco, image_id: int, rater: str) -> np.ndarray:
    """One rater's class map of one image (uint16; 0 = background), largest object painted first."""
    return class_map(coco, image_id, [a for a in coco.imgToAnns[image_id] if a.get("rater_id") == rater])


def load_dataset(mask_dir: str | pathlib.Path, data_dir: pathlib.Path = DEFAULT_DATA, max_images: int | None = None,
                 name: str | None = None):
    """A non-persistent dataset, one sample per image (ascending id), fields ``seg_r1``/``seg_r2``."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(pathlib.Path(data_dir) / ANNOTATIONS))
    layers = {f"seg_{r}": (lambda image_id, r=r: rasterise(coco, image_id, r)) for r in RATERS}
    return maps_dataset(mask_dir, coco, sorted(coco.imgs)[:max_images], layers, category_targets(coco),
                        lambda info: str(pathlib.Path(data_dir) / "images" / info["file_name"]), name=name,
                        lvis_id=lambda info: info["id"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args(argv)
    print_agreement(lambda tmp: load_dataset(tmp, args.data, args.max_images), ["seg_r1", "seg_r2"])


if __name__ == "__main__":
    main()
