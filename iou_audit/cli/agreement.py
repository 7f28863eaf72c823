"""``iou-audit agreement --dataset NAME --fields A B [C ...]``: multi-annotator agreement."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view, print_table


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
    p.add_argument("--fields", nargs="+", required=True,
                   help="label fields, one per annotator (or a single field together with --annotator-attr)")
    p.add_argument("--annotator-attr", default=None,
                   help="label attribute naming the annotator, when all annotators share one field")
    p.add_argument("--iou-thresh", type=float, default=0.5, help="IoU needed for two labels to match (default 0.5)")
    p.add_argument("--method", choices=("hungarian", "greedy"), default="hungarian",
                   help="one-to-one matching: optimal Hungarian (default) or greedy")
    p.add_argument("--quorum", type=_quorum, default=None,
                   help="annotators needed for an object to count as found: a fraction q (ceil(q*n)) or a "
                        "count; default a strict majority of the annotators who labelled the image")
    p.add_argument("--low-iou", type=float, default=0.75,
                   help="a label whose mean IoU with the other annotators' is below this is low_agreement (default 0.75)")
    p.add_argument("--coverage-field", default=None,
                   help="per-sample list of the annotators who labelled it (others: not labelled, not 'empty')")
    p.add_argument("--consensus-field", default=None, help="write fused consensus labels to this new field")
    p.add_argument("--audit-key", default="agreement",
                   help="name under which results are stored; re-running replaces them (default: agreement)")
    p.add_argument("--batch-size", type=int, default=2000,
                   help="samples read and matched per batch (bounds memory; results do not depend on it)")
    p.add_argument("--geometry", choices=("auto", "box", "mask", "polygon"), default="auto",
                   help="overlap geometry (auto: masks when every annotator has them, polygons for Polylines, else boxes)")
    p.add_argument("--no-map", dest="compute_map", action="store_false", help="skip the inter-annotator mAP")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from iou_audit.audits.agreement import audit_agreement

    samples = load_view(load_dataset(args.dataset), args.view)
    fields = args.fields[0] if len(args.fields) == 1 else args.fields
    with tqdm(total=100, desc="agreement", unit="%") as bar:
        def progress(fraction: float, label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(int(round(100 * fraction)) - bar.n)

        result = audit_agreement(samples, fields, iou_thresh=args.iou_thresh, method=args.method,
                                 quorum=args.quorum, consensus_field=args.consensus_field,
                                 audit_key=args.audit_key, annotator_attr=args.annotator_attr,
                                 coverage_field=args.coverage_field, geometry=args.geometry,
                                 low_iou=args.low_iou, compute_map=args.compute_map, save=args.save,
                                 progress=progress, batch_size=args.batch_size)
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
    return 0
