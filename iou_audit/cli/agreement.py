"""``iou-audit agreement --dataset NAME --fields A B [C ...]``: multi-annotator agreement."""
from __future__ import annotations

import argparse

from iou_audit.audits.agreement.audit import AgreementConfig
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


def _quorum(text: str):
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "agreement", help="agreement between several annotators (matrix, alpha, mAP, findings, consensus)",
        description="Match the labels of K >= 2 annotators (one label field each, or one field with an "
        "annotator attribute) one-to-one per image, cluster them into objects, and report the annotator x "
        "annotator matrix (F1, mean IoU), Krippendorff's alpha, inter-annotator mAP@[.5:.95], per-class "
        "and per-image agreement, per-annotator reliability, and the findings low_agreement, "
        "missing_in_annotator, extra_in_annotator, class_conflict. Results are stored under --audit-key.")
    add_dataset_argument(p)
    add_config_arguments(p, AgreementConfig, flags={"label_fields": "--fields", "compute_map": "--no-map"},
                         types={"quorum": _quorum}, required=("label_fields",))
    p.add_argument("--audit-key", default="agreement",
                   help="name under which results are stored; re-running replaces them (default: agreement)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    add_keep_parts_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.agreement import audit_agreement

    samples = load_view(load_dataset(args.dataset), args.view)
    values = config_values(args)
    fields = values.pop("label_fields")
    result = audit_agreement(samples, fields[0] if len(fields) == 1 else fields, **values,
                             audit_key=args.audit_key, save=args.save, keep_parts=args.keep_parts,
                             progress=True)
    m = result.metrics
    print(f"agreement audit of {args.dataset}: annotators {', '.join(result.config['annotators'])} "
          f"({m['n_samples']} samples, {m['n_objects']} objects, {m['geometry']}), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    lo, hi = m.get("alpha_nominal_ci95", [float("nan")] * 2)
    line = f"alpha nominal {m['alpha_nominal']:.3f} (95% CI {lo:.3f}-{hi:.3f}), interval {m['alpha_interval']:.3f}; F1 {m['f1']:.3f}; mean IoU {m['mean_iou']:.3f}"
    if "map" in m:
        line += f"; inter-annotator mAP@[.5:.95] {m['map']:.3f}"
    print(line)
    print_table(result.tables["matrix_f1"].round(3), "annotator x annotator matching F1:")
    print_table(result.tables["annotators"].round(3), "annotators vs the consensus of the others:")
    print_table(result.summary(), "findings per kind and class:")
    if args.save:
        print(f"saved views: {', '.join(f'{args.audit_key}-{k}' for k in result.counts()) or 'none'}")
        if args.consensus_field:
            print(f"consensus labels written to {args.consensus_field!r}")
    if args.keep_parts:
        print_kept_parts(samples, args.dataset, args.audit_key)
    return 0
