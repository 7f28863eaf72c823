"""The two clean label sources of the label-error benchmark, read once per process.

- ``bccd``: the real BCCD labels (364 images, classes RBC / WBC / Platelets), read with FiftyOne's VOC
  importer through :func:`iou_audit.ingest.ingest` from ``../shared/data/bccd``;
- ``coco``: the 100 COCO val2014 reference images (``../shared/data/coco-val2014-100``), non-crowd
  labels only, classes by category name; each category's supercategory comes from the JSON's
  ``categories``.

Each source is a :class:`CleanSource`: flat arrays of relative ``xyxy`` boxes and class names with
per-image offsets, the image sizes, and the look-alike table used for class swaps (see
:data:`BCCD_LOOKALIKES` and :func:`coco_lookalikes`).
"""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(os.environ.get("IOU_AUDIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SOURCES = ("bccd", "coco")
COCO_DIR = "coco-val2014-100"
COCO_GT = "instances_val2014_100.json"

#: BCCD look-alikes (a class swap replaces a class by one of these). In stained smears WBCs and
#: RBCs are both whole round cells of overlapping size, so an annotator who mistakes one for the
#: other is plausible both ways; a platelet is a small purple fragment that often lies on or
#: beside an RBC, so a platelet box is mislabelled as the RBC under it. Nothing is swapped to
#: Platelets: no whole cell looks like a fragment.
BCCD_LOOKALIKES = {"RBC": ("WBC",), "WBC": ("RBC",), "Platelets": ("RBC",)}


@dataclass
class CleanSource:
    """Clean labels of one source: per image ``offsets[s]:offsets[s+1]`` rows of ``box``/``label``."""

    name: str
    filepaths: np.ndarray  # (S,) str
    width: np.ndarray  # (S,) pixels
    height: np.ndarray  # (S,) pixels
    offsets: np.ndarray  # (S+1,) int64
    box: np.ndarray  # (L, 4) relative xyxy
    label: np.ndarray  # (L,) str class names
    classes: list  # every class a label or a swap can have (sorted)
    lookalikes: dict  # class -> tuple of look-alike classes (may be empty)

    @property
    def sample_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    @property
    def num_samples(self) -> int:
        return len(self.offsets) - 1


def coco_lookalikes(categories: list[dict]) -> dict:
    """Per category name, the other names of its supercategory (COCO's own grouping).

    Example:
        >>> coco_lookalikes([{"name": "car", "supercategory": "vehicle"}, {"name": "bus", "supercategory": "vehicle"},
        ...                  {"name": "person", "supercategory": "person"}])
        {'car': ('bus',), 'bus': ('car',), 'person': ()}
    """
    groups: dict[str, list] = {}
    for c in categories:
        groups.setdefault(c["supercategory"], []).append(c["name"])
    return {c["name"]: tuple(n for n in groups[c["supercategory"]] if n != c["name"]) for c in categories}


_CACHE: dict[str, CleanSource] = {}


def load_source(name: str) -> CleanSource:
    """The clean labels of ``name`` (``"bccd"`` or ``"coco"``), cached per process."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose from {SOURCES}")
    if name not in _CACHE:
        _CACHE[name] = _load_bccd() if name == "bccd" else _load_coco()
    return _CACHE[name]


def _load_bccd() -> CleanSource:
    from iou_audit.ingest import ingest
    from iou_audit.table import read_label_table

    ds = ingest(DATA / "bccd", splits="none", persistent=False)
    try:
        field = ds.info["iou_audit_ingest"]["label_fields"][0]
        t = read_label_table(ds, field, masks=False)
    finally:
        ds.delete()
    classes = sorted(set(t.label.tolist()))
    return CleanSource("bccd", np.asarray(t.filepaths, object), np.asarray(t.width, float),
                       np.asarray(t.height, float), np.asarray(t.offsets, np.int64), np.asarray(t.box, float),
                       np.asarray(t.label, object), classes, {c: BCCD_LOOKALIKES.get(c, ()) for c in classes})


def _load_coco() -> CleanSource:
    path = DATA / COCO_DIR / COCO_GT
    with open(path) as f:
        d = json.load(f)
    names = {c["id"]: c["name"] for c in d["categories"]}
    images = sorted(d["images"], key=lambda im: im["id"])
    index = {im["id"]: s for s, im in enumerate(images)}
    anns = sorted((a for a in d["annotations"] if not a.get("iscrowd", 0)), key=lambda a: index[a["image_id"]])
    W = np.array([im["width"] for im in images], float)
    H = np.array([im["height"] for im in images], float)
    si = np.array([index[a["image_id"]] for a in anns], np.int64)
    xywh = np.array([a["bbox"] for a in anns], float).reshape(-1, 4)
    box = np.c_[xywh[:, 0] / W[si], xywh[:, 1] / H[si], (xywh[:, 0] + xywh[:, 2]) / W[si],
                (xywh[:, 1] + xywh[:, 3]) / H[si]].clip(0, 1)
    offsets = np.zeros(len(images) + 1, np.int64)
    np.cumsum(np.bincount(si, minlength=len(images)), out=offsets[1:])
    # the reference set ships no images: the samples point at a path that does not exist
    filepaths = np.array([f"/nonexistent/{COCO_DIR}/{im.get('file_name', im['id'])}" for im in images], object)
    return CleanSource("coco", filepaths, W, H, offsets, box, np.array([names[a["category_id"]] for a in anns], object),
                       sorted(names.values()), coco_lookalikes(d["categories"]))
