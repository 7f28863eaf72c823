"""``iou-audit prior --dataset NAME``: the labels-only prior (size/aspect outliers, overlaps) per label."""
from __future__ import annotations

import argparse

from iou_audit.audits.prior import AUDIT, LabelPriorConfig
from iou_audit.cli._common import (
    add_config_arguments,
    add_dataset_argument,
    config_values,
    load_dataset,
    load_view,
    print_table,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prior", help="score every label by how unlike its class it is (no model needed)",
        description="Labels-only prior: class-conditional size and aspect outliers (robust z-scores with "
        "shrinkage), overlap with other classes and crowding, combined by a two-component mixture fitted "
        "to the data. Writes <key>_suspicion (the posterior), <key>_z_area, <key>_z_aspect on every label, "
        "tags <key>:<kind> for posteriors >= --min-score, counts, saved views, a run; the triage queue "
        "combines <key>_suspicion with the other audits.")
    add_dataset_argument(p)
    add_config_arguments(p, LabelPriorConfig, flags={"label_field": "--field"},
                         defaults={"label_field": "ground_truth"})
    p.add_argument("--audit-key", default=AUDIT,
                   help=f"name under which results are stored; re-running replaces them (default: {AUDIT})")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.prior import audit_label_prior

    samples = load_view(load_dataset(args.dataset), args.view)
    result = audit_label_prior(samples, **config_values(args), audit_key=args.audit_key, save=args.save,
                               progress=True)
    m = result.metrics
    print(f"label prior of {args.dataset}.{args.label_field} ({len(samples)} samples, {m.get('n_labels', 0)} labels), "
          f"key {args.audit_key!r}" + ("" if args.save else " (not saved)"))
    print(f"estimated share of unusual labels {m['error_share']:.3f}; error spread per feature: "
          + ", ".join(f"{k[4:]} {v:.2f}" for k, v in m.items() if k.startswith("tau_")))
    print_table(result.summary(), "findings per kind and class:")
    return 0
