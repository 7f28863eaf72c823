"""New label fields written in bulk as the documents FiftyOne stores, without building label objects.

``samples.set_values(field, {sample_id: fo.Detections(...)})`` builds and validates one mongoengine
document per label and compresses its masks in the calling thread (on 300 images with 4,700
disagreement regions, a consensus and a heatmap: 7.4 s, longer than the audit's compute). Here an
audit builds each label as the dict FiftyOne stores (:func:`detection_doc`, :func:`detections_doc`,
:func:`segmentation_doc`, :func:`heatmap_doc`: the same keys in the same order, masks as
``np.save`` bytes deflated by :func:`iou_audit.table.npy_codec.serialize_array`, in the audit's threads), and
:func:`write_label_fields` declares each new field once (``add_sample_field`` with the label type,
the schema ``set_values`` gives) and writes every field of a sample in one ``UpdateOne`` of one
unordered bulk (``iou_audit.table.bulk.bulk_write``: chunks from two threads), then refreshes the
samples held in memory. Dynamic attributes (a region's ``pixels``) are stored and, as with
``set_values``, not declared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.table.npy_codec import serialize_array
from iou_audit.table.run_deflate import serialize_label_map


@dataclass
class RawLabelField:
    """A new sample field's values as stored documents: ``docs[sample_id]`` is a dict from the
    ``*_doc`` builders here; ``label_type`` the FiftyOne label class they are (``"Detections"``)."""

    label_type: str
    docs: dict[str, dict] = field(default_factory=dict)


def serialize_mask(mask: np.ndarray) -> bytes:
    """An array as FiftyOne stores it (what ``fiftyone.core.utils.serialize_numpy_array`` stores,
    deflated faster): label maps and boolean masks by :func:`iou_audit.table.run_deflate.serialize_label_map`
    (runs and row copies only, 2-3x faster than libdeflate's level 1), other arrays by
    :func:`iou_audit.table.npy_codec.serialize_array`."""
    m = np.asarray(mask)
    if m.ndim in (2, 3) and (m.dtype == bool or m.dtype.kind == "u") and m.dtype.itemsize <= 2:
        return serialize_label_map(m)
    return serialize_array(m)


def detection_doc(label: str, bounding_box: list[float], mask: np.ndarray | None = None, **attributes) -> dict:
    """A ``fo.Detection`` as FiftyOne stores it (``to_mongo``); ``attributes`` are dynamic ones.

    Example:
        >>> d = detection_doc("cat", [0.1, 0.2, 0.3, 0.4], pixels=12)
        >>> [k for k in d], d["label"], d["pixels"]
        (['_id', '_cls', 'attributes', 'tags', 'label', 'bounding_box', 'pixels'], 'cat', 12)
    """
    from bson import ObjectId

    doc = {"_id": ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [], "label": str(label),
           "bounding_box": [float(x) for x in bounding_box]}
    if mask is not None:
        doc["mask"] = serialize_mask(mask)
    doc.update(attributes)
    return doc


def detections_doc(detections: list[dict]) -> dict:
    """A ``fo.Detections`` of :func:`detection_doc` dicts as FiftyOne stores it."""
    return {"_cls": "Detections", "detections": list(detections)}


def segmentation_doc(mask: np.ndarray | None, stored: bytes | None = None) -> dict:
    """A ``fo.Segmentation(mask=mask)`` as FiftyOne stores it; ``stored``: the mask's bytes as
    already stored (another Segmentation's ``mask`` of the same array), used instead of compressing."""
    from bson import ObjectId

    return {"_id": ObjectId(), "_cls": "Segmentation", "tags": [],
            "mask": stored if stored is not None else serialize_mask(mask)}


def heatmap_doc(heat: np.ndarray, value_range: tuple[float, float]) -> dict:
    """A ``fo.Heatmap(map=heat, range=value_range)`` as FiftyOne stores it."""
    from bson import ObjectId

    return {"_id": ObjectId(), "_cls": "Heatmap", "tags": [], "map": serialize_mask(heat),
            "range": [float(value_range[0]), float(value_range[1])]}


def write_label_fields(samples, fields: Mapping[str, RawLabelField]) -> dict:
    """Declare the new label fields and write their documents, one ``UpdateOne`` per sample (all the
    fields at once, a new ``last_modified_at``) in one unordered bulk; returns ``{"samples": n}``.

    A field that exists must hold the same label type (ValueError naming it, before any write).
    Only samples of ``samples`` (a dataset or a view of its samples) are written.
    """
    import fiftyone as fo
    from bson import ObjectId
    from pymongo import UpdateOne

    from iou_audit.table import bulk

    dataset = fop.root_dataset(samples)
    for name, values in fields.items():
        cls = getattr(fo, values.label_type, None)
        if not (isinstance(cls, type) and issubclass(cls, fo.Label)):
            raise ValueError(f"field {name!r}: {values.label_type!r} is not a FiftyOne label type")
        existing = dataset.get_field(name)
        if existing is not None and getattr(existing, "document_type", None) is not cls:
            raise ValueError(f"field {name!r} exists and does not hold {values.label_type}; refusing to overwrite it")
    for name, values in fields.items():
        if dataset.get_field(name) is None:
            dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=getattr(fo, values.label_type))
    in_view = None if samples is dataset else set(samples.values("id"))
    per_sample: dict[str, dict[str, Any]] = {}
    for name, values in fields.items():
        for sid, doc in values.docs.items():
            if in_view is None or sid in in_view:
                per_sample.setdefault(str(sid), {})[name] = doc
    now = bulk._now()
    ops = (UpdateOne({"_id": ObjectId(sid)}, {"$set": {**docs, "last_modified_at": now}})
           for sid, docs in per_sample.items())
    bulk.bulk_write(dataset, ops, list(per_sample), sample_fields=list(fields))
    return {"samples": len(per_sample)}
