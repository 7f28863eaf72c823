"""The README's main job: ingest BCCD, run every audit, print what they found.

Run it with ``./run demo`` (sets everything up) or ``python -m iou_audit.demo``. The dataset is
persistent (default name ``iou-audit-bccd``) so the App can open it afterwards; re-running reuses
it (``--fresh`` re-ingests). Simulated inputs (extra annotators, a detector's predictions) are
written to fields whose names start with ``sim_`` so nobody mistakes them for real labels.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

DATASET_NAME = "iou-audit-bccd"
LABEL_FIELD = "ground_truth"


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


def _show(result, seconds: float) -> None:
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_columns", 20):
        summary = result.summary()
        print(summary.to_string() if len(summary) else "(no findings)")
        if result.metrics:
            shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
            if shown:
                print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in list(shown.items())[:12]))
    print(f"({len(result.findings)} findings in {seconds:.1f} s; audit key '{result.audit_key}')")


def _top(result, names: dict[str, str], n: int = 5) -> None:
    """The n most suspicious findings, one per kind first so every kind shows up."""
    f = result.findings.sort_values("score", ascending=False, kind="stable")
    f = f.loc[list(f.groupby("kind", sort=False).head(1).index) + list(f.index)].drop_duplicates().head(n)
    for r in f.itertuples(index=False):
        image = names.get(r.sample_id, r.sample_id)
        if r.other_sample_id and r.other_sample_id != r.sample_id:
            image += f" vs {names.get(r.other_sample_id, r.other_sample_id)}"
        print(f"  {r.kind:<20} {r.score:.2f}  {r.label or '':<9} {image}: {r.detail}")


def run_demo_duplicates(dataset, label_field: str = "ground_truth"):
    """The demo's duplicate audit (audit key ``duplicates``) with the default thresholds."""
    from iou_audit.audits.duplicates import audit_duplicates

    return audit_duplicates(dataset, label_field, audit_key="duplicates", progress=True)


def run_demo_agreement(dataset, source_field: str = "ground_truth", audit_key: str = "agreement"):
    """Two SIMULATED annotators next to the real labels, then the agreement audit.

    Adds ``sim_annotator_b`` and ``sim_annotator_c`` (seeded noise, see ``iou_audit.simulate.annotators``),
    audits ``[source_field, sim_annotator_b, sim_annotator_c]`` and writes the fused labels to
    ``sim_consensus`` (owned by the run: a re-run replaces it).
    """
    from iou_audit.audits.agreement import audit_agreement
    from iou_audit.results.runs import check_new_field
    from iou_audit.simulate.annotators import add_simulated_annotators

    try:
        check_new_field(dataset, "sim_consensus", audit_key)
    except ValueError:  # left by a version that did not record it in the run: the demo's own field
        dataset.delete_sample_field("sim_consensus")
    names = ("sim_annotator_b", "sim_annotator_c")
    add_simulated_annotators(dataset, source_field, names, seed=0, overwrite=True)
    return audit_agreement(dataset, [source_field, *names], consensus_field="sim_consensus", audit_key=audit_key)


def run_demo_predictions(dataset, gt_field: str = "ground_truth", pred_field: str = "sim_predictions",
                         audit_key: str = "predictions", seed: int = 0):
    """Write *simulated* predictions into ``sim_predictions`` (see ``iou_audit.simulate.predictions``)
    and audit them against ``gt_field``."""
    from iou_audit.audits.predictions import audit_predictions
    from iou_audit.simulate.predictions import add_simulated_predictions

    add_simulated_predictions(dataset, gt_field, pred_field, seed=seed)
    return audit_predictions(dataset, pred_field, gt_field, audit_key=audit_key)


def run_demo_splits(dataset, split_field: str = "split", label_field: str = "ground_truth"):
    """The demo's split audit (audit key ``splits``) on BCCD's official split field and human labels.

    On BCCD it reports 8 leak_near pairs: one field of view refocused (00037/00038) and seven
    photographed again with the stage moved (shifted views), each across two official splits.
    """
    from iou_audit.audits.splits import audit_splits

    return audit_splits(dataset, split_field=split_field, label_field=label_field, audit_key="splits",
                        progress=True)


