"""The CrowdPose example (``../shared/data/crowdpose-example``) as a FiftyOne dataset, and its
published keypoint AP reproduced through the keypoint audit.

Four CrowdPose images (no pixels: sizes come from the JSON), ``ground_truth``: the 10 annotated
persons, converted by FiftyOne's own COCO parser (``fiftyone.utils.coco.add_coco_labels``,
label_type "keypoints": relative points, NaN where not labeled, COCO's flags in ``visible``), each
with its annotated box as a ``bbox`` attribute in FiftyOne's relative ``[x, y, w, h]`` and its
annotation id as ``coco_id``;
``predictions``: the 15 predicted poses (relative points, the per-point scores as the Keypoint's
``confidence`` list, the instance score as a ``score`` attribute, its position in the results
file as ``result_index``). Both fields carry CrowdPose's keypoint names as their skeleton.

Published (faster-coco-eval's test on these files, iouType "keypoints_crowd", use_area=False):
AP 0.7877, AP50 0.9881, AP75 0.7314, AR 0.8222.

Run:  python -m iou_audit.examples.crowdpose [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crowdpose-example"
GT_FILE = "example_crowdpose_val.json"
PRED_FILE = "example_crowdpose_preds.json"
#: faster-coco-eval's published result on these files (its own test), quoted in shared/data/README.md.
PUBLISHED = {"AP": 0.7877215935879303, "AP50": 0.9881188118811886, "AP75": 0.7314356435643564,
             "AR": 0.8222222222222223, "AR50": 1.0, "AR75": 0.7777777777777778}


#: CrowdPose's limbs (0-based): arms, shoulders to hips, legs, head-neck-shoulders.
CROWDPOSE_EDGES = [[0, 2], [2, 4], [1, 3], [3, 5], [0, 1], [0, 6], [1, 7], [6, 7], [6, 8], [8, 10], [7, 9], [9, 11],
                   [12, 13], [13, 0], [13, 1]]


def load_dataset(data_dir: pathlib.Path = DEFAULT_DATA, name: str | None = None):
    """A non-persistent dataset, one sample per image in ascending id order (pycocotools' order)."""
    import fiftyone as fo
    import fiftyone.utils.coco as fouc

    gt = json.loads((data_dir / GT_FILE).read_text())
    preds = json.loads((data_dir / PRED_FILE).read_text())
    images = sorted(gt["images"], key=lambda im: im["id"])
    dataset = fo.Dataset(name)
    dataset.add_samples([
        fo.Sample(filepath=str(data_dir / "images" / im["file_name"]), coco_id=im["id"],
                  crowd_index=im["crowdIndex"], metadata=fo.ImageMetadata(width=im["width"], height=im["height"]))
        for im in images
    ])
    categories = [{"id": c["id"], "name": c["name"]} for c in gt["categories"]]
    # the file's "skeleton" edges are COCO's 17-point ones (indices up to 17), not CrowdPose's 14:
    # the names are kept, the edges drawn for the App are CrowdPose's limbs
    names = gt["categories"][0]["keypoints"]
    dataset.skeletons = {f: fo.KeypointSkeleton(labels=names, edges=CROWDPOSE_EDGES) for f in ("ground_truth", "predictions")}
    fouc.add_coco_labels(dataset, "ground_truth", gt["annotations"], categories, label_type="keypoints",
                         coco_id_field="coco_id", include_annotation_id=True)
    size = {im["id"]: (im["width"], im["height"]) for im in images}
    boxes: dict[int, list] = {}
    for a in gt["annotations"]:
        w, h = size[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        boxes.setdefault(a["image_id"], []).append([x / w, y / h, bw / w, bh / h])
    by_image: dict[int, list] = {}
    for index, p in enumerate(preds):
        w, h = size[p["image_id"]]
        k = p["keypoints"]
        by_image.setdefault(p["image_id"], []).append(fo.Keypoint(
            label="person", points=[(x / w, y / h) for x, y in zip(k[0::3], k[1::3])],
            confidence=list(k[2::3]), score=p["score"], result_index=index))
    ids = dataset.values("coco_id")
    gt_values = dataset.values("ground_truth")
    for labels, coco_id in zip(gt_values, ids):  # add_coco_labels keeps the file's order per image
        for kp, box in zip(labels.keypoints if labels else [], boxes.get(coco_id, [])):
            kp["bbox"] = box
    dataset.set_values("ground_truth", gt_values)
    dataset.set_values("predictions", [fo.Keypoints(keypoints=by_image.get(i, [])) for i in ids])
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path(
        os.environ.get("IOU_AUDIT_CROWDPOSE", DEFAULT_DATA)))
    args = parser.parse_args(argv)
    if not (args.data / GT_FILE).is_file():
        parser.error(f"CrowdPose example not found in {args.data} (pass --data)")
    from iou_audit.audits.keypoints import audit_keypoint_predictions
    from iou_audit.geometry.keypoints import CROWDPOSE_AREA_FACTOR, CROWDPOSE_FLIP_PAIRS, CROWDPOSE_SIGMAS

    dataset = load_dataset(args.data)
    try:
        result = audit_keypoint_predictions(
            dataset, "predictions", "ground_truth", sigmas=tuple(CROWDPOSE_SIGMAS), flip_pairs=CROWDPOSE_FLIP_PAIRS,
            score_attribute="score", box_attribute="bbox", area_factor=CROWDPOSE_AREA_FACTOR, area_ranges=False,
            save=False)
        print(f"{'metric':<6} {'iou_audit':>10} {'published':>10}")
        for name, want in PUBLISHED.items():
            print(f"{name:<6} {result.metrics[name]:>10.4f} {want:>10.4f}")
        print(result.summary())
    finally:
        dataset.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
