"""``iou-audit duplicates --dataset NAME``: duplicate, conflicting, contained, degenerate, out-of-bounds labels."""
from __future__ import annotations

import argparse

from iou_audit.audits.duplicates import (DEFAULT_CONFLICT_IOU, DEFAULT_CONTAIN_IOS, DEFAULT_IOU_THRESH,
                                         GEOMETRIES, MAX_IOU_LABELS)
from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view, print_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "duplicates", help="find duplicate, class-conflicting, contained, degenerate and out-of-bounds labels",
        description="Audit one Detections/Polylines field for duplicate labels (same class, IoU >= "
        "--iou-thresh), class conflicts (different classes, IoU >= --conflict-iou), contained labels "
        "(intersection-over-smaller >= --contain-ios), degenerate boxes and boxes outside the image. "
        "Results are stored in the dataset under --audit-key (label tags <key>:<kind>, attributes "
        "<key>_max_iou and <key>_dup_of, per-sample counts, saved views, a run).")
    add_dataset_argument(p)
    p.add_argument("--field", default="ground_truth", help="label field to audit (default: ground_truth)")
    p.add_argument("--iou-thresh", type=float, default=DEFAULT_IOU_THRESH,
                   help=f"same-class IoU at or above which a label is a duplicate (default {DEFAULT_IOU_THRESH})")
    p.add_argument("--conflict-iou", type=float, default=DEFAULT_CONFLICT_IOU,
                   help=f"different-class IoU at or above which a pair is a class conflict "
                        f"(default {DEFAULT_CONFLICT_IOU})")
    p.add_argument("--contain-ios", type=float, default=DEFAULT_CONTAIN_IOS,
                   help=f"intersection-over-smaller at or above which a same-class label is contained "
                        f"(default {DEFAULT_CONTAIN_IOS})")
    p.add_argument("--audit-key", default="duplicates",
                   help="name under which results are stored; re-running replaces them (default: duplicates)")
    p.add_argument("--geometry", choices=GEOMETRIES, default="auto",
                   help="overlap geometry: boxes, instance masks, polygons, or auto (masks when present, "
                        "polygons for Polylines, else boxes)")
    p.add_argument("--max-iou-labels", choices=MAX_IOU_LABELS, default="flagged",
                   help="which labels get <key>_max_iou: those of flagged pairs (default) or every label "
                        "overlapping another of its class (to choose a threshold in the App)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--batch-size", type=int, default=2000, help="samples read per batch (bounds memory)")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.duplicates import audit_duplicates

    samples = load_view(load_dataset(args.dataset), args.view)
    result = audit_duplicates(samples, args.field, iou_thresh=args.iou_thresh, audit_key=args.audit_key,
                              conflict_iou=args.conflict_iou, contain_ios=args.contain_ios,
                              geometry=args.geometry, batch_size=args.batch_size, save=args.save,
                              progress=True, max_iou_labels=args.max_iou_labels)
    print(f"duplicates audit of {args.dataset}.{args.field} ({len(samples)} samples, "
          f"{result.metrics.get('n_labels', 0)} labels), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    print_table(result.summary(), "findings per kind and class:")
    if args.save:
        print(f"saved views: {', '.join(f'{args.audit_key}-{k}' for k in result.counts())  or 'none'}")
    return 0
