"""Read a Detections or Polylines field of any view into a :class:`LabelTable` in bulk.

One ``values()`` aggregation per batch fetches every column; masks are fetched only when asked
(``masks="auto"``: when any label of the view has one). Bad geometry is kept and reported by
:func:`iou_audit.table.validate_table`, never silently dropped, so audits can report it.
"""
from __future__ import annotations

import os
from itertools import chain
from typing import Iterator, Sequence

import numpy as np

from iou_audit.table.model import LabelTable

LIST_KEYS = {"Detections": ("detections", "detections"), "Polylines": ("polylines", "polylines")}


def check_label_field(samples, field: str) -> tuple[str, str]:
    """Validate ``field`` and return ``(label_type, list_path)``, e.g. ``("detections", "gt.detections")``.

    Raises NotImplementedError for video (frame-level) fields and ValueError for a missing field
    or one that is not Detections/Polylines.
    """
    import fiftyone as fo

    if not isinstance(field, str) or not field:
        raise ValueError(f"label field must be a non-empty string, got {field!r}")
    if samples.media_type in ("video", "group") or field.startswith("frames."):
        raise NotImplementedError(
            f"video and grouped datasets are not supported yet (field {field!r} of "
            f"{samples._root_dataset.name!r}, media type {samples.media_type!r})"
        )
    ftype = samples.get_field(field)
    if ftype is None:
        fields = sorted(samples.get_field_schema(embedded_doc_type=(fo.Detections, fo.Polylines)))
        raise ValueError(
            f"field {field!r} does not exist in {samples._root_dataset.name!r}; "
            f"Detections/Polylines fields: {fields}"
        )
    doc_type = getattr(ftype, "document_type", None)
    name = getattr(doc_type, "__name__", None)
    if not isinstance(ftype, fo.EmbeddedDocumentField) or name not in LIST_KEYS:
        raise ValueError(
            f"field {field!r} holds {name or type(ftype).__name__}, expected Detections or Polylines"
        )
    label_type, key = LIST_KEYS[name]
    return label_type, f"{field}.{key}"


def resolve_masks(samples, list_path: str, label_type: str, masks) -> bool:
    """Whether masks will be read: ``"auto"`` = when any label in the view has a mask."""
    if masks == "auto":
        if label_type != "detections":
            return False
        return bool(samples.count(f"{list_path}.mask") or samples.count(f"{list_path}.mask_path"))
    if masks not in (True, False):
        raise ValueError(f"masks must be 'auto', True or False, got {masks!r}")
    return bool(masks) and label_type == "detections"


def read_label_table(
    samples,
    field: str,
    attributes: Sequence[str] = (),
    masks="auto",
    compute_metadata: bool = True,
) -> LabelTable:
    """Read one Detections/Polylines field of a collection into a :class:`LabelTable`.

    Args:
        samples: a FiftyOne dataset or view (its sample order is the table's order).
        field: the label field, e.g. ``"ground_truth"``.
        attributes: extra label attributes to read into ``table.attributes``.
        masks: ``"auto"`` (read when any label has ``mask``/``mask_path``), True or False.
        compute_metadata: compute missing image sizes when the media file exists.

    Example:
        >>> t = read_label_table(dataset, "ground_truth")           # doctest: +SKIP
        >>> t.box[t.offsets[0]:t.offsets[1]]                        # doctest: +SKIP
        array([[0.1, 0.2, 0.4, 0.6]])
    """
    label_type, list_path = check_label_field(samples, field)
    with_masks = resolve_masks(samples, list_path, label_type, masks)
    return _read(samples, field, label_type, list_path, tuple(attributes), with_masks, compute_metadata)


