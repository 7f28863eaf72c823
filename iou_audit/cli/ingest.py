"""``iou-audit ingest DIRECTORY --name NAME``: import a VOC/COCO/YOLO/CVAT directory with FiftyOne."""
from __future__ import annotations

import argparse

import pandas as pd

from iou_audit.cli._common import print_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="import a labelled image directory into a FiftyOne dataset",
        description="Import a directory in any layout FiftyOne imports (VOC, COCO, YOLO, CVAT), "
        "auto-detected unless --format is given. Several annotation files over the same images become "
        "several label fields; split files (VOC ImageSets/Main/*.txt, split-named COCO files, YOLO "
        "yaml splits) or train/val/test folders become a `split` field and/or sample tags.")
    p.add_argument("directory", help="the dataset directory")
    p.add_argument("--name", "-n", required=True, help="name of the FiftyOne dataset to create")
    p.add_argument("--format", "-f", choices=["voc", "coco", "yolo", "cvat"], default=None,
                   help="layout of the directory (default: detect it from the files)")
    p.add_argument("--splits", choices=["field", "tags", "both", "none"], default="both",
                   help="record splits as a `split` field, sample tags, both (default) or not at all")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing dataset of the same name first (default: refuse)")
    p.add_argument("--no-persistent", dest="persistent", action="store_false",
                   help="do not keep the dataset after the command exits (default: persistent)")
    p.add_argument("--no-metadata", dest="compute_metadata", action="store_false",
                   help="skip reading image sizes (pixel-based metrics will need them later)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iou_audit.ingest import ingest

    dataset = ingest(args.directory, args.name, format=args.format, splits=args.splits,
                     persistent=args.persistent, overwrite=args.overwrite,
                     compute_metadata=args.compute_metadata, progress=True)
    info = dataset.info.get("iou_audit_ingest", {})
    rows = [{"label field": f, "type": t, "labels": dataset.count(f"{f}.{t.lower()}")}
            for f, t in _label_fields(dataset)]
    print(f"dataset {dataset.name!r}: {dataset.count()} samples, format {info.get('format')}, "
          f"persistent={dataset.persistent}")
    print_table(pd.DataFrame(rows).set_index("label field") if rows else None, "label fields:")
    if dataset.has_sample_field("split"):
        print_table(pd.Series(dataset.count_values("split"), name="samples").to_frame(), "splits:")
    return 0


def _label_fields(dataset) -> list[tuple[str, str]]:
    """(field, list type name) of every Detections/Polylines/Keypoints field the import created."""
    import fiftyone as fo

    out = []
    for label_type in (fo.Detections, fo.Polylines, fo.Keypoints):
        out += [(f, label_type.__name__) for f in dataset.get_field_schema(embedded_doc_type=label_type)]
    return sorted(out)
