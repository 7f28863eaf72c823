"""The two LVIS raters of ``../shared/data/lvis-double-200`` as semantic segmentation fields.

Each image's annotations of rater r1 and of rater r2 are rasterised with pycocotools
(``annToMask``: polygons -> RLE -> pixels) into one class map per rater: background 0, every other
pixel the LVIS ``category_id`` of the object painted there; objects are painted largest first
(COCO ``area``; ties by annotation id), so a smaller object lying on a larger one stays visible.
Maps are uint16 PNGs written to ``mask_dir`` and stored as ``seg_r1``/``seg_r2`` ``mask_path``s,
with the LVIS category names as the dataset's mask targets. No pixels of the photos are needed
(the sizes are in the JSON).

Run:  python -m iou_audit.examples.lvis_semantic [--data DIR] [--max-images N]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import tempfile

import numpy as np

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lvis-double-200"
ANNOTATIONS = "lvis_v1.0_val_doubly_annos_subset200.json"
RATERS = ("r1", "r2")


def rasterise(coco, image_id: int, rater: str) -> np.ndarray:
    """One rater's class map of one image (uint16; 0 = background), largest object painted first."""
    info = coco.imgs[image_id]
    out = np.zeros((info["height"], info["width"]), np.uint16)
    anns = [a for a in coco.imgToAnns[image_id] if a.get("rater_id") == rater]
    for a in sorted(anns, key=lambda a: (-float(a["area"]), a["id"])):
        out[coco.annToMask(a).astype(bool)] = a["category_id"]
    return out


def load_dataset(mask_dir: str | pathlib.Path, data_dir: pathlib.Path = DEFAULT_DATA, max_images: int | None = None,
                 name: str | None = None):
    """A non-persistent dataset, one sample per image (ascending id), fields ``seg_r1``/``seg_r2``."""
    import cv2
    import fiftyone as fo
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(pathlib.Path(data_dir) / ANNOTATIONS))
    mask_dir = pathlib.Path(mask_dir)
    mask_dir.mkdir(parents=True, exist_ok=True)
    ids = sorted(coco.imgs)[:max_images]
    samples = []
    for image_id in ids:
        info = coco.imgs[image_id]
        fields = {}
        for rater in RATERS:
            path = mask_dir / f"{image_id}_{rater}.png"
            if not cv2.imwrite(str(path), rasterise(coco, image_id, rater)):
                raise OSError(f"cannot write {path}")
            fields[f"seg_{rater}"] = fo.Segmentation(mask_path=str(path))
        samples.append(fo.Sample(filepath=str(pathlib.Path(data_dir) / "images" / info["file_name"]),
                                 metadata=fo.ImageMetadata(width=info["width"], height=info["height"]),
                                 lvis_id=image_id, **fields))
    ds = fo.Dataset(name)
    ds.add_samples(samples, progress=False)
    targets = {0: "background", **{c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}}
    ds.mask_targets = {f"seg_{r}": targets for r in RATERS}
    ds.save()
    return ds


def main(argv=None) -> None:
    from iou_audit.audits.segmentation import audit_segmentation_agreement

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_dataset(tmp, args.data, args.max_images)
        try:
            r = audit_segmentation_agreement(ds, ["seg_r1", "seg_r2"], save=False)
            for k in ("n_images", "miou", "fwiou", "pixel_accuracy", "mean_image_miou", "alpha", "n_low_miou",
                      "n_class_missing"):
                print(f"{k}: {r.metrics[k]}")
        finally:
            ds.delete()


if __name__ == "__main__":
    main()
