"""Bulk write-back by label id: per-label attributes, label tags and per-sample fields.

Every write is one MongoDB ``bulk_write`` of one ``UpdateOne`` per touched sample. Labels are
addressed by their ``_id`` through ``arrayFilters`` (``<field>.detections.$[l0].<attr>`` with
``{"l0._id": ObjectId(...)}``), never by list position, so a label list edited between read
and write never receives another label's value. Only touched samples get a new
``last_modified_at``; new attributes/fields are declared in the dataset schema so
``get_field_schema()`` and the App see them. ``sample.save()`` is never called.
"""
from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from typing import Any, Iterable, Mapping

import numpy as np

from iou_audit.table.read import check_label_field

logger = logging.getLogger(__name__)

# Label attributes owned by FiftyOne or by the original annotation: never written by us.
PROTECTED_LABEL_ATTRS = frozenset({
    "id", "_id", "_cls", "label", "bounding_box", "mask", "mask_path", "confidence", "index",
    "tags", "points", "closed", "filled", "attributes", "iscrowd",
})
PROTECTED_SAMPLE_FIELDS = frozenset({
    "id", "_id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "media_type",
    "_media_type", "_rand", "_dataset_id", "frames",
})
BULK_CHUNK = 1000  # UpdateOne ops per bulk_write round trip


def write_label_attributes(samples, field: str, values: Mapping[str, Mapping[str, Any]]) -> dict:
    """Set per-label attributes, addressed by label id: ``{attr: {label_id: value}}``.

    Returns ``{"labels": n_written, "samples": n_touched, "missing": [ids not in the view]}``.

    Example:
        >>> write_label_attributes(ds, "gt", {"dup_iou": {"6b07...": 0.93}})  # doctest: +SKIP
        {'labels': 1, 'samples': 1, 'missing': []}
    """
    return update_labels(samples, field, attributes=values)


def update_labels(
    samples,
    field: str,
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
) -> dict:
    """Set attributes ``{attr: {label_id: value}}`` and add tags ``{label_id: [tag, ...]}`` in one pass.

    Example:
        >>> update_labels(ds, "gt", {"dup_iou": {lid: 0.9}}, {lid: ["dup:duplicate"]})  # doctest: +SKIP
        {'labels': 1, 'samples': 1, 'missing': []}
    """
    attributes = attributes or {}
    for attr in attributes:
        _check_attr_name(field, attr)
    # a bare string is one tag, not a sequence of one-letter tags
    tags = {k: [v] if isinstance(v, str) else list(v) for k, v in (tags or {}).items()}
    for label_tags in tags.values():
        for tag in label_tags:
            _check_tag(tag)
    per_label: dict[str, dict[str, Any]] = defaultdict(dict)
    for attr, by_id in attributes.items():
        for label_id, value in by_id.items():
            per_label[str(label_id)][attr] = _to_bson(value)
    add_tags = {str(k): v for k, v in tags.items()}
    _declare_label_attrs(samples, field, attributes)  # validates types before anything is written
    stats = _update_labels(samples, field, sets=per_label, add_tags=add_tags)
    samples._root_dataset.reload()
    return stats


def tag_labels_by_id(samples, field: str, label_ids: Iterable[str], tag: str) -> dict:
    """Add ``tag`` to the labels with these ids (no duplicate tags; other labels untouched)."""
    _check_tag(tag)
    return update_labels(samples, field, tags={str(i): [tag] for i in label_ids})


def untag_labels(samples, field: str, tag: str) -> dict:
    """Remove ``tag`` from every label of ``field`` in the view that has it."""
    _check_tag(tag)
    _check_writable(samples)
    _, list_path = check_label_field(samples, field)
    ids, tag_lists = samples.values([f"{list_path}.id", f"{list_path}.tags"])
    tagged = {
        lid: [tag]
        for lids, tls in zip(ids, tag_lists) if lids
        for lid, tl in zip(lids, tls) if tl and tag in tl
    }
    if not tagged:
        return {"labels": 0, "samples": 0, "missing": []}
    stats = _update_labels(samples, field, pull_tags=tagged)
    samples._root_dataset.reload()
    return stats


