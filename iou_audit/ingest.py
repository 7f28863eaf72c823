"""Import a labelled image directory into a FiftyOne dataset with FiftyOne's own importers.

Formats (auto-detected from the layout when ``format`` is None):

- ``voc``: ``JPEGImages/`` (or ``data/``, ``images/``) plus one or more ``Annotations*/`` folders of
  VOC XML; ``ImageSets/Main/{train,val,test}.txt`` give the split.
- ``coco``: one or more COCO JSON files (``{"images", "annotations"}``) next to an image folder.
  A file whose name says train/val/test is a split; other files over the same images are
  annotators / label sets and become separate label fields.
- ``yolo``: a YOLOv5 ``data.yaml``/``dataset.yaml`` (its train/val/test entries are the splits), or
  a YOLOv4 layout (``obj.names`` + ``data/``).
- ``cvat``: CVAT for images XML files (root ``<annotations>``), one label field per file.

Split folders (``train/``, ``val/``, ``test/`` each holding one of the layouts above) are ingested one
by one and recorded the same way as split files. Splits land in a ``split`` string field and/or
sample tags, per ``splits=``. Nothing here parses an annotation format by hand: detection only looks
at file names and the root element / top-level keys, FiftyOne's importers do the reading.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import xml.etree.ElementTree as ET

FORMATS = ("voc", "coco", "yolo", "cvat")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
SPLIT_MODES = ("field", "tags", "both", "none")
IMAGE_DIRS = ("JPEGImages", "data", "images", "Images", "imgs")
DEFAULT_FIELD = "ground_truth"
BCCD_SOURCE = "https://github.com/Shenggan/BCCD_Dataset (folder BCCD/)"


@dataclasses.dataclass
class Source:
    """One importer call: a FiftyOne dataset type plus its paths and the label field it fills."""

    format: str
    dataset_type: object
    label_field: str
    data_path: str | None = None
    labels_path: str | None = None
    split: str | None = None
    kwargs: dict = dataclasses.field(default_factory=dict)


def _xml_root_tag(path: pathlib.Path) -> str | None:
    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            return elem.tag
    except ET.ParseError:
        return None
    return None


def _image_dir(directory: pathlib.Path) -> pathlib.Path | None:
    for name in IMAGE_DIRS:
        if (directory / name).is_dir():
            return directory / name
    return None


def _field_name(stem: str, prefix: str) -> str:
    """``Annotations`` -> ground_truth, ``Annotations_r2`` -> r2, ``annotator_b.json`` -> annotator_b."""
    if stem.lower() in ("labels", "annotations", prefix.lower()):  # FiftyOne's / the format's default name
        return DEFAULT_FIELD
    rest = stem[len(prefix):].strip("_-. ") if stem.lower().startswith(prefix.lower()) else stem
    return rest.replace("-", "_").replace(" ", "_") or DEFAULT_FIELD


def _split_of(stem: str) -> str | None:
    for token in stem.lower().replace("-", "_").split("_"):
        token = token.rstrip("0123456789")
        if token in SPLIT_NAMES:
            return SPLIT_NAMES[token]
    return None


def _voc_sources(directory: pathlib.Path) -> list[Source]:
    import fiftyone.types as fot

    images = _image_dir(directory)
    ann_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and p.name.lower().startswith("annotations")
                      and any(p.glob("*.xml")))
    if images is None or not ann_dirs:
        return []
    return [Source("voc", fot.VOCDetectionDataset, _field_name(d.name, "annotations"),
                   str(images), str(d),
                   kwargs={"include_all_data": True}) for d in ann_dirs]


def _cvat_sources(directory: pathlib.Path) -> list[Source]:
    import fiftyone.types as fot

    images = _image_dir(directory)
    xmls = sorted(p for p in directory.glob("*.xml") if _xml_root_tag(p) == "annotations")
    if images is None or not xmls:
        return []
    return [Source("cvat", fot.CVATImageDataset, _field_name(x.stem, "annotations"),
                   str(images), str(x))
            for x in xmls]


def _coco_label_type(path: pathlib.Path) -> str | None:
    """``"segmentations"`` (boxes + instance masks) when any annotation has a segmentation,
    ``"detections"`` otherwise, None when the file is not COCO (no ``images``/``annotations``)."""
    try:
        with open(path) as f:
            head = json.load(f)
    except (ValueError, OSError):
        return None
    if not (isinstance(head, dict) and "images" in head and "annotations" in head):
        return None
    return "segmentations" if any(a.get("segmentation") for a in head["annotations"]) else "detections"


def _coco_sources(directory: pathlib.Path) -> list[Source]:
    import fiftyone.types as fot

    candidates = sorted(directory.glob("*.json")) + sorted(directory.glob("annotations/*.json"))
    files = {p: _coco_label_type(p) for p in candidates}
    files = {p: t for p, t in files.items() if t}
    if not files:
        return []
    images = _image_dir(directory)
    sources = []
    for path, label_type in files.items():
        split = _split_of(path.stem)
        field = DEFAULT_FIELD if split else _field_name(path.stem, "instances")
        sources.append(Source("coco", fot.COCODetectionDataset, field, str(images) if images else None,
                              str(path), split=split, kwargs={"label_types": label_type}))
    return sources


def _yolo_sources(directory: pathlib.Path) -> list[Source]:
    import fiftyone.types as fot
    import yaml

    for name in ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml"):
        yaml_path = directory / name
        if yaml_path.is_file():
            spec = yaml.safe_load(yaml_path.read_text()) or {}
            splits = [s for s in ("train", "val", "test") if spec.get(s)]
            return [Source("yolo", fot.YOLOv5Dataset, DEFAULT_FIELD, split=s,
                           kwargs={"yaml_path": str(yaml_path), "split": s}) for s in splits]
    if (directory / "obj.names").is_file() and (directory / "data").is_dir():
        return [Source("yolo", fot.YOLOv4Dataset, DEFAULT_FIELD)]
    return []


_DETECTORS = {"voc": _voc_sources, "coco": _coco_sources, "yolo": _yolo_sources, "cvat": _cvat_sources}


def detect_sources(directory: str | os.PathLike, format: str | None = None) -> list[Source]:
    """The importer calls needed for ``directory``, split folders included.

    Example (a VOC layout, as in ``../shared/data/bccd``; two annotation folders -> two fields):
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for d in ("JPEGImages", "Annotations", "Annotations_r2"):
        ...     (root / d).mkdir()
        ...     _ = (root / d / "a.xml").write_text("<annotation/>")
        >>> [(s.format, s.label_field, s.split) for s in detect_sources(root)]
        [('voc', 'ground_truth', None), ('voc', 'r2', None)]

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: unknown ``format``, or no known layout found (the message lists what was looked for).
    """
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS} or None (auto), got {format!r}")
    order = [format] if format else list(FORMATS)
    for fmt in order:
        sources = _DETECTORS[fmt](root)
        if sources:
            return sources
    split_dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() in SPLIT_NAMES]
    sources = []
    for split_dir in split_dirs:
        for fmt in order:
            found = _DETECTORS[fmt](split_dir)
            if found:
                for s in found:
                    s.split = SPLIT_NAMES[split_dir.name.lower()]
                sources.extend(found)
                break
    if not sources:
        raise ValueError(
            f"no {format or '/'.join(FORMATS)} layout found in {root}: expected VOC (JPEGImages/ + "
            "Annotations*/ *.xml), COCO (*.json with images+annotations), YOLO (data.yaml or obj.names + "
            "data/), CVAT (XML with root <annotations> + images/), or train/val/test folders of these")
    return sources


def voc_split_files(directory: str | os.PathLike) -> dict[str, str]:
    """Image id -> split from VOC ``ImageSets/Main/{train,val,test}.txt`` (``trainval`` and the
    per-class ``<class>_train.txt`` files repeat those lists and are ignored).

    Raises:
        ValueError: an image id is listed in two different split files.
    """
    main = pathlib.Path(directory) / "ImageSets" / "Main"
    splits: dict[str, str] = {}
    for name in ("train", "val", "test"):
        path = main / f"{name}.txt"
        if not path.is_file():
            continue
        for image_id in path.read_text().split():
            if splits.setdefault(image_id, name) != name:
                raise ValueError(f"{path}: image {image_id!r} is also listed in {splits[image_id]}.txt")
    return splits


def _record_splits(dataset, samples_split: dict[str, str], mode: str) -> None:
    """Write ``split`` (field) and/or a tag per sample, in bulk, keyed by sample id."""
    if not samples_split or mode == "none":
        return
    if mode in ("field", "both"):
        if not dataset.has_sample_field("split"):
            dataset.add_sample_field("split", _string_field())
        dataset.set_values("split", samples_split, key_field="id")
    if mode in ("tags", "both"):
        for split in sorted(set(samples_split.values())):
            ids = [i for i, s in samples_split.items() if s == split]
            dataset.select(ids).tag_samples(split)


def _string_field():
    import fiftyone.core.fields as fof

    return fof.StringField


def ingest(
    directory: str | os.PathLike,
    name: str | None = None,
    format: str | None = None,
    splits: str = "both",
    persistent: bool = False,
    overwrite: bool = False,
    compute_metadata: bool = True,
    progress: bool | None = None,
):
    """Import ``directory`` into a new FiftyOne dataset ``name`` with FiftyOne's importers.

    Several annotation sources over the same images (``Annotations/`` and ``Annotations_r2/``; two
    COCO files) become several label fields of one dataset, merged on ``filepath``. Splits (VOC
    ImageSets, split-named COCO files, YOLO yaml splits, split folders) go to a ``split`` field
    and/or sample tags.

    Args:
        directory: the dataset folder.
        name: dataset name (FiftyOne picks one when None).
        format: one of ``FORMATS`` or None to detect it from the layout.
        splits: ``"field"``, ``"tags"``, ``"both"`` or ``"none"``.
        persistent: keep the dataset after the process exits.
        overwrite: delete an existing dataset of that name first (otherwise an existing name is an error).
        compute_metadata: read image sizes (needed for pixel-based metrics).
        progress: FiftyOne progress bars (None = FiftyOne's default).

    Returns:
        the ``fo.Dataset``.

    Example:
        >>> ds = ingest("../shared/data/bccd", "bccd")                      # doctest: +SKIP
        >>> ds.count(), ds.count_values("split")                            # doctest: +SKIP
        (364, {'train': 205, 'val': 87, 'test': 72})
    """
    import fiftyone as fo

    if splits not in SPLIT_MODES:
        raise ValueError(f"splits must be one of {SPLIT_MODES}, got {splits!r}")
    sources = detect_sources(directory, format)
    if name is not None and fo.dataset_exists(name):
        if not overwrite:
            raise ValueError(f"dataset {name!r} already exists (pass overwrite=True to replace it)")
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    try:
        _import_sources(dataset, sources, progress)
        split_of = {}
        if any(s.split for s in sources):
            split_of = _splits_from_sources(dataset, sources)
        elif sources[0].format == "voc":
            by_stem = voc_split_files(directory)
            ids, paths = dataset.values(["id", "filepath"])
            split_of = {i: by_stem[pathlib.Path(p).stem] for i, p in zip(ids, paths)
                        if pathlib.Path(p).stem in by_stem}
        _record_splits(dataset, split_of, splits)
        if compute_metadata:
            dataset.compute_metadata(progress=progress)
        dataset.info["iou_audit_ingest"] = {"directory": str(pathlib.Path(directory).resolve()),
                                            "format": sources[0].format,
                                            "label_fields": sorted({s.label_field for s in sources})}
        dataset.save()
        dataset.persistent = persistent
    except Exception:
        dataset.delete()
        raise
    return dataset


def _import_sources(dataset, sources: list[Source], progress) -> None:
    """First source adds samples; later ones merge into them on ``filepath`` (same image = same sample)."""
    for i, source in enumerate(sources):
        kwargs = dict(dataset_type=source.dataset_type, label_field=source.label_field, progress=progress,
                      **source.kwargs)
        if source.data_path is not None:
            kwargs["data_path"] = source.data_path
        if source.labels_path is not None:
            kwargs["labels_path"] = source.labels_path
        if source.format == "yolo" and "yaml_path" not in source.kwargs:
            kwargs["dataset_dir"] = str(pathlib.Path(source.data_path or ".").parent)
        tags = [f"__split__{source.split}"] if source.split else None
        if i == 0:
            dataset.add_dir(tags=tags, **kwargs)
        else:
            dataset.merge_dir(tags=tags, key_field="filepath", **kwargs)


def _splits_from_sources(dataset, sources) -> dict[str, str]:
    """Turn the temporary ``__split__<name>`` tags added on import into {sample_id: split}."""
    split_of: dict[str, str] = {}
    for split in sorted({s.split for s in sources if s.split}):
        tag = f"__split__{split}"
        for sample_id in dataset.match_tags(tag).values("id"):
            if split_of.setdefault(sample_id, split) != split:
                raise ValueError(f"sample {sample_id} appears in splits {split_of[sample_id]} and {split}")
        dataset.untag_samples(tag)
    return split_of


def bccd_directory() -> pathlib.Path:
    """Where BCCD is expected: ``$IOU_AUDIT_BCCD`` or ``../shared/data/bccd`` beside the repo."""
    env = os.environ.get("IOU_AUDIT_BCCD")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"


def ingest_bccd(name: str = "bccd", persistent: bool = True, overwrite: bool = False, progress=None):
    """BCCD (364 blood-cell images, VOC, official train/val/test split) as a dataset; reuses an
    existing dataset of that name unless ``overwrite``.

    Raises:
        FileNotFoundError: the BCCD folder is absent; the message says where to get it.
    """
    import fiftyone as fo

    if fo.dataset_exists(name) and not overwrite:
        return fo.load_dataset(name)
    directory = bccd_directory()
    if not (directory / "Annotations").is_dir():
        raise FileNotFoundError(
            f"the demo needs the BCCD dataset at {directory} (or set IOU_AUDIT_BCCD): get it from "
            f"{BCCD_SOURCE}, e.g. `git clone https://github.com/Shenggan/BCCD_Dataset` and point "
            "IOU_AUDIT_BCCD at its BCCD/ folder")
    return ingest(directory, name, format="voc", persistent=persistent, overwrite=overwrite, progress=progress)
