"""``iou-audit predictions --dataset NAME --pred-field P --gt-field G``: model versus labels."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view, print_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predictions", help="find label errors from a model's predictions; COCO metrics and TIDE",
        description="Match a model's predictions to the labels (COCO-exact greedy or Hungarian), flag "
        "possible_missing, possible_spurious, mislocated, class_swap and duplicate_prediction with scores "
        "in 0..1, score every label's quality, and compute precision/recall, COCO AP and the TIDE "
        "attribution. Results are stored under --audit-key (tags <key>:<kind>, attributes <key>_iou, "
        "<key>_match_id, <key>_quality, <key>_error, per-sample counts and quality, saved views, a run).")
    add_dataset_argument(p)
    p.add_argument("--pred-field", required=True, help="Detections field holding the model's predictions")
    p.add_argument("--gt-field", default="ground_truth", help="Detections field holding the labels "
                   "(default: ground_truth)")
    p.add_argument("--iou-thresh", type=float, default=0.5, help="matching IoU threshold (default 0.5)")
    p.add_argument("--method", choices=("coco", "hungarian"), default="coco",
                   help="coco: greedy by confidence, crowd-aware, as pycocotools; hungarian: max total IoU")
    p.add_argument("--geometry-first", dest="classwise", action="store_false",
                   help="match boxes whatever their classes (a wrong class on the right box is then a "
                        "matched class error); default: only same-class pairs match")
    p.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox",
                   help="compare boxes or instance masks (default bbox)")
    p.add_argument("--min-score", type=float, default=0.5,
                   help="report (and tag) findings with a score at least this (default 0.5)")
    p.add_argument("--audit-key", default="predictions",
                   help="name under which results are stored; re-running replaces them (default: predictions)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from iou_audit.audits.predictions.audit import audit_predictions

    from tqdm import tqdm

    samples = load_view(load_dataset(args.dataset), args.view)
    with tqdm(total=100, desc="predictions audit", unit="%") as bar:
        def progress(fraction, label):
            bar.set_postfix_str(label)
            bar.update(round(100 * fraction) - bar.n)

        result = audit_predictions(samples, args.pred_field, args.gt_field, iou_thresh=args.iou_thresh,
                                   method=args.method, classwise=args.classwise, audit_key=args.audit_key,
                                   iou_type=args.iou_type, min_score=args.min_score, save=args.save,
                                   progress=progress)
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
    return 0