def iter_label_tables(
    samples,
    field: str,
    batch_size: int = 1000,
    attributes: Sequence[str] = (),
    masks="auto",
    compute_metadata: bool = True,
) -> Iterator[LabelTable]:
    """Yield tables for consecutive batches of ``batch_size`` samples (memory bounded by the batch).

    Example:
        >>> sum(len(t) for t in iter_label_tables(dataset, "gt", batch_size=100))  # doctest: +SKIP
        4887
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    label_type, list_path = check_label_field(samples, field)  # errors now, not at first next()
    with_masks = resolve_masks(samples, list_path, label_type, masks)
    ids = samples.values("id")
    size = int(batch_size)

    def batches() -> Iterator[LabelTable]:
        for start in range(0, len(ids), size):
            batch = samples.select(ids[start : start + size], ordered=True)
            yield _read(batch, field, label_type, list_path, tuple(attributes), with_masks, compute_metadata)

    return batches()


def _read(samples, field, label_type, list_path, attributes, with_masks, compute_metadata) -> LabelTable:
    geometry = ["bounding_box"] if label_type == "detections" else ["points"]
    if with_masks:
        geometry += ["mask", "mask_path"]
    label_keys = ["id", "label", "confidence", "iscrowd", "tags", *geometry, *attributes]
    sample_paths = ["id", "filepath", "metadata.width", "metadata.height"]
    columns = samples.values(sample_paths + [f"{list_path}.{k}" for k in label_keys])
    sample_ids, filepaths, widths, heights = columns[:4]
    per_label = dict(zip(label_keys, columns[4:]))

    counts = np.fromiter((len(x) if x else 0 for x in per_label["id"]), np.int64, len(sample_ids))
    offsets = np.zeros(len(sample_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = {k: _flatten(v) for k, v in per_label.items()}
    n = int(offsets[-1])

    width = np.array(widths, dtype=np.float64)
    height = np.array(heights, dtype=np.float64)
    filepaths = np.asarray(filepaths, dtype=object)
    sample_ids = np.asarray(sample_ids, dtype=object)
    if compute_metadata:
        _fill_missing_sizes(samples, sample_ids, filepaths, width, height, counts)

    polygons = None
    if label_type == "detections":
        box = _xywh_boxes(flat["bounding_box"], n)
    else:
        polygons = [_rings(p) for p in flat["points"]]
        box = _ring_bounds(polygons)

    table = LabelTable(
        field=field,
        label_type=label_type,
        sample_ids=sample_ids,
        filepaths=filepaths,
        width=width,
        height=height,
        offsets=offsets,
        sample_index=np.repeat(np.arange(len(sample_ids), dtype=np.int64), counts),
        label_id=np.asarray(flat["id"], dtype=object).reshape(n),
        label=np.array(["" if v is None else str(v) for v in flat["label"]], dtype=object).reshape(n),
        box=box,
        confidence=np.array(flat["confidence"], dtype=np.float64).reshape(n),
        iscrowd=np.array([_truthy(v) for v in flat["iscrowd"]], dtype=bool).reshape(n),
        polygons=polygons,
        attributes={a: _attribute_array(flat[a]) for a in attributes},
        tags=[list(t) if t else [] for t in flat["tags"]],
    )
    if with_masks:
        table.masks = [_mask(m, p, table, i) for i, (m, p) in enumerate(zip(flat["mask"], flat["mask_path"]))]
    return table


def _flatten(per_sample: list) -> list:
    return list(chain.from_iterable(x for x in per_sample if x))


def _truthy(v) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and np.isnan(v):
        return False
    return bool(v)


def _attribute_array(values: list) -> np.ndarray:
    """Numeric attributes become float64 (None -> NaN); anything else stays an object array."""
    def numeric(v) -> bool:
        return v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)))

    if values and all(numeric(v) for v in values):
        return np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _xywh_boxes(boxes: list, n: int) -> np.ndarray:
    """FiftyOne ``[x, y, w, h]`` lists -> (n, 4) xyxy; missing or malformed boxes become NaN rows."""
    nan4 = [np.nan] * 4
    rows = [b if b is not None and len(b) == 4 else nan4 for b in boxes]
    out = np.array(rows, dtype=np.float64).reshape(n, 4)
    out[:, 2:] += out[:, :2]
    return out


def _rings(points) -> list[np.ndarray]:
    if not points:
        return []
    return [np.array(shape, dtype=np.float64).reshape(-1, 2) for shape in points if shape is not None]


def _ring_bounds(polygons: list[list[np.ndarray]]) -> np.ndarray:
    out = np.full((len(polygons), 4), np.nan)
    for i, rings in enumerate(polygons):
        if rings and sum(len(r) for r in rings):
            pts = np.concatenate(rings)
            out[i, :2] = pts.min(axis=0)
            out[i, 2:] = pts.max(axis=0)
    return out


def _mask(mask, mask_path, table: LabelTable, row: int):
    if mask is None and mask_path:
        if not os.path.isfile(mask_path):
            sid = table.sample_ids[table.sample_index[row]]
            raise ValueError(
                f"field {table.field!r}, sample {sid}, label {table.label_id[row]}: "
                f"mask_path {mask_path!r} does not exist"
            )
        from PIL import Image

        with Image.open(mask_path) as img:
            mask = np.asarray(img)
        if mask.ndim == 3:  # RGB(A) mask images: any non-zero channel is foreground
            mask = mask.any(axis=2)
    if mask is None:
        return None
    mask = np.asarray(mask)
    return mask.astype(bool) if mask.ndim == 2 else mask


def _fill_missing_sizes(samples, sample_ids, filepaths, width, height, counts) -> None:
    """Compute metadata in bulk for samples with labels, no size, and media on disk."""
    missing = ~(np.isfinite(width) & np.isfinite(height)) & (counts > 0)
    if not missing.any():
        return
    idx = [i for i in np.flatnonzero(missing) if filepaths[i] and os.path.isfile(filepaths[i])]
    if not idx:
        return
    view = samples._root_dataset.select(list(sample_ids[idx]))
    view.compute_metadata(progress=False)
    ids, ws, hs = view.values(["id", "metadata.width", "metadata.height"])
    by_id = {i: (w, h) for i, w, h in zip(ids, ws, hs)}
    for i in idx:
        w, h = by_id.get(sample_ids[i], (None, None))
        width[i] = np.nan if w is None else w
        height[i] = np.nan if h is None else h
