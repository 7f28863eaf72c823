"""``iou-audit segmentation --dataset NAME --fields A B [...]``: agreement between Segmentation fields."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import (
    add_config_arguments,
    add_dataset_argument,
    config_values,
    load_dataset,
    load_view,
    print_table,
)


def add_parser(subparsers) -> None:
    from iou_audit.audits.segmentation import SegmentationAgreementConfig

    p = subparsers.add_parser(
        "segmentation", help="agreement between Segmentation fields (annotators, or labels then a model)",
        description="Pixel agreement between two or more fo.Segmentation fields: mIoU, frequency-weighted "
        "IoU, pixel accuracy, Krippendorff's alpha; findings low_miou, class_missing, missing_mask. "
        "Results are stored under --audit-key.")
    add_dataset_argument(p)
    add_config_arguments(p, SegmentationAgreementConfig, required=("fields",))
    p.add_argument("--audit-key", default="segmentation_agreement",
                   help="name under which results are stored; re-running replaces them "
                        "(default: segmentation_agreement)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.segmentation import audit_segmentation_agreement

    samples = load_view(load_dataset(args.dataset), args.view)
    params = config_values(args)
    result = audit_segmentation_agreement(samples, params.pop("fields"), audit_key=args.audit_key, save=args.save,
                                          progress=True, **params)
    print(f"segmentation agreement audit of {args.dataset} ({len(samples)} samples), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    shown = {k: v for k, v in result.metrics.items() if not k.startswith("n_") or v}
    print("metrics: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    print_table(result.summary(), "findings per kind and class:")
    print_table(result.tables["per_class"], "per class:")
    return 0
