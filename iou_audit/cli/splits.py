"""``iou-audit splits --dataset NAME --split-field split``: leakage between splits and drift."""
from __future__ import annotations

import argparse

from iou_audit.audits.splits.audit import SplitsConfig
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
        "splits", help="find train/val/test leakage (exact, near, annotation, group) and drift between splits",
        description="Audit the dataset's splits: the same file or bytes in two splits (leak_exact), "
        "near-identical pixels by perceptual hash (leak_near), near-identical label sets (leak_annotation), "
        "a group value in two splits (leak_group), and class / box / objects-per-image drift between "
        "splits (split_drift). Splits come from a sample field (--split-field) or sample tags "
        "(--split-tags). Results are stored under --audit-key: per-sample counts, <key>_pair ids, "
        "cached hashes, one saved view per kind showing both sides of each pair, and a run.")
    add_dataset_argument(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--split-field", help="sample field holding each sample's split name (e.g. split)")
    source.add_argument("--split-tags", nargs="+", metavar="TAG",
                        help="sample tags that are splits, in order, e.g. --split-tags train val test")
    add_config_arguments(p, SplitsConfig, skip=("split_field", "split_tags"))
    p.add_argument("--audit-key", default="splits",
                   help="name under which results are stored; re-running replaces them (default: splits)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    add_keep_parts_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.splits import audit_splits

    samples = load_view(load_dataset(args.dataset), args.view)
    values = config_values(args)
    if str(values["label_field"]).lower() == "none":
        values["label_field"] = None
    result = audit_splits(samples, split_field=args.split_field, split_tags=args.split_tags, **values,
                          audit_key=args.audit_key, save=args.save, keep_parts=args.keep_parts,
                          progress=True)
    print(f"splits audit of {args.dataset} ({len(samples)} samples), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    print_table(result.tables["splits"].set_index("split"), "samples per split:")
    print_table(result.summary(), "findings per kind:")
    leaks = result.findings[result.findings.kind.str.startswith("leak")]
    if len(leaks):
        name = {i: p.rsplit("/", 1)[-1] for i, p in zip(samples.values("id"), samples.values("filepath"))}
        shown = leaks.assign(file=leaks.sample_id.map(name), other_file=leaks.other_sample_id.map(name))
        print_table(shown[["kind", "file", "other_file", "score", "detail", "sample_id", "other_sample_id"]]
                    .reset_index(drop=True), "leaked pairs (sample in the later split, its partner):")
    drift = result.findings[result.findings.kind == "split_drift"]
    if len(drift):
        print_table(drift[["label", "score", "detail"]].reset_index(drop=True), "drift:")
    if args.save and len(result.findings):
        print(f"saved views: {', '.join(f'{args.audit_key}-{k}' for k in sorted(result.counts()))}")
    if args.keep_parts:
        print_kept_parts(samples, args.dataset, args.audit_key)
    return 0
