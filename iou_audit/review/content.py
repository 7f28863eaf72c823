"""Read what labels and samples look like now (class, geometry, confidence, file path), in bulk.

One aggregation per label field, matching only the samples that hold one of the wanted labels and
shipping only those labels' keys; masks are decoded only for the wanted labels.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from iou_audit import fiftyone_private as fop
from iou_audit.review.fingerprint import label_fingerprint, sample_fingerprint
from iou_audit.review.rows import is_object_id
from iou_audit.table.read import ALL_LABEL_TYPES, check_label_field

_KEYS = ("label", "bounding_box", "mask", "mask_path", "points", "closed", "filled", "confidence")


def label_fields(dataset) -> list[str]:
    """The Detections, Polylines and Keypoints fields of the dataset (what audits and reviews address)."""
    import fiftyone as fo

    return sorted(dataset.get_field_schema(embedded_doc_type=(fo.Detections, fo.Polylines, fo.Keypoints)))


def _oids(ids: Iterable[str]) -> list:
    from bson import ObjectId

    return [ObjectId(i) for i in dict.fromkeys(ids) if is_object_id(i)]


def read_labels(dataset, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """``{label_id: {field, sample_id, label, confidence, fingerprint, box_px}}`` for the wanted
    ``{field: label ids}`` that exist now (deleted labels are absent). ``box_px`` is the box's
    (width, height) in pixels when the sample's metadata knows the image size, else None."""
    import fiftyone.core.utils as fou

    dataset = fop.root_dataset(dataset)
    out: dict[str, dict] = {}
    for field, ids in wanted.items():
        oids = _oids(ids)
        if not oids or dataset.get_field(field) is None:
            continue
        _, list_path = check_label_field(dataset, field, ALL_LABEL_TYPES)
        db_list = fop.handle_db_field(dataset, list_path)
        picked = {"$filter": {"input": {"$ifNull": [f"${db_list}", []]}, "as": "l", "cond": {"$in": ["$$l._id", oids]}}}
        stages = [
            {"$match": {f"{db_list}._id": {"$in": oids}}},
            {"$project": {"w": "$metadata.width", "h": "$metadata.height", "L": {"$map": {
                "input": picked, "as": "l", "in": {"_id": "$$l._id", **{k: f"$$l.{k}" for k in _KEYS}}}}}},
        ]
        for doc in fop.aggregate(dataset, stages):
            w, h = doc.get("w"), doc.get("h")
            for lab in doc.get("L") or []:
                mask = lab.get("mask")
                if isinstance(mask, (bytes, bytearray)):
                    mask = fou.deserialize_numpy_array(bytes(mask))
                box = lab.get("bounding_box")
                box_px = (box[2] * w, box[3] * h) if box and w and h else None
                out[str(lab["_id"])] = {
                    "field": field, "sample_id": str(doc["_id"]), "label": lab.get("label"),
                    "confidence": lab.get("confidence"), "box_px": box_px,
                    "fingerprint": label_fingerprint(lab.get("label"), box, mask, lab.get("mask_path"),
                                                     lab.get("points"), lab.get("closed"), lab.get("filled")),
                }
    return out


def read_filepaths(dataset, sample_ids: Iterable[str]) -> dict[str, str]:
    """``{sample_id: filepath}`` of the samples that exist."""
    return {sid: d["filepath"] for sid, d in read_samples(dataset, sample_ids).items()}


def read_samples(dataset, sample_ids: Iterable[str]) -> dict[str, dict]:
    """``{sample_id: {"filepath", "last_modified_at"}}`` of the samples that exist."""
    oids = _oids(sample_ids)
    if not oids:
        return {}
    stages = [{"$match": {"_id": {"$in": oids}}}, {"$project": {"filepath": 1, "last_modified_at": 1}}]
    return {str(d["_id"]): {"filepath": d.get("filepath"), "last_modified_at": d.get("last_modified_at")}
            for d in fop.aggregate(fop.root_dataset(dataset), stages)}


def samples_fingerprint(filepaths: Mapping[str, str], sample_ids: Iterable[str],
                        mask_digests: Mapping[str, str] | None = None) -> str | None:
    """The fingerprint of a sample-level row, None when one of its samples no longer exists
    (``mask_digests``: :func:`read_mask_digests` of the samples)."""
    sample_ids = list(sample_ids)
    paths = [filepaths.get(s) for s in sample_ids]
    digests = [mask_digests[s] for s in sample_ids if mask_digests and s in mask_digests]
    return None if any(p is None for p in paths) else sample_fingerprint(paths, digests)


def read_mask_digests(dataset, sample_ids: Iterable[str]) -> dict[str, str]:
    """``{sample_id: segmentation_digest}`` of the samples, over the dataset's Segmentation fields
    except those written by audits (a run's ``new_fields``, e.g. a consensus); empty when there are
    none. One aggregation; stored masks decoded by :mod:`iou_audit.table.npy_codec`, ``mask_path``
    files as FiftyOne reads them (an unreadable file counts as no mask)."""
    import fiftyone as fo

    from iou_audit.review.fingerprint import segmentation_digest
    from iou_audit.table.npy_codec import deserialize_array
    from iou_audit.table.segmentation import as_values, decode_mask

    dataset = fop.root_dataset(dataset)
    fields = set(dataset.get_field_schema(embedded_doc_type=fo.Segmentation))
    for key in dataset.list_runs():
        written = getattr(dataset.get_run_info(key).config, "written", None) or {}
        fields -= set(written.get("new_fields", []) if isinstance(written, dict) else [])
    oids = _oids(sample_ids)
    if not fields or not oids:
        return {}
    fields = sorted(fields)
    out = {}
    stages = [{"$match": {"_id": {"$in": oids}}}, {"$project": {f: 1 for f in fields}}]
    for doc in fop.aggregate(dataset, stages):
        masks = {}
        for f in fields:
            seg = doc.get(f) or {}
            m = None
            if seg.get("mask") is not None:
                m = deserialize_array(seg["mask"])
            elif seg.get("mask_path"):
                try:
                    m = decode_mask(seg["mask_path"])
                except OSError:
                    m = None
            masks[f] = as_values(m, f"sample {doc['_id']} field {f!r}") if m is not None else None
        out[str(doc["_id"])] = segmentation_digest(masks)
    return out


def locate_labels(dataset, label_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``{label_id: (field, sample_id)}`` for ids found in any Detections/Polylines/Keypoints field
    (one aggregation per field)."""
    dataset = fop.root_dataset(dataset)
    oids = _oids(label_ids)
    out: dict[str, tuple[str, str]] = {}
    if not oids:
        return out
    for field in label_fields(dataset):
        _, list_path = check_label_field(dataset, field, ALL_LABEL_TYPES)
        db_list = fop.handle_db_field(dataset, list_path)
        stages = [
            {"$match": {f"{db_list}._id": {"$in": oids}}},
            {"$project": {"L": {"$filter": {"input": f"${db_list}._id", "as": "i", "cond": {"$in": ["$$i", oids]}}}}},
        ]
        for doc in fop.aggregate(dataset, stages):
            for lid in doc.get("L") or []:
                out.setdefault(str(lid), (field, str(doc["_id"])))
    return out
