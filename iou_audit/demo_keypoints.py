"""The demo's keypoints section: the three keypoint audits on the real CrowdPose example.

``../shared/data/crowdpose-example`` (or ``IOU_AUDIT_CROWDPOSE``): 4 CrowdPose images, their 10
labeled persons and a pose model's 15 predictions (:mod:`iou_audit.examples.crowdpose`). The
dataset is persistent (``iou-audit-crowdpose``, rebuilt each run, a few seconds) so the App can open it.
"""
from __future__ import annotations

import os
import pathlib
import time

DATASET_NAME = "iou-audit-crowdpose"


def crowdpose_params() -> dict:
    """The CrowdPose settings of the published evaluation: its 14 sigmas, the instance ``score``,
    OKS area 0.53 x the annotated ``bbox`` area, one area range."""
    from iou_audit.geometry.keypoints import CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS

    return dict(sigmas=tuple(float(s) for s in CROWDPOSE_SIGMAS), score_attribute="score", box_attribute="bbox",
                area_factor=CROWDPOSE_AREA_FACTOR, area_ranges=False)


def run_keypoint_demo(name: str = DATASET_NAME, data_dir: pathlib.Path | None = None, show=None, top=None) -> dict:
    """Build the CrowdPose dataset and run the three keypoint audits; print their main numbers.

    ``show(result, seconds)`` and ``top(result, names)`` print a result (the demo's own printers);
    returns ``{"predictions": ..., "agreement": ..., "duplicates": ...}`` (AuditResults), or {} when
    the data is missing (a message says where it was looked for).
    """
    import fiftyone as fo

    from iou_audit.audits.keypoints import (
        audit_keypoint_agreement,
        audit_keypoint_duplicates,
        audit_keypoint_predictions,
    )
    from iou_audit.examples.crowdpose import DEFAULT_DATA, GT_FILE, PUBLISHED, load_dataset

    data_dir = pathlib.Path(data_dir or os.environ.get("IOU_AUDIT_CROWDPOSE", DEFAULT_DATA))
    if not (data_dir / GT_FILE).is_file():
        print(f"(skipped: the CrowdPose example is not in {data_dir}; set IOU_AUDIT_CROWDPOSE)")
        return {}
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = load_dataset(data_dir, name=name)
    dataset.persistent = True
    ids, paths = dataset.values(["id", "filepath"])
    names = {i: os.path.basename(p) for i, p in zip(ids, paths)}
    print(f"dataset '{name}': {len(dataset)} images, {dataset.count('ground_truth.keypoints')} labeled persons "
          f"(ground_truth), {dataset.count('predictions.keypoints')} predicted poses (predictions), 14 keypoints")
    params = crowdpose_params()
    sigmas = params["sigmas"]
    results = {}

    print("\n-- the pose model against the labels (audit key 'keypoint_predictions')")
    t0 = time.perf_counter()
    r = audit_keypoint_predictions(dataset, "predictions", "ground_truth", **params)
    seconds = time.perf_counter() - t0
    print("COCO keypoint AP, ours vs published (faster-coco-eval): "
          + ", ".join(f"{k} {r.metrics[k]:.4f}/{v:.4f}" for k, v in PUBLISHED.items()))
    _print(r, seconds, names, show, top)
    results["predictions"] = r

    print("\n-- labels vs model as two annotators (audit key 'keypoint_agreement')")
    t0 = time.perf_counter()
    r = audit_keypoint_agreement(dataset, ["ground_truth", "predictions"], sigmas=sigmas)
    seconds = time.perf_counter() - t0
    print(f"mean OKS of matched persons {r.metrics['mean_oks']:.3f}, object F1 {r.metrics['object_f1']:.3f}")
    _print(r, seconds, names, show, top)
    results["agreement"] = r

    print("\n-- a pose drawn twice in the model's output (audit key 'keypoint_duplicates')")
    t0 = time.perf_counter()
    r = audit_keypoint_duplicates(dataset, "predictions", sigmas=sigmas)
    _print(r, time.perf_counter() - t0, names, show, top)
    results["duplicates"] = r
    return results


def _print(result, seconds, names, show, top) -> None:
    if show is not None:
        show(result, seconds)
    else:
        print(f"({len(result.findings)} findings in {seconds:.1f} s)")
    if top is not None:
        top(result, names)
