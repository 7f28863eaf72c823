"""Read a Detections or Polylines field of any view into a :class:`LabelTable` in bulk.

One aggregation fetches every column: the view's own pipeline (so filters, sorts and
slices are honoured) followed by a ``$project`` with one ``$map`` per needed label subfield (ids
converted to strings by the server). The raw BSON lists are concatenated into numpy columns; no
per-label FiftyOne object is built (``values()`` converts every box through mongoengine: reading
2,000 samples x 15 boxes took 0.46 s that way, 0.08 s this way). The cyclic garbage collector is
paused while decoding: its scans of the many fresh containers otherwise cost as much as the read.
Masks are fetched only when asked (``masks="auto"``: when any label of the view has one). Bad
geometry is kept and reported by :func:`iou_audit.table.validate_table`, never silently dropped, so
audits can report it.
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from itertools import chain, islice
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
        # one short-circuiting query (stops at the first masked label) instead of two counts
        db_list = samples._handle_db_field(list_path)
        has_mask = {"$elemMatch": {"$or": [{"mask": {"$ne": None}}, {"mask_path": {"$ne": None}}]}}
        found = samples._aggregate(pipeline=[{"$match": {db_list: has_mask}}, {"$limit": 1}, {"$project": {"_id": 1}}])
        return any(True for _ in found)
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

    One aggregation streams the whole view; each batch is the next ``batch_size`` documents of
    its cursor (no per-batch query, no list of sample ids up front: both cost ~0.1 s per 5,000
    samples and field). MongoDB closes a cursor left idle for 10 minutes, so a consumer must not
    spend that long on one batch.

    Example:
        >>> sum(len(t) for t in iter_label_tables(dataset, "gt", batch_size=100))  # doctest: +SKIP
        4887
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    label_type, list_path = check_label_field(samples, field)  # errors now, not at first next()
    with_masks = resolve_masks(samples, list_path, label_type, masks)
    label_keys = _label_keys(label_type, tuple(attributes), with_masks)
    size = int(batch_size)

    def batches() -> Iterator[LabelTable]:
        cursor = samples._aggregate(pipeline=_stages(samples, list_path, label_keys))
        try:
            while True:
                with _gc_paused():
                    docs = list(islice(cursor, size))
                    if not docs:
                        return
                    table = _to_table(samples, docs, field, label_type, list_path, label_keys, tuple(attributes),
                                      with_masks, compute_metadata)
                yield table
        finally:
            cursor.close()

    return batches()


def _label_keys(label_type: str, attributes: tuple, with_masks: bool) -> list[str]:
    geometry = ["bounding_box"] if label_type == "detections" else ["points"]
    if with_masks:
        geometry += ["mask", "mask_path"]
    return ["id", "label", "confidence", "iscrowd", "tags", *geometry, *attributes]


def _read(samples, field, label_type, list_path, attributes, with_masks, compute_metadata) -> LabelTable:
    label_keys = _label_keys(label_type, attributes, with_masks)
    with _gc_paused():
        docs = list(samples._aggregate(pipeline=_stages(samples, list_path, label_keys)))
        return _to_table(samples, docs, field, label_type, list_path, label_keys, attributes, with_masks,
                         compute_metadata)


def _to_table(samples, docs, field, label_type, list_path, label_keys, attributes, with_masks,
              compute_metadata) -> LabelTable:
    sample_ids = _object_array([d["sid"] for d in docs])
    filepaths = np.array([d.get("filepath") or "" for d in docs], dtype=object)
    width = np.array([d.get("w") for d in docs], dtype=np.float64)
    height = np.array([d.get("h") for d in docs], dtype=np.float64)
    counts = np.fromiter((len(d["c0"]) for d in docs), np.int64, len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    # column k of every sample, concatenated in sample order (C-level chain, no per-label rows)
    col = {key: list(chain.from_iterable(d[f"c{k}"] for d in docs)) for k, key in enumerate(label_keys)}
    if compute_metadata:
        _fill_missing_sizes(samples, sample_ids, filepaths, width, height, counts)

    polygons = None
    if label_type == "detections":
        box = _xywh_boxes(col["bounding_box"], n)
    else:
        polygons = [_rings(p) for p in col["points"]]
        box = _ring_bounds(polygons)

    table = LabelTable(
        field=field,
        label_type=label_type,
        sample_ids=sample_ids,
        filepaths=filepaths,
        width=width,
        height=height,
        offsets=offsets,
        sample_index=np.repeat(np.arange(len(docs), dtype=np.int64), counts),
        label_id=_object_array(["" if v is None else v for v in col["id"]]),
        label=_object_array(["" if v is None else str(v) for v in col["label"]]),
        box=box,
        confidence=np.array(col["confidence"], dtype=np.float64).reshape(n),
        # None, NaN and falsy values are "not crowd" (v == v is False only for NaN)
        iscrowd=np.fromiter((bool(v) and v == v for v in col["iscrowd"]), bool, n),
        polygons=polygons,
        attributes={a: _attribute_array(_typed(samples, f"{list_path}.{a}", col[a])) for a in attributes},
        tags=[t or [] for t in col["tags"]],  # fresh lists decoded from BSON: no copy needed
    )
    if with_masks:
        table.masks = [_mask(m, p, table, i) for i, (m, p) in enumerate(zip(col["mask"], col["mask_path"]))]
    return table


def _stages(samples, list_path: str, label_keys: Sequence[str]) -> list[dict]:
    """Aggregation stages (after the view's own) giving per sample ``sid``, ``filepath``, ``w``,
    ``h`` and ``c<k>`` = the values of ``label_keys[k]`` over the sample's labels (missing -> None).

    Example (one sample, two labels, keys ``["id", "label"]``):
        ``{"sid": "6b07...", "filepath": "/a.jpg", "w": 640, "h": 480,
        "c0": ["6b08...", "6b09..."], "c1": ["cat", None]}``
    """
    db_list = samples._handle_db_field(list_path)
    db_keys = [samples._handle_db_field(f"{list_path}.{k}")[len(db_list) + 1 :] for k in label_keys]
    return [{"$project": {
        "_id": 1,
        "filepath": 1,
        "w": "$metadata.width",
        "h": "$metadata.height",
        "sid": {"$toString": "$_id"},
        **{f"c{i}": {"$map": {"input": {"$ifNull": [f"${db_list}", []]}, "as": "l",
                              "in": _as_string(f"$$l.{k}") if k == "_id" else f"$$l.{k}"}}
           for i, k in enumerate(db_keys)},
    }}]


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while decoding: the ~10 container objects per label
    created by BSON decoding otherwise trigger repeated full scans (measured: read time halved)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_string(expr: str) -> dict:
    # ObjectIds -> hex strings on the server: decoding str is cheaper than ObjectId + str() here
    return {"$convert": {"input": expr, "to": "string", "onError": None, "onNull": None}}


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _typed(samples, path: str, raw: Sequence) -> list:
    """Raw BSON attribute values as ``values()`` would return them (ObjectId -> str, declared
    non-primitive fields through their FiftyOne type)."""
    import fiftyone as fo
    from bson import ObjectId

    ftype = samples.get_field(path)
    primitive = (fo.FloatField, fo.IntField, fo.StringField, fo.BooleanField)
    if ftype is not None and not isinstance(ftype, primitive) and not isinstance(ftype, fo.ObjectIdField):
        return [None if v is None else ftype.to_python(v) for v in raw]
    return [str(v) if isinstance(v, ObjectId) else v for v in raw]


def _attribute_array(values: list) -> np.ndarray:
    """Numeric attributes become float64 (None -> NaN); anything else stays an object array."""
    def numeric(v) -> bool:
        return v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)))

    if values and all(numeric(v) for v in values):
        return np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _xywh_boxes(boxes: Sequence, n: int) -> np.ndarray:
    """FiftyOne ``[x, y, w, h]`` lists -> (n, 4) xyxy; missing or malformed boxes become NaN rows.

    Example:
        >>> _xywh_boxes([[0.1, 0.2, 0.3, 0.4], None], 2).round(2).tolist()
        [[0.1, 0.2, 0.4, 0.6], [nan, nan, nan, nan]]
    """
    try:  # fast path: every box is 4 numbers
        out = np.array(boxes, dtype=np.float64).reshape(n, 4)
    except (ValueError, TypeError):
        nan4 = [np.nan] * 4
        rows = [b if isinstance(b, (list, tuple)) and len(b) == 4 else nan4 for b in boxes]
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
    if isinstance(mask, (bytes, str)):  # raw BSON: FiftyOne's serialized numpy array
        import fiftyone.core.utils as fou

        mask = fou.deserialize_numpy_array(mask, ascii=isinstance(mask, str))
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
