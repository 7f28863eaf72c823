"""``iou-audit relabel-export`` (the relabel queue as COCO / CVAT / YOLO) and ``iou-audit fixes``
(list the recorded fixes, or undo one)."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view


def add_parser(subparsers) -> None:
    from iou_audit.relabel.export import FORMATS

    p = subparsers.add_parser("relabel-export", help="export the flagged labels' samples for relabelling",
                              description="Write the samples holding flagged labels of one field, their labels "
                              "and why each is flagged, with FiftyOne's exporters, into OUTPUT_DIR (nothing is "
                              "written outside it), plus relabel_queue.json.")
    add_dataset_argument(p)
    p.add_argument("--field", "-f", required=True, help="Detections or Polylines field")
    p.add_argument("--view", help="a saved view of the dataset to take the samples from")
    p.add_argument("--tags", nargs="+", help="label tags selecting the flagged labels (default: every finding "
                   "tag of the stored audits)")
    p.add_argument("--label-ids", nargs="+", help="exactly these label ids instead of tags")
    p.add_argument("--format", choices=sorted(FORMATS), default="coco", help="export format")
    p.add_argument("--no-media", action="store_true", help="write labels only, do not copy the images")
    p.add_argument("--only-flagged", action="store_true", help="export only the flagged labels (default: "
                   "every label of the chosen samples)")
    p.add_argument("output_dir", help="directory to write (created; nothing is written outside it)")
    p.set_defaults(func=run_export)

    f = subparsers.add_parser("fixes", help="list the recorded fixes, or undo one",
                              description="List the fixes applied with apply_fix (who, when, what), or undo one "
                              "with --undo FIX_ID (restores the exact previous label).")
    add_dataset_argument(f)
    f.add_argument("--undo", metavar="FIX_ID", help="undo this fix")
    f.set_defaults(func=run_fixes)


def run_export(args: argparse.Namespace) -> int:
    from iou_audit.relabel import export_relabel_queue, select_labels

    samples = load_view(load_dataset(args.dataset), args.view)
    sel = select_labels(samples, args.field, label_ids=args.label_ids, tags=args.tags)
    out = export_relabel_queue(sel, args.output_dir, format=args.format, export_media=not args.no_media,
                               only_flagged=args.only_flagged)
    print(f"wrote {out['n_samples']} samples, {out['n_labels']} labels ({out['n_flagged']} flagged) as "
          f"{out['format']} to {out['export_dir']}")
    return 0


def run_fixes(args: argparse.Namespace) -> int:
    from iou_audit.relabel import list_fixes, undo_fix

    ds = load_dataset(args.dataset)
    if args.undo:
        rec = undo_fix(ds, args.undo)
        print(f"undid fix {rec['fix_id']}: label {rec['label_id']} of {rec['field']!r} restored")
        return 0
    fixes = list_fixes(ds)
    if not fixes:
        print("(no fixes recorded)")
    for r in fixes:
        undone = f"  undone {r['undone_at']} by {r['undone_by']}" if r["state"] == "undone" else ""
        print(f"{r['fix_id']}  {r['applied_at']}  {r['user']}  {r['description']}{undone}")
    return 0
