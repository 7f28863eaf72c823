"""``iou-audit triage --dataset NAME``: one queue of every stored audit's findings, printed and exported."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view
from iou_audit.review.states import DEFAULT_QUEUE_STATES, QUEUE_STATES
from iou_audit.review.suspicion import ANNOTATOR_ATTR

SHOWN = 20  # rows printed without --limit
PRINTED = ["row_id", "review_state", "n_audits", "score", "field", "label", "evidence"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "triage", help="one ranked queue of the findings of every stored audit, with review states",
        description="Merge the findings of the stored audits into one queue (one row per label, missing object, "
        "sample or sample pair), highest combined suspicion first (naive-Bayes log-odds of every source: scoring "
        "audits' per-label values, other audits' best finding scores, each label's annotator error rate; see "
        "the README's Triage section), with the evidence in words and the review state; print it and optionally "
        "export it.")
    add_dataset_argument(p)
    p.add_argument("--audit", "-k", nargs="+", default=None, metavar="KEY",
                   help="only these stored audits (default: all; see `iou-audit list`)")
    p.add_argument("--state", nargs="+", default=list(DEFAULT_QUEUE_STATES), choices=QUEUE_STATES, metavar="STATE",
                   help=f"review states to show, among {', '.join(QUEUE_STATES)} (default: %(default)s)")
    p.add_argument("--all-states", action="store_true", help="show every review state (same as --state with all)")
    p.add_argument("--view", default=None, help="a saved view of the dataset: only its samples and labels")
    p.add_argument("--limit", "-n", type=int, default=None,
                   help=f"keep the first N rows, printed and exported (default: print {SHOWN}, export all)")
    p.add_argument("--every-label", action="store_true",
                   help="also a row for every label a scoring audit (predictions, label prior) scores, flagged or not")
    p.add_argument("--annotator-attr", default=ANNOTATOR_ATTR, metavar="ATTR",
                   help="label attribute naming each label's annotator (default: %(default)s); 'none': not used")
    p.add_argument("--export", "-o", default=None, metavar="PATH",
                   help="write the queue to PATH (.csv, .parquet or .json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from iou_audit.review import triage
    from iou_audit.review.export import export_queue, queue_format

    if args.limit is not None and args.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {args.limit}")
    if args.export:
        queue_format(args.export)  # refuse a bad name before the work
    import time

    dataset = load_dataset(args.dataset)
    started = time.perf_counter()
    queue = triage(load_view(dataset, args.view), audit_keys=args.audit,
                   states=None if args.all_states else args.state, every_label=args.every_label,
                   annotator_attr=None if args.annotator_attr.lower() == "none" else args.annotator_attr)
    seconds = time.perf_counter() - started
    for key in queue.attrs.get("missing_audits", []):
        print(f"note: audit {key!r} is not stored on {dataset.name!r}, skipped")
    if not len(queue):
        print(queue.attrs.get("message") or "the queue is empty")
    else:
        counts = queue["review_state"].value_counts()
        print(f"triage queue of {dataset.name!r}: {len(queue)} rows ("
              + ", ".join(f"{s} {int(counts[s])}" for s in QUEUE_STATES if s in counts) + f") in {seconds:.1f} s")
        rates = queue.attrs.get("annotator_error_rates")
        if rates:
            print("estimated annotator error rates: " + ", ".join(f"{a} {r:.3f}" for a, r in sorted(rates.items())))
    if args.limit is not None:
        queue = queue.head(args.limit)
    if len(queue):
        shown = queue.head(SHOWN if args.limit is None else args.limit)[PRINTED].copy()
        shown.index = range(1, len(shown) + 1)
        shown["score"] = shown["score"].round(3)
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 140):
            print(shown.to_string())
        if len(shown) < len(queue):
            print(f"... {len(queue) - len(shown)} more rows (--limit N to print more, --export PATH for all)")
    if args.export:
        path = export_queue(queue, args.export)
        print(f"wrote {len(queue)} queue rows to {path} ({queue_format(path)})")
    return 0
