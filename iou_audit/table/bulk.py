"""The mechanics of bulk writes: locate labels by id, build one ``UpdateOne`` per sample, run them.

:mod:`iou_audit.table.write` validates input and declares the schema, then calls :func:`apply`.
Everything one call writes (label attributes and tags of several fields, per-sample fields) goes
into a single unordered ``bulk_write`` with one ``UpdateOne`` per touched sample: MongoDB rewrites
each touched document once, however many fields and attributes change in it.

Labels are addressed by ``_id`` through ``arrayFilters`` (``gt.detections.$[f0l2].iou`` with
``{"f0l2._id": ObjectId(...)}``), never by list position, so a list edited between read and write
never gives a label another label's value (positional ``$set`` guarded by the ids measured no
faster: most of the cost is MongoDB rewriting the documents).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field as dc_field
from typing import Any, Iterable, Mapping

from iou_audit.table.read import _gc_paused, check_label_field

BULK_CHUNK = 1000  # UpdateOne ops per bulk_write round trip
LOCATE_MATCH_MAX_IDS = 100_000  # ids in locate's $match (~1.7 MB of query)


@dataclass
class LabelWrite:
    """What to write into one label field, keyed by label id (validated, BSON-ready values)."""

    db_list: str  # database path of the label list, e.g. "gt.detections"
    sets: dict[str, dict[str, Any]] = dc_field(default_factory=dict)  # label_id -> {attr: value}
    add_tags: dict[str, list[str]] = dc_field(default_factory=dict)  # label_id -> tags to add
    pull_tags: dict[str, list[str]] = dc_field(default_factory=dict)  # label_id -> tags to remove

    @property
    def wanted(self) -> set[str]:
        return set(self.sets) | set(self.add_tags) | set(self.pull_tags)


def apply(samples, labels: Mapping[str, LabelWrite], sample_sets: Mapping[str, Mapping[str, Any]]) -> dict:
    """Write ``labels`` (per field) and ``sample_sets`` (``{sample_id: {name: value}}``) in one bulk.

    Only labels and samples of the view are written. Returns ``{"labels": {field: {"labels",
    "samples", "missing"}}, "samples": n_touched, "missing_samples": [...]}``.

    Example:
        >>> apply(ds, {"gt": LabelWrite("gt.detections", sets={lid: {"x": 1}})}, {})  # doctest: +SKIP
        {'labels': {'gt': {'labels': 1, 'samples': 1, 'missing': []}}, 'samples': 1, 'missing_samples': []}
    """
    fields = list(labels)
    wanted = [labels[f].wanted for f in fields]
    if not any(wanted) and not sample_sets:
        return {"labels": {f: {"labels": 0, "samples": 0, "missing": []} for f in fields},
                "samples": 0, "missing_samples": []}
    located = locate(samples, [labels[f].db_list for f in fields], wanted, sample_sets)
    per_field_hits: list[dict[str, list[str]]] = [{} for _ in fields]
    for sid, lists in located.items():
        for k in range(len(fields)):
            # a label id repeated in one list is written once
            hits = [lid for lid in dict.fromkeys(lists[k]) if lid in wanted[k]]
            if hits:
                per_field_hits[k][sid] = hits
    in_view_sets = {sid: sets for sid, sets in sample_sets.items() if sid in located}
    missing_samples = sorted(set(sample_sets) - set(in_view_sets))

    touched = list(dict.fromkeys([sid for hits in per_field_hits for sid in hits] + list(in_view_sets)))
    ops = _build_ops(touched, [(labels[f], per_field_hits[k]) for k, f in enumerate(fields)], in_view_sets)
    bulk_write(samples._root_dataset, ops, touched)

    stats = {}
    for k, f in enumerate(fields):
        hits = per_field_hits[k]
        found = {lid for v in hits.values() for lid in v}
        stats[f] = {"labels": sum(len(v) for v in hits.values()), "samples": len(hits),
                    "missing": sorted(wanted[k] - found) if len(found) < len(wanted[k]) else []}
    return {"labels": stats, "samples": len(touched), "missing_samples": missing_samples}


def locate(samples, db_lists: list[str], wanted=None, sample_ids=()) -> dict[str, list[list[str]]]:
    """``{sample_id: [label ids of db_lists[0], of db_lists[1], ...]}`` for the samples of the view,
    in one raw aggregation (ids converted to strings on the server; no FiftyOne label objects).

    With ``wanted`` (one set of label ids per list), only samples holding one of those labels or
    listed in ``sample_ids`` are returned: writing a few labels of a large view does not ship
    every label id of the view back. Above ``LOCATE_MATCH_MAX_IDS`` ids the filter is skipped (the
    query document must stay far below MongoDB's 16 MB limit; ~17 bytes per id).
    """
    from bson import ObjectId

    stages = []
    if wanted is not None and sum(map(len, wanted)) + len(sample_ids) <= LOCATE_MATCH_MAX_IDS:
        holds = [{f"{p}._id": {"$in": [ObjectId(i) for i in ids]}} for p, ids in zip(db_lists, wanted) if ids]
        oids = [ObjectId(i) for i in sample_ids if ObjectId.is_valid(i)]
        if oids:
            holds.append({"_id": {"$in": oids}})
        stages.append({"$match": {"$or": holds} if holds else {"_id": None}})
    stages.append({"$project": {
        "_id": {"$toString": "$_id"},
        **{f"f{k}": {"$map": {"input": {"$ifNull": [f"${p}", []]}, "as": "l", "in": {"$toString": "$$l._id"}}}
           for k, p in enumerate(db_lists)},
    }})
    with _gc_paused():
        return {d["_id"]: [d[f"f{k}"] for k in range(len(db_lists))] for d in samples._aggregate(pipeline=stages)}


@_gc_paused()  # ~5 small containers per label: GC scans would dominate
def _build_ops(sample_ids: list[str], fields: list[tuple[LabelWrite, dict[str, list[str]]]],
               sample_sets: Mapping[str, Mapping[str, Any]]) -> list:
    """One ``UpdateOne`` per sample; array filter identifiers ``f<field>l<label>`` are unique in it.

    The query also requires one of the written labels to still be in its list (unless the sample
    gets sample-level values), so a sample whose labels vanished since the read is not touched.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    now = _now()
    ops = []
    for sid in sample_ids:
        sets: dict[str, Any] = {"last_modified_at": now, **sample_sets.get(sid, {})}
        update: dict[str, dict] = {"$set": sets}
        filters, still_there = [], []
        for k, (write, hits) in enumerate(fields):
            lids = hits.get(sid)
            if not lids:
                continue
            oids = []
            for j, lid in enumerate(lids):
                ident = f"f{k}l{j}"
                oid = ObjectId(lid)
                oids.append(oid)
                filters.append({f"{ident}._id": oid})
                elem = f"{write.db_list}.$[{ident}]"
                for attr, value in write.sets.get(lid, {}).items():
                    sets[f"{elem}.{attr}"] = value
                if lid in write.add_tags:
                    update.setdefault("$addToSet", {})[f"{elem}.tags"] = {"$each": write.add_tags[lid]}
                if lid in write.pull_tags:
                    update.setdefault("$pull", {})[f"{elem}.tags"] = {"$in": write.pull_tags[lid]}
            still_there.append({f"{write.db_list}._id": {"$in": oids}})
        query: dict[str, Any] = {"_id": ObjectId(sid)}
        if sid not in sample_sets:
            if len(still_there) == 1:
                query.update(still_there[0])
            else:
                query["$or"] = still_there
        ops.append(UpdateOne(query, update, array_filters=filters or None))
    return ops


def bulk_write(dataset, ops: list, sample_ids: list[str]) -> None:
    """Unordered bulk writes in chunks, then reload the in-memory Sample objects of the touched
    samples only (what FiftyOne's own ``_bulk_write`` does), so ``sample.<field>`` sees the values.
    A full ``dataset.reload()`` would rebuild the document classes (~0.1-0.2 s a call)."""
    import fiftyone.core.sample as fos

    coll = dataset._sample_collection
    for start in range(0, len(ops), BULK_CHUNK):
        coll.bulk_write(ops[start : start + BULK_CHUNK], ordered=False)
    if sample_ids:
        fos.Sample._reload_docs(dataset._sample_collection_name, sample_ids=sample_ids)


def strip_labels(dataset, field: str, attributes: Iterable[str] = (), tags: Iterable[str] = ()) -> None:
    """Remove attributes and tags from every label of ``field`` in the whole dataset, server-side.

    One ``update_many`` whose filter matches only samples holding one of them, so only those get a
    new ``last_modified_at``. Used to delete a stored audit (its attributes and tags are its own).
    """
    import fiftyone.core.sample as fos

    attributes, tags = list(attributes), list(tags)
    if not attributes and not tags:
        return
    dataset = dataset._root_dataset
    _, list_path = check_label_field(dataset, field)
    db_list = dataset._handle_db_field(list_path)
    holds = [{f"{db_list}.{a}": {"$exists": True}} for a in attributes]
    update: dict[str, dict] = {"$set": {"last_modified_at": _now()}}
    if attributes:
        update["$unset"] = {f"{db_list}.$[].{a}": "" for a in attributes}
    if tags:
        holds.append({f"{db_list}.tags": {"$in": tags}})
        update["$pull"] = {f"{db_list}.$[].tags": {"$in": tags}}
    dataset._sample_collection.update_many({"$or": holds}, update)
    fos.Sample._reload_docs(dataset._sample_collection_name)  # in-memory samples only


def _now() -> datetime.datetime:
    # FiftyOne stores naive UTC datetimes with millisecond precision (BSON dates)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