def write_sample_values(samples, values: Mapping[str, Mapping[str, Any]]) -> dict:
    """Set top-level sample fields by sample id: ``{name: {sample_id: value}}``.

    Only samples of the view that appear in ``values`` are touched.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    dataset = _check_writable(samples)
    for name in values:
        _check_sample_field_name(samples, name)
    for name, by_id in values.items():
        _declare(dataset, name, by_id.values(), f"sample field {name!r}")
    in_view = set(samples.values("id"))
    per_sample: dict[str, dict[str, Any]] = defaultdict(dict)
    missing = []
    for name, by_id in values.items():
        for sid, value in by_id.items():
            if sid in in_view:
                per_sample[sid][name] = _to_bson(value)
            else:
                missing.append(sid)
    now = _now()
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": {**sets, "last_modified_at": now}})
           for sid, sets in per_sample.items()]
    _bulk_write(dataset, ops)
    dataset.reload()
    if missing:
        logger.warning("%d sample id(s) not in the view were not written", len(set(missing)))
    return {"samples": len(per_sample), "missing": sorted(set(missing))}


def _update_labels(samples, field, sets=None, add_tags=None, pull_tags=None) -> dict:
    """One UpdateOne per touched sample, labels matched by ``_id`` via arrayFilters."""
    from bson import ObjectId
    from pymongo import UpdateOne

    dataset = _check_writable(samples)
    _, list_path = check_label_field(samples, field)
    sets, add_tags, pull_tags = sets or {}, add_tags or {}, pull_tags or {}
    wanted = set(sets) | set(add_tags) | set(pull_tags)
    for label_id in wanted:
        if not ObjectId.is_valid(label_id):
            raise ValueError(f"field {field!r}: {label_id!r} is not a label id")

    sample_ids, label_lists = samples.values(["id", f"{list_path}.id"])
    by_sample: dict[str, list[str]] = defaultdict(list)
    for sid, lids in zip(sample_ids, label_lists):
        for lid in dict.fromkeys(lids or ()):  # a label id repeated in one list is written once
            if lid in wanted:
                by_sample[sid].append(lid)
    found = sum(len(v) for v in by_sample.values())
    missing = sorted(wanted - {lid for v in by_sample.values() for lid in v}) if found < len(wanted) else []

    now = _now()
    ops = []
    for sid, lids in by_sample.items():
        update: dict[str, dict] = {"$set": {"last_modified_at": now}}
        filters = []
        for j, lid in enumerate(lids):
            ident = f"l{j}"
            filters.append({f"{ident}._id": ObjectId(lid)})
            for attr, value in sets.get(lid, {}).items():
                update["$set"][f"{list_path}.$[{ident}].{attr}"] = value
            if lid in add_tags:
                update.setdefault("$addToSet", {})[f"{list_path}.$[{ident}].tags"] = {"$each": list(add_tags[lid])}
            if lid in pull_tags:
                update.setdefault("$pull", {})[f"{list_path}.$[{ident}].tags"] = {"$in": list(pull_tags[lid])}
        query = {"_id": ObjectId(sid), f"{list_path}._id": {"$in": [f[f"l{j}._id"] for j, f in enumerate(filters)]}}
        ops.append(UpdateOne(query, update, array_filters=filters))
    _bulk_write(dataset, ops)
    if missing:
        logger.warning("field %r: %d label id(s) not found in the view were not written", field, len(missing))
    return {"labels": found, "samples": len(by_sample), "missing": missing}


def _bulk_write(dataset, ops: list) -> None:
    coll = dataset._sample_collection
    for start in range(0, len(ops), BULK_CHUNK):
        coll.bulk_write(ops[start : start + BULK_CHUNK], ordered=False)


def _check_writable(samples):
    if samples._is_patches or samples._is_frames or samples._is_clips:
        raise ValueError(
            "writes on patches, frames or clips views are not supported; write through the "
            f"source dataset {samples._root_dataset.name!r} or a view of its samples"
        )
    return samples._root_dataset


def _check_attr_name(field: str, attr: str) -> None:
    if not isinstance(attr, str) or not attr.isidentifier() or attr in PROTECTED_LABEL_ATTRS:
        raise ValueError(
            f"field {field!r}: cannot write label attribute {attr!r} (must be an identifier and "
            f"not one of the original label attributes {sorted(PROTECTED_LABEL_ATTRS)})"
        )


def _check_sample_field_name(samples, name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or name in PROTECTED_SAMPLE_FIELDS:
        raise ValueError(f"cannot write sample field {name!r} (must be an identifier, not a built-in field)")
    import fiftyone as fo

    existing = samples._root_dataset.get_field(name)
    if isinstance(existing, fo.EmbeddedDocumentField):
        raise ValueError(f"sample field {name!r} exists and holds {existing.document_type.__name__}; refusing to overwrite it")


def _check_tag(tag: str) -> None:
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"tag must be a non-empty string, got {tag!r}")


def _declare_label_attrs(samples, field: str, values: Mapping[str, Mapping[str, Any]]) -> None:
    dataset = samples._root_dataset
    _, list_path = check_label_field(dataset, field)
    for attr, by_id in values.items():
        _declare(dataset, f"{list_path}.{attr}", by_id.values(), f"label attribute {list_path}.{attr}")


def _declare(dataset, path: str, values: Iterable[Any], what: str) -> None:
    """Add ``path`` to the schema with the type of ``values``; refuse values the existing type rejects."""
    import fiftyone as fo

    ftype = _infer_field_type(values)
    existing = dataset.get_field(path)
    if existing is None:
        if ftype is not None:
            dataset.add_sample_field(path, ftype)
        return
    if ftype is None or isinstance(existing, ftype):
        return
    if isinstance(existing, fo.FloatField) and ftype is fo.IntField:
        return
    raise ValueError(f"{what} exists as {type(existing).__name__}; cannot write {ftype.__name__} values into it")


def _infer_field_type(values: Iterable[Any]):
    """FiftyOne field class for a column of values (None ignored); None when mixed/unknown."""
    import fiftyone as fo

    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, (list, tuple, np.ndarray)):
            kinds.add("list")
        elif isinstance(v, dict):
            kinds.add("dict")
        else:
            return None
    if not kinds:
        return None
    if kinds == {"bool"}:
        return fo.BooleanField
    if kinds == {"int"}:
        return fo.IntField
    if kinds <= {"int", "float"}:
        return fo.FloatField
    if kinds == {"str"}:
        return fo.StringField
    if kinds == {"list"}:
        return fo.ListField
    if kinds == {"dict"}:
        return fo.DictField
    return None


def _to_bson(value: Any) -> Any:
    """numpy scalars/arrays -> plain Python so pymongo can encode them."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_bson(v) for v in value]
    return value


def _now() -> datetime.datetime:
    # FiftyOne stores naive UTC datetimes with millisecond precision (BSON dates)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
