"""The mechanics of bulk writes: locate labels by id, build one pipeline ``UpdateOne`` per sample, run them.

:mod:`iou_audit.table.write` validates input and declares the schema, then calls :func:`apply`.
Everything one call writes (label attributes and tags of several fields, per-sample fields) goes
into unordered ``bulk_write`` calls with one ``UpdateOne`` per touched sample: MongoDB rewrites
each touched document once, however many fields and attributes change in it.

Labels are addressed by ``_id``, never by list position: each update is an aggregation pipeline
that maps over the label list as it is in the database at write time and looks every label's id
up in the ids this sample is written for (``$indexOfArray``); a label that is not among them is
kept as it is, so a list edited between read and write never gives a label another label's
value. The expression is one shared template per list shape, bound by ``$let`` to the sample's
data: its label ids (ObjectIds) and one value list per attribute.

Why pipelines rather than ``arrayFilters`` (the previous design, about the same server time): an
array filter needs one filter document and one update path per label, built in Python (0.9 s for
225,000 labels); the template needs a slice of a column per attribute and sample (0.22 s, most
of it ObjectIds). MongoDB spends ~3 us per rewritten label evaluating either form (1.0 CPU-s for
225,000 labels; rewriting a document without touching its labels costs 1/20 of that), so the
chunks go to MongoDB from two threads, each sent as soon as it is built: the server uses both
cores while the client builds the next chunk (measured 1.6 s -> 1.0 s wall for 5,000 documents).
When the caller passes a :class:`ReadLayout` (where it read each label), the labels are not
looked up in the view again.
"""
from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dc_field
from itertools import islice
from operator import itemgetter
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.table.read import ALL_LABEL_TYPES, _gc_paused, check_label_field

BULK_CHUNK = 250  # UpdateOne ops per bulk_write round trip
WRITE_THREADS = 2  # concurrent bulk_write calls (MongoDB rewrites documents on several cores)
LOCATE_MATCH_MAX_IDS = 100_000  # ids in locate's $match (~1.7 MB of query)
# Stands for "no value for this label" in a column of values; never stored: the pipeline turns
# it into $$REMOVE. A NUL-led string that no label attribute holds in practice.
UNSET = "\x00iou-audit:unset"


