"""``iou-audit`` command line: one module per subcommand, discovered at start.

Each module ``iou_audit/cli/<name>.py`` defines ``add_parser(subparsers)`` which adds its parser and
sets ``func`` (called with the parsed args; returns an exit status).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iou-audit",
        description="Annotation-quality audits for FiftyOne datasets: duplicate and degenerate boxes, "
        "multi-annotator agreement, model-vs-label errors, train/val/test leakage.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{mod}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as e:  # OSError: FileNotFoundError, PermissionError, ...
        print(f"iou-audit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
