"""``iou-audit list --dataset NAME``: the audits stored on a dataset."""
from __future__ import annotations

import argparse

import pandas as pd

from iou_audit.cli._common import add_dataset_argument, load_dataset, print_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("list", help="list the audits stored on a dataset",
                              description="List the iou-audit runs stored on a dataset: key, audit, "
                              "time, label field and number of findings per kind.")
    add_dataset_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.results import audit_info, list_audits

    dataset = load_dataset(args.dataset)
    rows = []
    for key in list_audits(dataset):
        info = audit_info(dataset, key)
        counts = info["counts"]
        rows.append({"audit_key": key, "audit": info["audit"], "time": str(info["timestamp"])[:19],
                     "field": (info["config"] or {}).get("label_field", ""),
                     "findings": sum(counts.values()),
                     "per kind": ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))})
    print_table(pd.DataFrame(rows).set_index("audit_key") if rows else None, f"audits on {dataset.name!r}:")
    return 0