@dataclass
class LabelWrite:
    """What to write into one label field, keyed by label id (validated, BSON-ready values).

    ``sets`` is column-wise, ``{attr: {label_id: value}}``: an attribute is written only on the
    labels that appear in its column.
    """

    db_list: str  # database path of the label list, e.g. "gt.detections"
    sets: dict[str, dict[str, Any]] = dc_field(default_factory=dict)  # attr -> {label_id: value}
    add_tags: dict[str, list[str]] = dc_field(default_factory=dict)  # label_id -> tags to add
    pull_tags: dict[str, list[str]] = dc_field(default_factory=dict)  # label_id -> tags to remove
    list_path: str = ""  # field path of the list (in-memory objects), when it differs from db_list
    _templates: dict = dc_field(default_factory=dict, repr=False, compare=False)  # see list_update

    @property
    def wanted(self) -> set[str]:
        out = set(self.add_tags) | set(self.pull_tags)
        for col in self.sets.values():
            out.update(col)
        return out

    def list_update(self, lids: list[str], oids: list) -> tuple[str, dict]:
        """``(top-level field, new value)`` for one sample whose labels ``lids`` (``oids``: the
        same ids as ObjectIds) are written.

        The value is a shared expression template (built once per shape: which attributes leave
        some labels unset, whether tags change) bound by ``$let`` to this sample's data: the ids
        and one value list per attribute. Only the data is built per sample.

        Example:
            >>> from bson import ObjectId
            >>> w = LabelWrite("gt.detections", sets={"q": {"a" * 24: 0.5}})
            >>> top, value = w.list_update(["a" * 24], [ObjectId("a" * 24)])
            >>> top, value["$let"]["vars"]["w"]["$literal"]["v0"]
            ('gt', [0.5])
        """
        data: dict[str, Any] = {"ids": oids}
        partial = []
        pick_all = itemgetter(*lids)
        for k, col in enumerate(self.sets.values()):
            try:  # C-level lookup when every label has a value (the usual case)
                values = list(pick_all(col)) if len(lids) > 1 else [col[lids[0]]]
                partial.append(False)
            except KeyError:
                values = [col.get(lid, UNSET) for lid in lids]
                partial.append(True)
            data[f"v{k}"] = values
        # the tag expression costs the server: only for samples where tags change
        tags = not (self.add_tags.keys().isdisjoint(lids) and self.pull_tags.keys().isdisjoint(lids))
        if tags:
            data["add"] = [self.add_tags.get(lid, []) for lid in lids]
            data["pull"] = [self.pull_tags.get(lid, []) for lid in lids]
        shape = (tuple(partial), tags)
        template = self._templates.get(shape)
        if template is None:
            template = self._templates[shape] = _set_list(self.db_list, self._list_template(*shape))
        top, value = template
        return top, {"$let": {"vars": {"w": {"$literal": data}}, "in": value}}

    def _list_template(self, partial: tuple, tags: bool) -> dict:
        """The label list mapped over, reading the sample's data from ``$$w``: each label's id is
        looked up in ``$$w.ids``; a label found at ``i`` gets ``$$w.v<k>[i]`` per attribute."""
        new: dict[str, Any] = {}
        for k, (attr, unset) in enumerate(zip(self.sets, partial)):
            pick = {"$arrayElemAt": [f"$$w.v{k}", "$$i"]}
            if unset:  # some of these labels get no value for attr: leave it as it is
                pick = {"$let": {"vars": {"v": pick}, "in": {"$cond": [{"$eq": ["$$v", UNSET]}, "$$REMOVE", "$$v"]}}}
            new[attr] = pick
        if tags:
            # $pull then $addToSet semantics: drop every pulled tag, append added tags not present
            new["tags"] = {"$let": {
                "vars": {"t": {"$ifNull": ["$$l.tags", []]},
                         "add": {"$arrayElemAt": ["$$w.add", "$$i"]},
                         "pull": {"$arrayElemAt": ["$$w.pull", "$$i"]}},
                "in": {"$concatArrays": [
                    {"$filter": {"input": "$$t", "as": "x", "cond": {"$not": [{"$in": ["$$x", "$$pull"]}]}}},
                    {"$filter": {"input": "$$add", "as": "x", "cond": {"$not": [{"$in": ["$$x", "$$t"]}]}}},
                ]},
            }}
        return {"$map": {"input": f"${self.db_list}", "as": "l", "in": {"$let": {
            "vars": {"i": {"$indexOfArray": ["$$w.ids", "$$l._id"]}},
            "in": {"$cond": [{"$lt": ["$$i", 0]}, "$$l", {"$mergeObjects": ["$$l", new]}]},
        }}}}


