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


def add_config_arguments(parser: argparse.ArgumentParser, config_class, flags: dict | None = None,
                         defaults: dict | None = None, types: dict | None = None, required: tuple = (),
                         skip: tuple = ()) -> list[str]:
    """Add one option per parameter of an audit's config dataclass (its defaults, help, choices).

    ``flags`` renames an option (``{"label_field": "--field"}``; a boolean that defaults to True
    becomes ``--no-<name>`` unless renamed), ``defaults`` overrides a CLI default, ``types`` gives a
    parser for a value, ``required`` marks options the user must give. Returns the parameter names
    added, for :func:`config_values`.
    """
    import dataclasses

    flags, defaults, types = flags or {}, defaults or {}, types or {}
    added = []
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        if f.name in skip or not meta or not meta.get("cli", True):
            continue
        default = defaults.get(f.name, f.default)
        flag = flags.get(f.name) or "--" + f.name.replace("_", "-")
        help_text = meta.get("help", "")
        kind = meta.get("kind")
        if isinstance(f.default, bool):
            if f.default:
                flag = flags.get(f.name) or "--no-" + f.name.replace("_", "-")
                parser.add_argument(flag, dest=f.name, action="store_false", help=f"turn off: {help_text}")
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        else:
            kwargs = {"dest": f.name, "default": default, "required": f.name in required}
            if f.name in types:
                kwargs["type"] = types[f.name]
            elif kind in ("fields", "names"):
                kwargs["nargs"] = "+"
            elif meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            elif isinstance(f.default, int) or (meta.get("low") is not None and f.type in ("int", "int | None")):
                kwargs["type"] = int
            elif isinstance(f.default, float) or meta.get("low") is not None:
                kwargs["type"] = float
            shown = "" if default is None or f.name in required else f" (default {default})"
            parser.add_argument(flag, help=help_text + shown, **kwargs)
        added.append(f.name)
    parser.set_defaults(_config_options=added)
    return added


def config_values(args: argparse.Namespace) -> dict:
    """``{parameter: value}`` of the options :func:`add_config_arguments` added."""
    return {name: getattr(args, name) for name in getattr(args, "_config_options", [])}


def add_keep_parts_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--keep-parts [N]``: the library's ``keep_parts`` (absent: False; bare: True, parts of
    ``DEFAULT_PART_SAMPLES``; N: parts of at most N samples), so ``iou-audit rerun-changed`` can later
    recompute only the parts holding changed samples."""
    from iou_audit.shards.plain import DEFAULT_PART_SAMPLES, part_size_of

    def samples_per_part(text: str) -> int:
        try:
            return part_size_of(int(text))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parser.add_argument("--keep-parts", nargs="?", const=True, default=False, type=samples_per_part, metavar="N",
                        help="keep the run's parts (of at most N samples; bare: "
                        f"{DEFAULT_PART_SAMPLES}) so `iou-audit rerun-changed` recomputes only the parts "
                        "holding changed samples; needs the run to be saved")


def print_kept_parts(samples, dataset_name: str, audit_key: str) -> None:
    """Say how many parts the run ``audit_key`` kept and the command that re-runs its changed samples."""
    from iou_audit.shards import list_plans

    plans = list_plans(samples, audit_key)
    n_parts = len(plans[0]["shards"]) if plans else 0
    print(f"kept {n_parts} parts; after edits: iou-audit rerun-changed -d {dataset_name} --audit-key {audit_key}")
