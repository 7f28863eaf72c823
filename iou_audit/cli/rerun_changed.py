"""``iou-audit rerun-changed --dataset NAME --audit-key KEY``: re-run a stored run on its changed samples only."""
from __future__ import annotations

import argparse
import sys

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view, print_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "rerun-changed", help="re-run a stored run that kept its parts on the samples changed since",
        description="Re-run the stored run --audit-key (made with --keep-parts, or a sharded run that kept "
        "its parts) on the parts holding samples edited, added or deleted since; every other part is "
        "reused and the merge rewrites the run, which then equals a full re-run. Prints the changed "
        "samples and the parts recomputed / reused. Exits 2 with the reason (nothing written) when the "
        "run cannot be re-run this way (no such run, a run without parts, an audit that cannot keep parts).")
    add_dataset_argument(p)
    p.add_argument("--audit-key", required=True, help="the stored run to re-run (see `iou-audit list`)")
    p.add_argument("--view", default=None,
                   help="re-run on this saved view instead of the view stored with the run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.shards import ShardError, rerun_changed

    samples = load_view(load_dataset(args.dataset), args.view)
    try:
        result, info = rerun_changed(samples, args.audit_key, progress=True)
    except ShardError as e:  # IncrementalError: why this run cannot be re-run on its changed samples
        print(f"iou-audit {args.command}: error: {e}", file=sys.stderr)
        return 2
    n_reused = info["n_shards"] - info["n_recomputed"]
    print(f"re-ran {args.audit_key!r} on {args.dataset} ({info['n_samples']} samples): "
          f"{info['n_changed']} changed samples; {info['n_recomputed']} of {info['n_shards']} parts recomputed, "
          f"{n_reused} reused")
    if info.get("n_media_changed"):
        print(f"{info['n_media_changed']} parts recomputed because their image files changed on disk")
    if info.get("reason"):
        print(info["reason"])
    print_table(result.summary(), "findings per kind:")
    return 0
