"""COCO json (ground truth and a results file) -> two aligned LabelTables, without FiftyOne.

Used by the tests and benches that check our metrics against pycocotools on the same files. Segments
are rasterised with pycocotools (the only thing it is used for here) and stored the way FiftyOne
stores instance masks: cropped to the mask's pixel extent, with that extent as the relative box.
"""
from __future__ import annotations

import json
import os

import numpy as np

from iou_audit.table import LabelTable


def _table(field, image_ids, sizes, anns, with_masks, mask_of) -> LabelTable:
    index = {img: s for s, img in enumerate(image_ids)}
    anns = sorted(anns, key=lambda a: index[a["image_id"]])  # stable: file order within an image
    si = np.array([index[a["image_id"]] for a in anns], dtype=np.int64)
    W, H = sizes[:, 0], sizes[:, 1]
    boxes = np.zeros((len(anns), 4))
    masks = [] if with_masks else None
    for i, a in enumerate(anns):
        w, h = W[si[i]], H[si[i]]
        if with_masks:
            m = mask_of(a, int(h), int(w))
            ys, xs = np.nonzero(m)
            if len(xs):
                x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            else:
                x0 = x1 = y0 = y1 = 0
            masks.append(m[y0:y1, x0:x1].astype(bool))
            boxes[i] = [x0 / w, y0 / h, x1 / w, y1 / h]
        else:
            x, y, bw, bh = a["bbox"]
            boxes[i] = [x / w, y / h, (x + bw) / w, (y + bh) / h]
    offsets = np.zeros(len(image_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(si, minlength=len(image_ids)), out=offsets[1:])
    return LabelTable(
        field=field,
        label_type="detections",
        sample_ids=np.array([str(i) for i in image_ids], dtype=object),
        filepaths=np.full(len(image_ids), "", dtype=object),
        width=W.astype(float),
        height=H.astype(float),
        offsets=offsets,
        sample_index=si,
        label_id=np.array([str(a.get("id", i)) for i, a in enumerate(anns)], dtype=object),
        label=np.array([str(a["category_id"]) for a in anns], dtype=object),
        box=boxes,
        confidence=np.array([float(a.get("score", np.nan)) for a in anns]),
        iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns]),
        masks=masks,
        attributes={"area": np.array([float(a.get("area", np.nan)) for a in anns])},
    )


def load_coco_tables(gt_json: str | os.PathLike, results_json: str | os.PathLike, iou_type: str = "bbox"):
    """Read a COCO ground-truth file and a results file into ``(pred_table, gt_table)``.

    Both tables cover the images of the ground-truth file in ascending id order (pycocotools' order);
    class labels are category ids as strings; ``attributes["area"]`` holds COCO's ``area``
    (for results: ``w * h`` for boxes, the mask area for segments, as ``COCO.loadRes`` sets it).

    Example:
        >>> pred, gt = load_coco_tables("instances_val2014_100.json",
        ...                             "instances_val2014_fakebbox100_results.json")  # doctest: +SKIP
    """
    from pycocotools import mask as mask_utils

    with open(gt_json) as f:
        gt = json.load(f)
    with open(results_json) as f:
        res = json.load(f)
    images = sorted(gt["images"], key=lambda im: im["id"])
    image_ids = [im["id"] for im in images]
    sizes = np.array([[im["width"], im["height"]] for im in images], dtype=float)
    known = set(image_ids)
    res = [r for r in res if r["image_id"] in known]
    with_masks = iou_type == "segm"

    def mask_of(a, h, w):
        seg = a["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        return mask_utils.decode(rle)

    for r in res:
        if with_masks:
            r["area"] = float(mask_utils.area(r["segmentation"]))
        else:
            r["area"] = float(r["bbox"][2] * r["bbox"][3])
    for i, r in enumerate(res):
        r.setdefault("id", i + 1)
    pred_table = _table("predictions", image_ids, sizes, res, with_masks, mask_of)
    gt_table = _table("ground_truth", image_ids, sizes, gt["annotations"], with_masks, mask_of)
    return pred_table, gt_table
