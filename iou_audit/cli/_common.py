"""Helpers shared by the ``iou-audit`` subcommands (not a subcommand: the name starts with ``_``)."""
from __future__ import annotations

import argparse

import pandas as pd


def add_dataset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", "-d", required=True,
                        help="name of the FiftyOne dataset (see `fiftyone datasets list`)")


def load_dataset(name: str):
    """The dataset ``name``; a ValueError listing the existing datasets when it does not exist."""
    import fiftyone as fo

    if not fo.dataset_exists(name):
        existing = fo.list_datasets()
        raise ValueError(f"no dataset named {name!r}; existing datasets: {existing or 'none'}")
    return fo.load_dataset(name)


def load_view(dataset, view_name: str | None):
    """The dataset itself, or one of its saved views by name."""
    if not view_name:
        return dataset
    if not dataset.has_saved_view(view_name):
        raise ValueError(f"dataset {dataset.name!r} has no saved view {view_name!r}; saved views: "
                         f"{dataset.list_saved_views() or 'none'}")
    return dataset.load_saved_view(view_name)


def print_table(frame: pd.DataFrame, title: str | None = None) -> None:
    """Print a DataFrame as a plain aligned table (``(none)`` when empty)."""
    if title:
        print(title)
    if frame is None or not len(frame):
        print("  (none)")
        return
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_colwidth", 60):
        print(frame.to_string())
