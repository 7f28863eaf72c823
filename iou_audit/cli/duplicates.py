"""``iou-audit duplicates --dataset NAME``: duplicate, conflicting, contained, degenerate, out-of-bounds labels."""
from __future__ import annotations

import argparse

from iou_audit.audits.duplicates import DuplicatesConfig
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
        "duplicates", help="find duplicate, class-conflicting, contained, degenerate and out-of-bounds labels",
        description="Audit one Detections/Polylines field for duplicate labels (same class, IoU >= "
        "--iou-thresh), class conflicts (different classes, IoU >= --conflict-iou), contained labels "
        "(intersection-over-smaller >= --contain-ios), degenerate boxes and boxes outside the image. "
        "Results are stored in the dataset under --audit-key (label tags <key>:<kind>, attributes "
        "<key>_max_iou and <key>_dup_of, per-sample counts, saved views, a run).")
    add_dataset_argument(p)
    add_config_arguments(p, DuplicatesConfig, flags={"label_field": "--field"},
                         defaults={"label_field": "ground_truth"})
    p.add_argument("--audit-key", default="duplicates",
                   help="name under which results are stored; re-running replaces them (default: duplicates)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    add_keep_parts_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.duplicates import audit_duplicates

    samples = load_view(load_dataset(args.dataset), args.view)
    result = audit_duplicates(samples, **config_values(args), audit_key=args.audit_key, save=args.save,
                              keep_parts=args.keep_parts, progress=True)
    print(f"duplicates audit of {args.dataset}.{args.label_field} ({len(samples)} samples, "
          f"{result.metrics.get('n_labels', 0)} labels), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    print_table(result.summary(), "findings per kind and class:")
    if args.save:
        print(f"saved views: {', '.join(f'{args.audit_key}-{k}' for k in result.counts())  or 'none'}")
    if args.keep_parts:
        print_kept_parts(samples, args.dataset, args.audit_key)
    return 0
