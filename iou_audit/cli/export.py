"""``iou-audit export --dataset NAME --audit-key KEY OUTPUT``: findings to CSV, Parquet or JSON."""
from __future__ import annotations

import argparse
import pathlib

from iou_audit.cli._common import add_dataset_argument, load_dataset

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export an audit's findings to CSV, Parquet or JSON",
                              description="Write the findings of a stored audit to a file; JSON also "
                              "holds the audit's config, metrics and summary tables.")
    add_dataset_argument(p)
    p.add_argument("--audit-key", "-k", required=True, help="key of the stored audit (see `iou-audit list`)")
    p.add_argument("output", help="output file (.csv, .parquet or .json)")
    p.add_argument("--format", choices=sorted(set(FORMATS.values())), default=None,
                   help="file format (default: from the output file's extension)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.results import load_audit

    output = pathlib.Path(args.output)
    fmt = args.format or FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {output}: use a .csv/.parquet/.json name or --format")
    result = load_audit(load_dataset(args.dataset), args.audit_key)
    try:
        getattr(result, f"to_{fmt}")(output)
    except OSError as e:  # missing directory, a directory, no permission: say which path
        raise ValueError(f"cannot write {output}: {e}") from None
    print(f"wrote {len(result.findings)} findings of audit {args.audit_key!r} to {output} ({fmt})")
    return 0