@dataclass
class ReadLayout:
    """Where an audit's labels were when it read them, so :func:`apply` need not re-read the view
    to find each label's sample (``locate``: ~0.1 s per 200,000 labels). Labels and samples not
    recorded here are located as usual.

    Example:
        >>> layout = ReadLayout()
        >>> layout.add("gt", ["a" * 24, "b" * 24], ["s" * 24, "s" * 24])
        >>> layout.labels["gt"]["b" * 24], sorted(layout.samples) == ["s" * 24]
        ('ssssssssssssssssssssssss', True)
    """

    labels: dict[str, dict[str, str]] = dc_field(default_factory=dict)  # field -> {label_id: sample_id}
    samples: set[str] = dc_field(default_factory=set)  # sample ids of the view
    by_sample: dict[str, dict[str, list[str]]] = dc_field(default_factory=dict)  # field -> {sample_id: [label_id]}

    def add(self, field: str, label_ids: Iterable[str], sample_ids: Iterable[str], samples: Iterable[str] = ()) -> None:
        """Record labels ``label_ids`` (in samples ``sample_ids``, one per label) of ``field``,
        and ``samples`` (more sample ids of the view, e.g. those without labels)."""
        label_ids, sample_ids = list(label_ids), list(sample_ids)
        self.labels.setdefault(field, {}).update(zip(label_ids, sample_ids))
        groups = self.by_sample.setdefault(field, {})
        for lid, sid in zip(label_ids, sample_ids):
            groups.setdefault(sid, []).append(lid)
        self.samples.update(sample_ids)
        self.samples.update(samples)

    def add_table(self, field: str, table) -> None:
        """Record every label and sample of a table (anything with ``offsets``, ``label_id``, ``sample_ids``)."""
        sample_ids = np.asarray(table.sample_ids, dtype=object).tolist()
        offsets = np.asarray(table.offsets).tolist()
        label_ids = np.asarray(table.label_id, dtype=object).tolist()
        rows = np.repeat(np.asarray(sample_ids, dtype=object), np.diff(offsets)).tolist()
        self.labels.setdefault(field, {}).update(zip(label_ids, rows))
        groups = self.by_sample.setdefault(field, {})
        for s, sid in enumerate(sample_ids):  # a table's rows are grouped by sample: slices
            if offsets[s + 1] > offsets[s]:
                groups.setdefault(sid, []).extend(label_ids[offsets[s]:offsets[s + 1]])
        self.samples.update(sample_ids)


def apply(samples, labels: Mapping[str, LabelWrite], sample_sets: Mapping[str, Mapping[str, Any]],
          layout: ReadLayout | None = None) -> dict:
    """Write ``labels`` (per field) and ``sample_sets`` (``{sample_id: {name: value}}``) in one bulk.

    Only labels and samples of the view are written: those recorded in ``layout`` (read from the
    view by the caller) and those :func:`locate` finds in it. Returns ``{"labels": {field:
    {"labels", "samples", "missing"}}, "samples": n_touched, "missing_samples": [...]}``.

    Example:
        >>> apply(ds, {"gt": LabelWrite("gt.detections", sets={"x": {lid: 1}})}, {})  # doctest: +SKIP
        {'labels': {'gt': {'labels': 1, 'samples': 1, 'missing': []}}, 'samples': 1, 'missing_samples': []}
    """
    layout = layout or ReadLayout()
    fields = list(labels)
    wanted = [labels[f].wanted for f in fields]
    if not any(wanted) and not sample_sets:
        return {"labels": {f: {"labels": 0, "samples": 0, "missing": []} for f in fields},
                "samples": 0, "missing_samples": []}
    per_field_hits: list[dict[str, list[str]]] = [{} for _ in fields]
    unknown: list[set[str]] = []  # per field: wanted ids the layout does not place
    for k, f in enumerate(fields):
        known, groups = layout.labels.get(f, {}), layout.by_sample.get(f, {})
        if wanted[k].issuperset(known):  # every recorded label is written: whole groups
            per_field_hits[k].update((sid, list(lids)) for sid, lids in groups.items())
        else:
            for sid, lids in groups.items():
                hit = [lid for lid in lids if lid in wanted[k]]
                if hit:
                    per_field_hits[k][sid] = hit
        unknown.append(wanted[k].difference(known))
    unknown_samples = [sid for sid in sample_sets if sid not in layout.samples]
    located = {}
    if any(unknown) or unknown_samples:
        located = locate(samples, [labels[f].db_list for f in fields], unknown, unknown_samples)
        for sid, lists in located.items():
            for k in range(len(fields)):
                # a label id repeated in one list is written (in every copy) once
                found = [lid for lid in dict.fromkeys(lists[k]) if lid in unknown[k]]
                if found:
                    per_field_hits[k].setdefault(sid, []).extend(found)
    in_view_sets = {sid: sets for sid, sets in sample_sets.items() if sid in layout.samples or sid in located}
    missing_samples = sorted(set(sample_sets) - set(in_view_sets))

    touched = list(dict.fromkeys([sid for hits in per_field_hits for sid in hits] + list(in_view_sets)))
    ops = _build_ops(touched, [(labels[f], per_field_hits[k]) for k, f in enumerate(fields)], in_view_sets)
    sample_fields = {name for sets in in_view_sets.values() for name in sets}
    bulk_write(fop.root_dataset(samples), ops, touched,
               [labels[f] for k, f in enumerate(fields) if per_field_hits[k]], sample_fields)

    stats = {}
    for k, f in enumerate(fields):
        hits = per_field_hits[k]
        n = sum(map(len, hits.values()))
        stats[f] = {"labels": n, "samples": len(hits), "missing": []}
        if n < len(wanted[k]):
            stats[f]["missing"] = sorted(wanted[k] - {lid for v in hits.values() for lid in v})
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
        return {d["_id"]: [d[f"f{k}"] for k in range(len(db_lists))] for d in fop.aggregate(samples, stages)}


