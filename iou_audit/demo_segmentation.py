"""The demo's segmentation section: two real LVIS raters' semantic maps and their agreement.

``../shared/data/lvis-double-200`` (or ``IOU_AUDIT_LVIS``): 200 LVIS val images, each annotated by
two raters; each rater's polygons are rasterised with pycocotools into one class map per image
(:mod:`iou_audit.examples.lvis_semantic`). The dataset is persistent (``iou-audit-lvis-seg``, rebuilt
each run) so the App can open it; its mask PNGs go to ``mask_dir`` (default: the dataset's folder
in FiftyOne's ``default_dataset_dir``). The audit writes the regions where the raters disagree
(``lvis_disagreement``, Detections with masks) and a disagreement heatmap (``lvis_heatmap``).
"""
from __future__ import annotations

import os
import pathlib
import time

DATASET_NAME = "iou-audit-lvis-seg"
FIELDS = ("seg_r1", "seg_r2")
REGIONS_FIELD = "lvis_disagreement"
HEATMAP_FIELD = "lvis_heatmap"
#: Regions of disagreement smaller than this are not written (about 0.2 % of a 640 x 480 image).
MIN_REGION_PIXELS = 500
AUDIT_KEY = "lvis_segmentation"
#: The "lowest class IoU" line counts classes a rater painted in at least this many images.
MIN_CLASS_IMAGES = 3


def run_segmentation_demo(name: str = DATASET_NAME, data_dir: pathlib.Path | None = None, mask_dir=None, show=None,
                          top=None, queue_rows: int = 5):
    """Build the LVIS semantic dataset, audit the raters' agreement, print the numbers, the top
    findings and the first triage rows; returns the AuditResult, or None when the data is missing
    (a message says where it was looked for)."""
    import fiftyone as fo

    from iou_audit.audits.segmentation import audit_segmentation_agreement
    from iou_audit.examples.lvis_semantic import ANNOTATIONS, DEFAULT_DATA, load_dataset
    from iou_audit.review import triage

    data_dir = pathlib.Path(data_dir or os.environ.get("IOU_AUDIT_LVIS", DEFAULT_DATA))
    if not (data_dir / ANNOTATIONS).is_file():
        print(f"(skipped: the LVIS double annotations are not in {data_dir}; set IOU_AUDIT_LVIS)")
        return None
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    mask_dir = pathlib.Path(mask_dir or pathlib.Path(fo.config.default_dataset_dir) / name / "masks")
    t0 = time.perf_counter()
    dataset = load_dataset(mask_dir, data_dir, name=name)
    dataset.persistent = True
    print(f"dataset '{name}': {len(dataset)} images, one class map per rater ({', '.join(FIELDS)}) rasterised "
          f"from the LVIS polygons with pycocotools ({time.perf_counter() - t0:.1f} s); masks in {mask_dir}")

    t0 = time.perf_counter()
    r = audit_segmentation_agreement(dataset, list(FIELDS), audit_key=AUDIT_KEY, regions_field=REGIONS_FIELD,
                                     min_region_pixels=MIN_REGION_PIXELS, heatmap_field=HEATMAP_FIELD)
    seconds = time.perf_counter() - t0
    m = r.metrics
    print(f"rater agreement over {m['n_images']} images: mIoU {m['miou']:.3f}, frequency-weighted IoU "
          f"{m['fwiou']:.3f}, pixel accuracy {m['pixel_accuracy']:.3f}, Krippendorff's alpha over pixels "
          f"{m['alpha']:.3f} (mean per-image mIoU {m['mean_image_miou']:.3f}); {m['n_regions']} regions of "
          f">= {MIN_REGION_PIXELS} px where they disagree ('{REGIONS_FIELD}')")
    per_class = r.tables["per_class"]
    per_class = per_class[(per_class["pixels_a"] + per_class["pixels_b"]) > 0]
    common = per_class[per_class[["images_a", "images_b"]].max(axis=1) >= MIN_CLASS_IMAGES]
    worst = common.nsmallest(3, "iou")
    print(f"lowest class IoU (of the {len(common)} classes a rater painted in >= {MIN_CLASS_IMAGES} images): "
          + ", ".join(f"{c} {v:.3f}" for c, v in zip(worst["class"], worst["iou"])))
    ids, lvis_ids = dataset.values(["id", "lvis_id"])
    names = {i: f"lvis {n}" for i, n in zip(ids, lvis_ids)}
    if show is not None:
        show(r, seconds)
    else:
        print(f"({len(r.findings)} findings in {seconds:.1f} s)")
    if top is not None:
        top(r, names)
    queue = triage(dataset)
    print(f"triage queue: {len(queue)} rows ({int((queue['row_type'] == 'sample').sum())} images, "
          f"{int((queue['row_type'] == 'label').sum())} regions); first {min(queue_rows, len(queue))}:")
    for row in queue.head(queue_rows).itertuples(index=False):
        print(f"  {row.score:.2f}  {names.get(row.sample_id, row.sample_id)}: {row.evidence}")
    return r
