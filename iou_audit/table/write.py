"""Bulk write-back by label id: per-label attributes, label tags and per-sample fields.

This module validates input (names, tags, label ids, value types against the existing schema)
and declares new attributes/fields, all columns of one call in a single schema merge (one
dataset-document save; ``add_sample_field`` costs one save and reload per field), so
``get_field_schema()`` and the App see them. The write itself (:mod:`iou_audit.table.bulk`) is one
unordered bulk write with one pipeline ``UpdateOne`` per touched sample, labels matched by ``_id``
inside the update, never by list position: a label list edited between read and write never
receives another label's value. Only touched samples get a new ``last_modified_at``; bad input
raises before anything is written. ``sample.save()`` is never called.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.table import bulk
from iou_audit.table.read import ALL_LABEL_TYPES, _gc_paused, check_label_field

logger = logging.getLogger(__name__)

_PLAIN = frozenset({float, int, str, bool, type(None)})  # values pymongo encodes as they are
_HEX = re.compile(r"[0-9a-f]*")

# Label attributes owned by FiftyOne or by the original annotation: never written by us.
PROTECTED_LABEL_ATTRS = frozenset({
    "id", "_id", "_cls", "label", "bounding_box", "mask", "mask_path", "confidence", "index",
    "tags", "points", "closed", "filled", "attributes", "iscrowd",
})
PROTECTED_SAMPLE_FIELDS = frozenset({
    "id", "_id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "media_type",
    "_media_type", "_rand", "_dataset_id", "frames",
})


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
    stats = write_many(samples, labels={field: {"attributes": attributes or {}, "tags": tags or {}}})
    return stats["labels"][field]


def tag_labels_by_id(samples, field: str, label_ids: Iterable[str], tag: str) -> dict:
    """Add ``tag`` to the labels with these ids (no duplicate tags; other labels untouched)."""
    _check_tag(tag)
    return update_labels(samples, field, tags={str(i): [tag] for i in label_ids})


def untag_labels(samples, field: str, tag: str) -> dict:
    """Remove ``tag`` from every label of ``field`` in the view that has it."""
    _check_tag(tag)
    _check_writable(samples)
    _, list_path = check_label_field(samples, field, ALL_LABEL_TYPES)
    db_list = fop.handle_db_field(samples, list_path)
    has_tag = {"$filter": {"input": {"$ifNull": [f"${db_list}", []]}, "as": "l",
                           "cond": {"$in": [tag, {"$ifNull": ["$$l.tags", []]}]}}}
    stages = [{"$project": {"L": {"$map": {"input": has_tag, "as": "l", "in": {"$toString": "$$l._id"}}}}}]
    tagged = {lid: [tag] for d in fop.aggregate(samples, stages) for lid in d["L"]}
    if not tagged:
        return {"labels": 0, "samples": 0, "missing": []}
    write = bulk.LabelWrite(db_list, pull_tags=tagged, list_path=list_path)
    return bulk.apply(samples, {field: write}, {})["labels"][field]


def write_sample_values(samples, values: Mapping[str, Mapping[str, Any]]) -> dict:
    """Set top-level sample fields by sample id: ``{name: {sample_id: value}}``.

    Only samples of the view that appear in ``values`` are touched. Returns
    ``{"samples": n_touched, "missing": [sample ids not in the view]}``.
    """
    stats = write_many(samples, sample_values=values)
    return {"samples": stats["samples"], "missing": stats["missing_samples"]}


@_gc_paused()  # builds a few small containers per label: GC scans would dominate
def write_many(
    samples,
    labels: Mapping[str, Mapping[str, Mapping]] | None = None,
    sample_values: Mapping[str, Mapping[str, Any]] | None = None,
    layout: bulk.ReadLayout | None = None,
) -> dict:
    """Label attributes and tags of several fields plus sample fields in one schema merge and one bulk.

    Args:
        samples: a dataset or a view of its samples (only its samples and labels are written).
        labels: ``{field: {"attributes": {attr: {label_id: value}}, "tags": {label_id: [tag, ...]}}}``.
        sample_values: ``{name: {sample_id: value}}``.
        layout: where the caller read these labels from this view (:class:`bulk.ReadLayout`):
            those labels and samples are not looked up again before writing.

    Returns:
        ``{"labels": {field: {"labels", "samples", "missing"}}, "samples": n_touched,
        "missing_samples": [sample ids not in the view]}``.

    Example:
        >>> write_many(ds, {"gt": {"attributes": {"q_iou": {lid: 0.9}}, "tags": {lid: ["q:dup"]}}},
        ...            {"q_count": {sid: 1}})                                     # doctest: +SKIP
        {'labels': {'gt': {'labels': 1, 'samples': 1, 'missing': []}}, 'samples': 1, 'missing_samples': []}
    """
    return prepare_writes(samples, labels, sample_values, layout).run()


@dataclass
class PreparedWrites:
    """Validated writes (see :func:`prepare_writes`); :meth:`run` declares the schema and writes."""

    samples: Any
    labels: dict[str, bulk.LabelWrite]
    sample_sets: dict[str, dict[str, Any]]
    new_fields: dict[str, Any]  # schema path -> FiftyOne field to declare
    layout: bulk.ReadLayout | None = None

    @_gc_paused()
    def run(self) -> dict:
        if self.new_fields:
            # one merge = one dataset-document save and reload (add_sample_field: one per path)
            fop.merge_sample_field_schema(fop.root_dataset(self.samples), self.new_fields)
        stats = bulk.apply(self.samples, self.labels, self.sample_sets, self.layout)
        for field, st in stats["labels"].items():
            if st["missing"]:
                logger.warning("field %r: %d label id(s) not in the view were not written", field, len(st["missing"]))
        if stats["missing_samples"]:
            logger.warning("%d sample id(s) not in the view were not written", len(stats["missing_samples"]))
        return stats


@_gc_paused()
def prepare_writes(
    samples,
    labels: Mapping[str, Mapping[str, Mapping]] | None = None,
    sample_values: Mapping[str, Mapping[str, Any]] | None = None,
    layout: bulk.ReadLayout | None = None,
) -> PreparedWrites:
    """Validate everything :func:`write_many` would write, touching nothing: names, tags, label
    ids, and value types against the existing schema. Raises ValueError naming the culprit."""
    dataset = _check_writable(samples)
    labels, sample_values = labels or {}, sample_values or {}
    writes: dict[str, bulk.LabelWrite] = {}
    columns = []  # (schema path, values, what) to declare
    for field, spec in labels.items():
        unknown = set(spec) - {"attributes", "tags"}
        if unknown:
            raise ValueError(f"field {field!r}: unknown write keys {sorted(unknown)} (use 'attributes', 'tags')")
        _, list_path = check_label_field(samples, field, ALL_LABEL_TYPES)
        write = bulk.LabelWrite(fop.handle_db_field(samples, list_path), list_path=list_path)
        for attr, by_id in (spec.get("attributes") or {}).items():
            _check_attr_name(field, attr)
            columns.append((f"{list_path}.{attr}", by_id.values(), f"label attribute {list_path}.{attr}"))
            write.sets[attr] = _bson_column(by_id)
        for label_id, tags in (spec.get("tags") or {}).items():
            tags = [tags] if isinstance(tags, str) else list(tags)  # a bare string is one tag
            for tag in tags:
                _check_tag(tag)
            write.add_tags[str(label_id)] = list(dict.fromkeys(tags))  # $addToSet: each tag once
        _check_label_ids(field, write)
        writes[field] = write
    sample_sets: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, by_id in sample_values.items():
        _check_sample_field_name(samples, name)
        if dataset.get_field(name) is None and all(v is None for v in by_id.values()):
            # nothing to store, and no type to declare: an undeclared field holding None would make
            # every later read of those samples fail (FieldDoesNotExist)
            continue
        columns.append((name, by_id.values(), f"sample field {name!r}"))
        for sid, value in by_id.items():
            sample_sets[str(sid)][name] = value if type(value) in _PLAIN else _to_bson(value)
    return PreparedWrites(samples, writes, dict(sample_sets), _new_fields(dataset, columns), layout)


def _check_label_ids(field: str, write: bulk.LabelWrite) -> None:
    """Every id must be a 24-digit hex ObjectId; upper-case ids are lowered in place (the server
    compares ids as its own lower-case strings)."""
    wanted = write.wanted
    if set(map(len, wanted)) <= {24} and _HEX.fullmatch("".join(wanted)):  # one C-level scan
        return
    for i in wanted:
        if len(i) != 24 or not _HEX.fullmatch(i.lower()):
            raise ValueError(f"field {field!r}: {i!r} is not a label id")
    for col in [*write.sets.values(), write.add_tags, write.pull_tags]:
        for i in [i for i in col if not _HEX.fullmatch(i)]:
            col[i.lower()] = col.pop(i)


def _check_writable(samples):
    if fop.is_generated_view(samples):
        raise ValueError(
            "writes on patches, frames or clips views are not supported; write through the "
            f"source dataset {fop.root_dataset(samples).name!r} or a view of its samples"
        )
    return fop.root_dataset(samples)


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

    existing = fop.root_dataset(samples).get_field(name)
    if isinstance(existing, fo.EmbeddedDocumentField):
        raise ValueError(f"sample field {name!r} exists and holds {existing.document_type.__name__}; refusing to overwrite it")


def _check_tag(tag: str) -> None:
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"tag must be a non-empty string, got {tag!r}")


def _new_fields(dataset, columns: Iterable[tuple[str, Iterable[Any], str]]) -> dict[str, Any]:
    """The fields to declare for ``(path, values, what)`` columns, typed by their values.

    Raises ValueError (naming ``what``) when the existing type of a path rejects the values.
    """
    import fiftyone as fo

    new = {}
    for path, values, what in columns:
        ftype = _infer_field_type(values)
        existing = dataset.get_field(path)
        if existing is None:
            if ftype is not None:
                new[path] = fop.create_field(path.rsplit(".", 1)[-1], ftype)
            continue
        if ftype is None or isinstance(existing, ftype):
            continue
        if isinstance(existing, fo.FloatField) and ftype is fo.IntField:
            continue
        raise ValueError(f"{what} exists as {type(existing).__name__}; cannot write {ftype.__name__} values into it")
    return new


def _infer_field_type(values: Iterable[Any]):
    """FiftyOne field class for a column of values (None ignored); None when mixed/unknown.

    Example:
        >>> _infer_field_type([1, 2.5, None]).__name__, _infer_field_type([True]).__name__
        ('FloatField', 'BooleanField')
    """
    import fiftyone as fo

    kinds = set()
    for t in set(map(type, values)):  # classify the distinct types, not every value
        if t is type(None):
            continue
        if issubclass(t, (bool, np.bool_)):
            kinds.add("bool")
        elif issubclass(t, (int, np.integer)):
            kinds.add("int")
        elif issubclass(t, (float, np.floating)):
            kinds.add("float")
        elif issubclass(t, str):
            kinds.add("str")
        elif issubclass(t, (list, tuple, np.ndarray)):
            kinds.add("list")
        elif issubclass(t, dict):
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


def _bson_column(by_id: Mapping[Any, Any]) -> dict[str, Any]:
    """``{label_id: value}`` with str keys and BSON-ready values (a plain copy when already so).

    Example:
        >>> _bson_column({"a" * 24: np.float32(0.5), "b" * 24: [np.int64(1)]})
        {'aaaaaaaaaaaaaaaaaaaaaaaa': 0.5, 'bbbbbbbbbbbbbbbbbbbbbbbb': [1]}
    """
    # classify distinct types first: converting value by value costs ~10x a dict copy
    if set(map(type, by_id)) <= {str} and set(map(type, by_id.values())) <= _PLAIN:
        return dict(by_id)
    return {str(k): v if type(v) in _PLAIN else _to_bson(v) for k, v in by_id.items()}


def _to_bson(value: Any) -> Any:
    """numpy scalars/arrays -> plain Python so pymongo can encode them."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_bson(v) for v in value]
    return value