def _set_list(db_list: str, expression: dict) -> tuple[str, dict]:
    """``(top-level field, new value)`` that puts ``expression`` at ``db_list`` when it is an array
    and leaves the field as it is otherwise (a dotted ``$set`` would create ``{}`` parents)."""
    parts = db_list.split(".")
    value: Any = expression
    for depth in range(len(parts) - 1, 0, -1):
        value = {"$mergeObjects": ["$" + ".".join(parts[:depth]), {parts[depth]: value}]}
    return parts[0], {"$cond": [{"$isArray": f"${db_list}"}, value, f"${parts[0]}"]}


def _build_ops(sample_ids: list[str], fields: list[tuple[LabelWrite, dict[str, list[str]]]],
               sample_sets: Mapping[str, Mapping[str, Any]]) -> Iterator:
    """One pipeline ``UpdateOne`` per sample, yielded as built (so writing starts before the last
    one is built).

    The query also requires one of the written labels to still be in its list (unless the sample
    gets sample-level values), so a sample whose labels vanished since the read is not touched.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    now = _now()
    for sid in sample_ids:
        sets: dict[str, Any] = {"last_modified_at": {"$literal": now}}
        guards = []  # per field: the list still holds one of the written labels
        for write, hits in fields:
            lids = hits.get(sid)
            if not lids:
                continue
            oids = list(map(ObjectId, lids))
            top, value = write.list_update(lids, oids)
            sets[top] = value
            guards.append({f"{write.db_list}._id": {"$in": oids}})
        values = sample_sets.get(sid)
        query: dict[str, Any] = {"_id": ObjectId(sid)}
        if values:
            sets.update({name: {"$literal": v} for name, v in values.items()})
        elif guards:
            # ObjectIds in a plain query: ~0.3 us each to build, and a third cheaper for MongoDB to
            # check than comparing string ids in an $expr (measured on 225,000 labels)
            query.update(guards[0] if len(guards) == 1 else {"$or": guards})
        yield UpdateOne(query, [{"$set": sets}])


def bulk_write(dataset, ops: Iterable, sample_ids: list[str], written: Iterable["LabelWrite"] = (),
               sample_fields: Iterable[str] = ()) -> None:
    """Unordered bulk writes of ``BULK_CHUNK`` ops from ``WRITE_THREADS`` threads, each chunk sent
    as soon as it is built (MongoDB rewrites documents while the next chunk is built), then refresh
    the in-memory Sample objects of the touched samples (:func:`refresh_held`: what was written,
    read back in one query), so ``sample.<field>`` sees the values. The first failing chunk's
    error is raised."""
    coll = fop.raw_sample_collection(dataset)
    chunks = _chunks(ops, BULK_CHUNK)
    with _gc_paused():  # building: a few small containers per sample and field
        if WRITE_THREADS <= 1:
            for chunk in chunks:
                coll.bulk_write(chunk, ordered=False)
        else:
            with ThreadPoolExecutor(WRITE_THREADS) as pool:
                futures = [pool.submit(coll.bulk_write, chunk, ordered=False) for chunk in chunks]
                for future in futures:
                    future.result()
    if sample_ids:
        refresh_held(dataset, sample_ids, [(w.list_path or w.db_list, w.db_list, list(w.sets), bool(w.add_tags or w.pull_tags))
                                           for w in written], sample_fields)


_PLAIN_SCALARS = (float, int, str, bool, type(None))
_PLAIN_SET = frozenset(_PLAIN_SCALARS)
REFRESH_MATCH_IDS = 50_000  # sample ids per read-back query (~1 MB of $in)


def refresh_held(dataset, sample_ids: Iterable[str] | None, lists: Iterable[tuple[str, str, list[str], bool]],
                 sample_fields: Iterable[str] = ()) -> dict:
    """Make the dataset's in-memory ``fo.Sample`` objects (the caller still holding the samples it
    added, or iterated) show what a server-side write stored, as FiftyOne's writes do.

    FiftyOne refreshes them with ``Sample._reload_docs``: one mongoengine query and a rebuilt
    document per sample (~16 ms each; 2,000 held samples cost 30 s, several times the audit). Here
    the written values of the held samples among ``sample_ids`` (all held samples when None) are
    read back in one aggregation (``last_modified_at``, ``sample_fields`` and, per written list
    ``(list_path, db_list, attributes, tags_changed)``, each label's id plus those attributes and
    tags) and set on the in-memory objects in place, without marking them changed. Values are the
    database's, not the ones the caller asked for, so the objects agree with the database even if
    a guard skipped a label. An attribute absent in the database is removed from the object.

    A sample whose in-memory label list does not have the database's label ids in the same order
    (edited in memory, or by someone else), or that gets a non-scalar value, is reloaded by
    FiftyOne's own ``Sample.reload`` instead. Fields that were not written are not re-read (this
    write did not change them); unsaved in-memory edits to them are kept.

    Returns ``{"held": n refreshed in place, "reloaded": n reloaded by FiftyOne}``.
    """
    from bson import ObjectId

    held = fop.held_samples(dataset)
    if not held:
        return {"held": 0, "reloaded": 0}
    ids = list(held) if sample_ids is None else [sid for sid in dict.fromkeys(sample_ids) if sid in held]
    if not ids:
        return {"held": 0, "reloaded": 0}
    lists, sample_fields = list(lists), list(dict.fromkeys(sample_fields))
    project: dict[str, Any] = {"last_modified_at": 1, **{f"s{j}": f"${name}" for j, name in enumerate(sample_fields)}}
    for k, (_, db_list, attrs, tags) in enumerate(lists):
        picks = {"_id": {"$toString": "$$l._id"}, **{f"a{j}": f"$$l.{a}" for j, a in enumerate(attrs)}}
        if tags:
            picks["tags"] = "$$l.tags"
        project[f"L{k}"] = {"$map": {"input": f"${db_list}", "as": "l", "in": picks}}
    coll = fop.raw_sample_collection(dataset)
    reload_ids, n_held = [], 0
    for start in range(0, len(ids), REFRESH_MATCH_IDS):
        oids = [ObjectId(i) for i in ids[start:start + REFRESH_MATCH_IDS]]
        for d in coll.aggregate([{"$match": {"_id": {"$in": oids}}}, {"$project": project}]):
            sid = str(d["_id"])
            if _refresh_one(held[sid], d, lists, sample_fields):
                n_held += 1
            else:
                reload_ids.append(sid)
    if reload_ids:
        fop.reload_samples(dataset, reload_ids)
    return {"held": n_held, "reloaded": len(reload_ids)}


def _refresh_one(sample, d: dict, lists, sample_fields) -> bool:
    """Set one held sample's written values from its read-back document ``d``; False when it must
    be reloaded whole instead (label ids differ, a non-scalar value, an undeclared sample field).
    Checks everything before setting anything."""
    updates = []
    for k, (list_path, _, attrs, tags) in enumerate(lists):
        db = d.get(f"L{k}")
        try:
            mem = sample.get_field(list_path)
        except (AttributeError, KeyError):
            return False
        if db is None or mem is None:
            if (db is None) != (mem is None):
                return False
            continue
        if len(mem) != len(db):
            return False
        datas = [fop.label_data(label) for label in mem]
        if [x.get("id") for x in datas] != [x["_id"] for x in db]:
            return False
        if not _plain_values(db, tags):
            return False
        updates.append((mem, datas, db, attrs, tags))
    values = {}
    for j, name in enumerate(sample_fields):
        if not fop.has_declared_field(sample, name):
            return False
        v = d.get(f"s{j}")
        if type(v) not in _PLAIN_SCALARS:
            return False
        values[name] = v
    data = fop.backing_data(sample)
    set_value, unset_value = fop.set_label_value, fop.unset_label_value
    for mem, datas, db, attrs, tags in updates:
        pairs = [(attr, f"a{j}") for j, attr in enumerate(attrs)]
        for label, ld, x in zip(mem, datas, db):
            for attr, key in pairs:
                if key in x:
                    v, old = x[key], ld.get(attr, x)  # x: a sentinel for "not in memory"
                    if old is x or type(old) is not type(v) or old != v:  # (True == 1: types too)
                        set_value(label, attr, v)
                elif attr in ld:  # absent in the database: absent in memory
                    unset_value(label, attr)
            if tags:
                ld["tags"] = list(x["tags"]) if x.get("tags") is not None else []
    data.update(values)
    if "last_modified_at" in d:
        data["last_modified_at"] = d["last_modified_at"]
    return True


def _plain_values(db: list[dict], tags: bool) -> bool:
    """Read-back labels whose values are all scalars, except ``tags`` (when read): a list of str or
    None. One pass over the values' types, not a call per label."""
    if tags:
        if not {type(x.get("tags")) for x in db} <= {list, type(None)}:
            return False
        if not {type(t) for x in db if x.get("tags") for t in x["tags"]} <= {str}:
            return False
        return {type(v) for x in db for k, v in x.items() if k != "tags"} <= _PLAIN_SET
    return {type(v) for x in db for v in x.values()} <= _PLAIN_SET


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


