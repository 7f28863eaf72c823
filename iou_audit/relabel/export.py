"""Export the relabel queue with FiftyOne's own exporters (COCO, CVAT image, YOLOv5).

The chosen samples, all their labels of the selection's field, and for each flagged label the
reason it is in the queue (label attribute ``relabel_reason`` where the format carries attributes:
COCO annotations, CVAT ``<attribute>``; YOLO has none), plus ``relabel_queue.json`` listing every
flagged label with its sample, class, box, finding tags and reason. Every path is checked before
writing (:mod:`iou_audit.relabel.paths`): nothing is written outside the chosen directory.
"""
from __future__ import annotations

import json
import os

from iou_audit.relabel import paths
from iou_audit.relabel.selection import REASON_ATTR, Selection, reason_view

#: format name -> (fiftyone.types class name, default labels path, default media path)
FORMATS = {
    "coco": ("COCODetectionDataset", "labels.json", "data"),
    "cvat": ("CVATImageDataset", "labels.xml", "data"),
    "yolo": ("YOLOv5Dataset", None, None),  # images/<split>/, labels/<split>/, dataset.yaml
}
QUEUE_FILE = "relabel_queue.json"


def export_relabel_queue(
    selection: Selection,
    export_dir,
    format: str = "coco",
    export_media: bool = True,
    labels_path: str | None = None,
    only_flagged: bool = False,
    split: str = "val",
) -> dict:
    """Write the selection to ``export_dir`` in ``format`` (``coco`` | ``cvat`` | ``yolo``).

    ``export_media``: copy the images into the directory (False: labels only, images referenced by
    file name). ``labels_path``: a path relative to ``export_dir`` (default per format).
    ``only_flagged``: export only the flagged labels (default: every label of the chosen samples,
    so the annotator sees the whole image). Returns ``{"export_dir", "format", "n_samples",
    "n_labels", "files"}`` (files relative to ``export_dir``).
    """
    import fiftyone as fo

    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    type_name, default_labels, default_data = FORMATS[format]
    root = paths.export_root(export_dir)
    paths.check_no_escape(root)
    kwargs: dict = {"export_dir": str(root), "label_field": selection.field, "export_media": bool(export_media)}
    if format == "yolo":
        if labels_path is not None:
            raise ValueError("labels_path is not used by the yolo format (it writes labels/<split>/)")
        for sub in ("images", "labels", "dataset.yaml"):
            paths.inside(root, sub, "yolo output")
        kwargs["split"] = split
    else:
        kwargs["labels_path"] = str(paths.inside(root, labels_path or default_labels, "labels_path"))
        if export_media:
            kwargs["data_path"] = str(paths.inside(root, default_data, "media directory"))
    if format == "coco":
        kwargs["extra_attrs"] = True
    view = reason_view(selection, only_flagged=only_flagged)
    if format == "yolo":  # class index = position in the sorted classes of the exported labels
        kwargs["classes"] = sorted(view.distinct(f"{selection.list_path}.label"))
    before = _files(root)
    view.export(dataset_type=getattr(fo.types, type_name), **kwargs)
    root.mkdir(parents=True, exist_ok=True)
    queue = queue_rows(selection)
    queue_path = paths.inside(root, QUEUE_FILE, "queue file")
    queue_path.write_text(json.dumps(queue, indent=1))
    paths.check_no_escape(root)
    written = sorted(_files(root) - before | {QUEUE_FILE})
    n_labels = len(selection) if only_flagged else view.count(f"{selection.list_path}")
    return {"export_dir": str(root), "format": format, "n_samples": len(selection.samples),
            "n_labels": int(n_labels), "n_flagged": len(selection), "files": written}


def queue_rows(selection: Selection) -> list[dict]:
    """One dict per flagged label: sample_id, filepath, label_id, label, bounding_box (relative
    xywh, or None), tags, reason -- the ``relabel_queue.json`` content."""
    lp = selection.list_path
    flagged = set(selection.label_ids)
    has_box = lp.endswith(".detections")
    sids, fps, ids, labels, tags = selection.samples.values(["id", "filepath", f"{lp}.id", f"{lp}.label", f"{lp}.tags"])
    boxes = selection.samples.values(f"{lp}.bounding_box") if has_box else [None] * len(sids)
    rows = []
    for sid, fp, i_s, l_s, b_s, t_s in zip(sids, fps, ids, labels, boxes, tags):
        n = len(i_s or [])
        for lid, lab, box, tg in zip(i_s or [], l_s or [None] * n, b_s or [None] * n, t_s or [None] * n):
            if lid in flagged:
                rows.append({"sample_id": sid, "filepath": fp, "field": selection.field, "label_id": lid,
                             "label": lab, "bounding_box": box, "tags": list(tg or []),
                             REASON_ATTR: selection.reasons.get(lid)})
    return rows


def _files(root) -> set[str]:
    if not root.exists():
        return set()
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}
