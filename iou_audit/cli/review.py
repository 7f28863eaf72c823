"""``iou-audit review --dataset NAME --mark STATE ID... | --clear ID...``: record review decisions."""
from __future__ import annotations

import argparse
import getpass

from iou_audit.cli._common import add_dataset_argument, load_dataset
from iou_audit.review.states import REVIEW_STATES


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "review", help="mark triage queue rows confirmed / not_an_error / fixed, or clear a mark",
        description="Record a review decision on queue rows (ids as printed by `iou-audit triage`: label ids, "
        "'missing:<field>:<label id>', sample ids or '<sample id>+<sample id>'). Decisions are kept in the "
        "database with a fingerprint of each label, shown as label tags review:<state> and per-sample counts "
        "review_<state>, and survive re-running audits.")
    add_dataset_argument(p)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--mark", nargs="+", metavar=("STATE", "ID"),
                        help=f"the state ({', '.join(REVIEW_STATES)}) then the row ids to mark")
    action.add_argument("--clear", nargs="+", metavar="ID", help="row ids whose decision to remove")
    action.add_argument("--show", action="store_true", help="print the stored decisions")
    p.add_argument("--user", default=None, help="who decides (default: the login name of this process)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.review import clear_review, load_decisions, mark_review

    dataset = load_dataset(args.dataset)
    if args.show:
        decisions = load_decisions(dataset)
        if not decisions:
            print(f"no review decisions on {dataset.name!r}")
        for row_id, d in sorted(decisions.items(), key=lambda kv: str(kv[1].get("at"))):
            print(f"{row_id}  {d['state']:<13} {d.get('user') or '-':<12} {str(d.get('at'))[:19]}  "
                  f"{d.get('field') or ''}")
        return 0
    if args.mark:
        state, ids = args.mark[0], args.mark[1:]
        if state not in REVIEW_STATES:
            raise ValueError(f"--mark: the first value is the state, one of {list(REVIEW_STATES)}; got {state!r}")
        if not ids:
            raise ValueError("--mark: give the row ids to mark after the state")
        n = mark_review(dataset, ids, state, user=args.user or getpass.getuser())
        print(f"marked {n} row(s) {state} on {dataset.name!r}")
        return 0
    n = clear_review(dataset, args.clear)
    print(f"cleared {n} decision(s) on {dataset.name!r}" + (f" ({len(args.clear) - n} id(s) had none)"
                                                          if n < len(args.clear) else ""))
    return 0
