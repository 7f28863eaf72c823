"""COCO-style instance annotations as semantic class maps, and a FiftyOne dataset of such maps.

:func:`class_map` rasterises one image's annotations with pycocotools (``annToMask``: polygons or
RLE -> pixels) into one class map: background 0, every other pixel the ``category_id`` of the
object painted there; objects are painted largest first (``area``; ties by annotation id), so a
smaller object lying on a larger one stays visible. :func:`maps_dataset` writes one uint16 PNG per
image and layer and stores them as ``mask_path`` Segmentation fields, with the category names as
the fields' mask targets. No pixels of the photos are needed (the sizes are in the JSON).
Used by :mod:`iou_audit.examples.lvis_semantic` (two raters) and
:mod:`iou_audit.examples.coco_semantic` (labels vs cocoapi's fake segmentation results).
"""
from __future__ import annotations

import pathlib
from typing import Callable, Mapping, Sequence

import numpy as np


def class_map(coco, image_id: int, anns: Sequence[dict]) -> np.ndarray:
    """The class map (uint16; 0 = background) of one image's ``anns``, largest object painted first.

    Example:
        >>> from pycocotools.coco import COCO
        >>> c = COCO(); c.dataset = {"images": [{"id": 1, "height": 4, "width": 4}], "categories": [],
        ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "area": 16, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
        ...                     {"id": 2, "image_id": 1, "category_id": 9, "area": 1, "segmentation": [[1, 1, 2, 1, 2, 2, 1, 2]]}]}
        >>> c.createIndex()  # doctest: +ELLIPSIS
        creating index...
        index created!
        >>> m = class_map(c, 1, c.imgToAnns[1]); int(m[1, 1]), int(m[3, 3])
        (9, 7)
    """
    info = coco.imgs[image_id]
    out = np.zeros((info["height"], info["width"]), np.uint16)
    for a in sorted(anns, key=lambda a: (-float(a["area"]), a["id"])):
        out[coco.annToMask(a).astype(bool)] = a["category_id"]
    return out


def maps_dataset(mask_dir, coco, image_ids: Sequence[int], layers: Mapping[str, Callable[[int], np.ndarray]],
                 targets: Mapping[int, str], filepath: Callable[[dict], str], name: str | None = None, **extra):
    """A non-persistent dataset, one sample per image (in ``image_ids`` order), one Segmentation field
    per layer (``layers[field](image_id)`` -> class map, written to ``mask_dir/<id>_<field>.png``),
    ``targets`` as every field's mask targets; ``extra(info)`` -> more sample fields per image."""
    import cv2
    import fiftyone as fo

    mask_dir = pathlib.Path(mask_dir)
    mask_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for image_id in image_ids:
        info = coco.imgs[image_id]
        fields = {}
        for field, paint in layers.items():
            path = mask_dir / f"{image_id}_{field}.png"
            if not cv2.imwrite(str(path), paint(image_id)):
                raise OSError(f"cannot write {path}")
            fields[field] = fo.Segmentation(mask_path=str(path))
        more = {k: f(info) for k, f in extra.items()}
        samples.append(fo.Sample(filepath=filepath(info), metadata=fo.ImageMetadata(width=info["width"],
                                                                                  height=info["height"]),
                                 **fields, **more))
    ds = fo.Dataset(name)
    ds.add_samples(samples, progress=False)
    ds.mask_targets = {f: dict(targets) for f in layers}
    ds.save()
    return ds


def category_targets(coco) -> dict[int, str]:
    """``{0: "background", category_id: name, ...}``: the mask targets of class maps."""
    return {0: "background", **{c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}}


#: the agreement metrics the examples print, in this order
PRINTED_METRICS = ("n_images", "miou", "fwiou", "pixel_accuracy", "mean_image_miou", "alpha", "n_low_miou",
                   "n_class_missing")


def print_agreement(build: Callable[[str], object], fields: Sequence[str]) -> None:
    """Build a dataset in a temporary directory (``build(tmp_dir)``), print the segmentation agreement
    metrics of ``fields`` (nothing saved), and delete the dataset."""
    import tempfile

    from iou_audit.audits.segmentation import audit_segmentation_agreement

    with tempfile.TemporaryDirectory() as tmp:
        ds = build(tmp)
        try:
            r = audit_segmentation_agreement(ds, list(fields), save=False)
            for k in PRINTED_METRICS:
                print(f"{k}: {r.metrics[k]}")
        finally:
            ds.delete()
