"""``iou-audit predictions --dataset NAME --pred-field P --gt-field G``: model versus labels."""
from __future__ import annotations

import argparse

from iou_audit.audits.predictions.audit import PredictionsConfig
from iou_audit.cli._common import (
    add_config_arguments,
    add_dataset_argument,
    add_keep_parts_argument,
    config_values,
    load_dataset,
    load_view,
    print_kept_parts,
    print_table,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predictions", help="find label errors from a model's predictions; COCO metrics and TIDE",
        description="Match a model's predictions to the labels (COCO-exact greedy or Hungarian), flag "
        "possible_missing, possible_spurious, mislocated, class_swap and duplicate_prediction with scores "
        "in 0..1, score every label's quality, and compute precision/recall, COCO AP and the TIDE "
        "attribution. Results are stored under --audit-key (tags <key>:<kind>, attributes <key>_iou, "
        "<key>_match_id, <key>_quality, <key>_error, per-sample counts and quality, saved views, a run).")
    add_dataset_argument(p)
    add_config_arguments(p, PredictionsConfig, flags={"classwise": "--geometry-first"},
                         defaults={"gt_field": "ground_truth"}, required=("pred_field",))
    p.add_argument("--audit-key", default="predictions",
                   help="name under which results are stored; re-running replaces them (default: predictions)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    add_keep_parts_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from iou_audit.audits.predictions.audit import audit_predictions
    samples = load_view(load_dataset(args.dataset), args.view)
    values = config_values(args)
    result = audit_predictions(samples, values.pop("pred_field"), values.pop("gt_field"), **values,
                               audit_key=args.audit_key, save=args.save, keep_parts=args.keep_parts,
                               progress=True)
    m = result.metrics
    print(f"predictions audit of {args.dataset}: {args.pred_field} vs {args.gt_field} ({len(samples)} samples), "
          f"key {args.audit_key!r}" + ("" if args.save else " (not saved)"))
    keys = ["tp", "fp", "fn", "precision", "recall", "AP", "AP50", "AP75"]
    print_table(pd.DataFrame([{k: m.get(k) for k in keys}]).round(4), "metrics:")
    if "tide" in result.tables:
        print_table(result.tables["tide"].round(4), f"TIDE (AP lost per error type at IoU {args.iou_thresh}):")
    print_table(result.summary(), "findings per kind and class:")
    if args.save:
        print(f"saved views: {', '.join(f'{args.audit_key}-{k}' for k in result.counts()) or 'none'}")
    if args.keep_parts:
        print_kept_parts(samples, args.dataset, args.audit_key)
    return 0
