"""``iou-audit splits --dataset NAME --split-field split``: leakage between splits and drift."""
from __future__ import annotations

import argparse

from iou_audit.audits.splits.audit import DEFAULT_ANNOTATION_IOU, DEFAULT_EMBEDDINGS_THRESHOLD
from iou_audit.audits.splits.drift import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT
from iou_audit.audits.splits.hashing import DEFAULT_NEAR_THRESHOLD
from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view, print_table


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
    p.add_argument("--group-field", default=None,
                   help="sample field of group values that must not span splits (video, patient, document)")
    p.add_argument("--embeddings-field", default=None,
                   help="sample field of embedding vectors for an extra cosine-distance near-duplicate check")
    p.add_argument("--label-field", default="auto",
                   help="Detections field for annotation leaks and drift ('auto': the only one; 'none': skip)")
    p.add_argument("--near-threshold", type=int, default=DEFAULT_NEAR_THRESHOLD,
                   help=f"perceptual-hash Hamming distance (bits of 64) for a near duplicate "
                        f"(default {DEFAULT_NEAR_THRESHOLD}, measured on BCCD)")
    p.add_argument("--annotation-iou", type=float, default=DEFAULT_ANNOTATION_IOU,
                   help=f"IoU every box must reach for two label sets to be near-identical "
                        f"(default {DEFAULT_ANNOTATION_IOU})")
    p.add_argument("--embeddings-threshold", type=float, default=DEFAULT_EMBEDDINGS_THRESHOLD,
                   help=f"cosine distance for an embedding near duplicate (default {DEFAULT_EMBEDDINGS_THRESHOLD})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"Bonferroni-adjusted p-value below which a drift test is significant (default {DEFAULT_ALPHA})")
    p.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT,
                   help=f"smallest effect size (Cramer's V, JSD, KS D) reported as drift (default {DEFAULT_MIN_EFFECT})")
    p.add_argument("--no-shifted", dest="shifted", action="store_false",
                   help="skip the search for shifted views of one scene (window hashes + pixel check)")
    p.add_argument("--no-transformed", dest="transformed", action="store_false",
                   help="skip the search for mirrored or rotated copies (symmetry hashes + pixel check)")
    p.add_argument("--audit-key", default="splits",
                   help="name under which results are stored; re-running replaces them (default: splits)")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--workers", type=int, default=None, help="threads reading image files (default: up to 8)")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.splits import audit_splits

    samples = load_view(load_dataset(args.dataset), args.view)
    label_field = None if str(args.label_field).lower() == "none" else args.label_field
    result = audit_splits(
        samples, split_field=args.split_field, split_tags=args.split_tags, group_field=args.group_field,
        embeddings_field=args.embeddings_field, audit_key=args.audit_key, near_threshold=args.near_threshold,
        annotation_iou=args.annotation_iou, label_field=label_field,
        embeddings_threshold=args.embeddings_threshold, alpha=args.alpha, min_effect=args.min_effect,
        shifted=args.shifted, transformed=args.transformed, save=args.save, progress=True, workers=args.workers)
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
    return 0