def strip_labels(dataset, field: str, attributes: Iterable[str] = (), tags: Iterable[str] = ()) -> None:
    """Remove attributes and tags from every label of ``field`` in the whole dataset, server-side.

    One ``update_many`` whose filter matches only samples holding one of them, so only those get a
    new ``last_modified_at``. Used to delete a stored audit (its attributes and tags are its own).
    """
    attributes, tags = list(attributes), list(tags)
    if not attributes and not tags:
        return
    dataset = fop.root_dataset(dataset)
    _, list_path = check_label_field(dataset, field, ALL_LABEL_TYPES)
    db_list = fop.handle_db_field(dataset, list_path)
    holds = [{f"{db_list}.{a}": {"$exists": True}} for a in attributes]
    update: dict[str, dict] = {"$set": {"last_modified_at": _now()}}
    if attributes:
        update["$unset"] = {f"{db_list}.$[].{a}": "" for a in attributes}
    if tags:
        holds.append({f"{db_list}.tags": {"$in": tags}})
        update["$pull"] = {f"{db_list}.$[].tags": {"$in": tags}}
    coll = fop.raw_sample_collection(dataset)
    held = fop.held_samples(dataset)
    touched_held = []
    if held:
        # which in-memory samples update_many will touch, so only those are read back afterwards
        from bson import ObjectId

        query = {"$and": [{"_id": {"$in": [ObjectId(i) for i in held]}}, {"$or": holds}]}
        touched_held = [str(d["_id"]) for d in coll.find(query, {"_id": 1})]
    coll.update_many({"$or": holds}, update)
    if touched_held:
        refresh_held(dataset, touched_held, [(list_path, db_list, attributes, bool(tags))])


def _now() -> datetime.datetime:
    # FiftyOne stores naive UTC datetimes with millisecond precision (BSON dates)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