def steps():
    """(title, function(dataset) -> AuditResult) for every audit the demo runs, in order."""
    return [
        ("Duplicate and degenerate boxes in the human labels", run_demo_duplicates),
        ("Agreement: human labels vs two SIMULATED annotators (sim_annotator_b, sim_annotator_c)",
         run_demo_agreement),
        ("Label errors from SIMULATED detector predictions (sim_predictions)", run_demo_predictions),
        ("Train/val/test leakage and drift in the official split", run_demo_splits),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iou-audit-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=DATASET_NAME, help="dataset name (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete and re-ingest the dataset first")
    args = parser.parse_args(argv)

    from iou_audit.ingest import ingest_bccd

    _banner("Ingest BCCD (VOC boxes, official train/val/test split)")
    t0 = time.perf_counter()
    try:
        dataset = ingest_bccd(args.name, persistent=True, overwrite=args.fresh, progress=True)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset '{dataset.name}': {len(dataset)} samples, "
          f"{dataset.count(f'{LABEL_FIELD}.detections')} boxes, splits {dataset.count_values('split')} "
          f"({time.perf_counter() - t0:.1f} s)")

    ids, paths = dataset.values(["id", "filepath"])
    names = {i: os.path.basename(p) for i, p in zip(ids, paths)}
    for title, run in steps():
        _banner(title)
        t0 = time.perf_counter()
        result = run(dataset)
        _show(result, time.perf_counter() - t0)
        _top(result, names)

    _banner("One triage queue across the four audits (highest combined suspicion first)")
    _triage(dataset, names)

    from iou_audit.demo_keypoints import DATASET_NAME as KEYPOINT_DATASET
    from iou_audit.demo_keypoints import run_keypoint_demo

    _banner("Keypoints: the three keypoint audits on the real CrowdPose example")
    kp_ran = bool(run_keypoint_demo(show=_show, top=_top))

    from iou_audit.demo_segmentation import DATASET_NAME as SEGMENTATION_DATASET
    from iou_audit.demo_segmentation import run_segmentation_demo

    _banner("Semantic segmentation: two real LVIS raters' class maps, their agreement")
    seg_ran = run_segmentation_demo(show=_show, top=_top) is not None

    _banner("Open the results in the FiftyOne App")
    print(f"  ./run app --dataset {dataset.name}        (then open the 'iou-audit review' panel, "
          "or the saved views in the sidebar)")
    if kp_ran:
        print(f"  ./run app --dataset {KEYPOINT_DATASET}   (the keypoint audits' saved views and tags)")
    if seg_ran:
        print(f"  ./run app --dataset {SEGMENTATION_DATASET}    (the raters' maps, regions of disagreement, "
              "heatmap; the review panel's class IoU bars and confusion heatmap)")
    print(f"  .venv/bin/iou-audit list --dataset {dataset.name}")
    print(f"  .venv/bin/iou-audit export --dataset {dataset.name} --audit-key duplicates findings.csv")
    print(f"  .venv/bin/iou-audit triage --dataset {dataset.name} --export queue.csv   "
          "(then `iou-audit review --mark not_an_error ID`)")
    return 0


def _triage(dataset, names: dict[str, str], n: int = 5) -> None:
    """Print the merged queue's size and its first rows (review decisions kept from earlier runs)."""
    from iou_audit.review import triage

    t0 = time.perf_counter()
    queue = triage(dataset)
    counts = queue["n_audits"].value_counts().sort_index(ascending=False) if len(queue) else {}
    print(f"{len(queue)} rows in {time.perf_counter() - t0:.1f} s; flagged by "
          + (", ".join(f"{k} audit(s): {v}" for k, v in counts.items()) or "nothing"))
    for r in queue.head(n).itertuples(index=False):
        image = names.get(r.sample_id, r.sample_id)
        print(f"  {r.score:.2f}  {r.review_state:<12} {image}: {r.evidence}")


if __name__ == "__main__":
    sys.exit(main())
