"""``iou-audit app --dataset NAME``: open the FiftyOne App on a dataset with the iou-audit plugin loaded."""
from __future__ import annotations

import argparse
import os
import pathlib

from iou_audit.cli._common import add_dataset_argument, load_dataset, load_view

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]  # holds fiftyone.yml (editable install)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "app", help="open the FiftyOne App on a dataset with the iou-audit plugin",
        description="Launch the FiftyOne App on a dataset. FIFTYONE_PLUGINS_DIR is set to the iou-audit "
        "repository when unset, so the audit operators and the review panel are available. Blocks "
        "until interrupted (Ctrl-C).")
    add_dataset_argument(p)
    p.add_argument("--view", default=None, help="open this saved view of the dataset")
    p.add_argument("--remote", action="store_true",
                   help="do not open a browser: serve the App for a browser on another machine "
                        "(forward the port, e.g. ssh -N -L 5151:127.0.0.1:5151 host)")
    p.add_argument("--port", type=int, default=None, help="App port (default: FiftyOne's, 5151)")
    p.add_argument("--address", default=None,
                   help="address to bind (default: FiftyOne's, localhost; 0.0.0.0 for all interfaces)")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="return right after launching instead of blocking")
    p.set_defaults(func=run)


def plugin_dir() -> str:
    """Set FIFTYONE_PLUGINS_DIR (and FiftyOne's loaded config) to the repo when unset; return it."""
    import fiftyone as fo

    current = os.environ.get("FIFTYONE_PLUGINS_DIR") or fo.config.plugins_dir
    if not current:
        if not (REPO_ROOT / "fiftyone.yml").is_file():
            raise FileNotFoundError(f"fiftyone.yml not found in {REPO_ROOT}; set FIFTYONE_PLUGINS_DIR to the "
                                    "iou-audit repository")
        current = str(REPO_ROOT)
        os.environ["FIFTYONE_PLUGINS_DIR"] = current  # inherited by the App server process
    fo.config.plugins_dir = current
    return current


def prepare(args: argparse.Namespace):
    """Everything before the launch: plugin dir, dataset/view, launch keyword arguments."""
    plugins = plugin_dir()
    samples = load_view(load_dataset(args.dataset), args.view)
    kwargs = {"remote": args.remote}
    if args.port is not None:
        kwargs["port"] = args.port
    if args.address is not None:
        kwargs["address"] = args.address
    return samples, kwargs, plugins


def run(args: argparse.Namespace) -> int:
    import fiftyone as fo

    samples, kwargs, plugins = prepare(args)
    print(f"opening {args.dataset!r} in the FiftyOne App (plugins from {plugins})")
    session = fo.launch_app(samples, **kwargs)
    if args.wait:
        session.wait()
    return 0
