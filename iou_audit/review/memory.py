"""Review decisions stored in the dataset's database, with label tags and per-sample counts.

Where: one document per decision in the collection ``iou_audit_review`` of FiftyOne's database,
``_id = "<dataset id>:<row id>"``, holding the state, the fingerprint of the label (or samples) at
decision time, who and when, and where the row lives (field, sample ids). Why a collection and not
``dataset.info``: every mark is one atomic upsert, so two reviewers (App, CLI, delegated
operators) marking at the same time never overwrite each other's decisions (``dataset.info`` is
saved whole); its size is not bounded by the 16 MB dataset document; and no audit code touches
it, so decisions survive re-running and deleting audits. The dataset id (not its name) keys it,
so renaming the dataset keeps the decisions; ``dataset.clone()`` and exports carry only the tags.

Shown in the App as label tags ``review:<state>`` (one per label, the others removed) and
per-sample int fields ``review_<state>`` (decisions on that sample's rows, pairs counted on both
samples), written with :mod:`iou_audit.table`'s bulk writers.
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from iou_audit import fiftyone_private as fop
from iou_audit.review import content
from iou_audit.review.rows import is_object_id, missing_row_id, parse_row_id, sample_row_id
from iou_audit.review.states import COUNT_FIELDS, REVIEW_STATES, REVIEW_TAGS, check_state, review_tag

logger = logging.getLogger(__name__)

COLLECTION = "iou_audit_review"


@dataclass
class Target:
    """One queue row a decision is about (see :mod:`iou_audit.review.rows`)."""

    row_id: str
    row_type: str  # label | missing | sample | pair
    field: str | None = None  # label field of the label (or of the annotator lacking the object)
    label_id: str | None = None
    sample_id: str | None = None
    other_sample_id: str | None = None
    ref_field: str | None = None  # missing rows: the reference label drawn by another annotator
    ref_label_id: str | None = None


def _collection():
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[COLLECTION]
    coll.create_index("dataset_id")  # idempotent; a no-op once it exists
    return coll


def _now() -> datetime.datetime:
    # BSON dates: naive UTC, millisecond precision (what the document will hold when read back)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def load_decisions(dataset) -> dict[str, dict]:
    """``{row_id: {state, fingerprint, user, at, field, sample_id, ...}}`` of the dataset's decisions
    (``at``: naive UTC datetime).

    Example:
        >>> load_decisions(ds)["6b07..."]["state"]                        # doctest: +SKIP
        'not_an_error'
    """
    dataset = fop.root_dataset(dataset)
    out = {}
    for d in _collection().find({"dataset_id": fop.dataset_id(dataset)}):
        d.pop("_id"), d.pop("dataset_id")
        out[d["row_id"]] = d
    return out


def _target_from_decision(d: dict) -> Target:
    return Target(d["row_id"], d.get("row_type", "label"), d.get("field"), d.get("label_id"), d.get("sample_id"),
                  d.get("other_sample_id"), d.get("ref_field"), d.get("ref_label_id"))


def resolve(dataset, items: Iterable[Any], decisions: dict | None = None) -> list[Target]:
    """Queue rows for ``items``: row ids (label ids, sample ids, ``missing:...``, ``a+b``) or dicts
    with ``label_id`` and ``field`` (``ctx.selected_labels``); ValueError naming every id that is
    neither a label nor a sample of the dataset."""
    dataset = fop.root_dataset(dataset)
    decisions = load_decisions(dataset) if decisions is None else decisions
    if isinstance(items, (str, dict)):
        items = [items]
    targets: dict[str, Target] = {}
    bare: list[str] = []
    missing: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            lid = item.get("label_id") or item.get("id")
            if not is_object_id(str(lid)) or not item.get("field"):
                raise ValueError(f"a selected label needs a 'label_id' and a 'field', got {item!r}")
            targets[lid] = Target(lid, "label", item["field"], lid, item.get("sample_id"))
            continue
        row = str(item).strip()
        if row in decisions:
            targets[row] = _target_from_decision(decisions[row])
            continue
        parsed = parse_row_id(row)
        if parsed[0] == "missing":
            missing.append((parsed[1], parsed[2]))
        elif parsed[0] == "pair":
            targets[row] = Target(row, "pair", sample_id=parsed[1], other_sample_id=parsed[2])
        else:
            bare.append(row)
    located = content.locate_labels(dataset, bare + [lid for _, lid in missing])
    for field, lid in missing:
        if lid not in located:
            raise ValueError(f"row {missing_row_id(field, lid)!r}: reference label {lid} is not in dataset {dataset.name!r}")
        ref_field, sid = located[lid]
        row = missing_row_id(field, lid)
        targets[row] = Target(row, "missing", field, None, sid, None, ref_field, lid)
    rest = [i for i in bare if i not in located]
    for lid in bare:
        if lid in located:
            field, sid = located[lid]
            targets[lid] = Target(lid, "label", field, lid, sid)
    if rest:
        found = content.read_filepaths(dataset, rest)
        unknown = [i for i in rest if i not in found]
        if unknown:
            raise ValueError(f"not a label or sample of dataset {dataset.name!r}: {unknown}")
        for sid in rest:
            targets[sid] = Target(sid, "sample", sample_id=sid)
    pairs = [t for t in targets.values() if t.row_type == "pair"]
    found = content.read_filepaths(dataset, [s for t in pairs for s in (t.sample_id, t.other_sample_id)])
    for t in pairs:
        lost = [s for s in (t.sample_id, t.other_sample_id) if s not in found]
        if lost:
            raise ValueError(f"row {t.row_id!r}: sample(s) {lost} are not in dataset {dataset.name!r}")
    return list(targets.values())


def fingerprints(dataset, targets: list[Target]) -> dict[str, str | None]:
    """The current fingerprint of each target's row (None: its label or samples are gone)."""
    wanted: dict[str, list[str]] = {}
    for t in targets:
        if t.row_type == "label":
            wanted.setdefault(t.field, []).append(t.label_id)
        elif t.row_type == "missing":
            wanted.setdefault(t.ref_field, []).append(t.ref_label_id)
    labels = content.read_labels(dataset, wanted)
    sids = [s for t in targets if t.row_type in ("sample", "pair") for s in (t.sample_id, t.other_sample_id) if s]
    paths = content.read_filepaths(dataset, sids)
    digests = content.read_mask_digests(dataset, sids)
    out = {}
    for t in targets:
        if t.row_type in ("label", "missing"):
            lab = labels.get(t.label_id if t.row_type == "label" else t.ref_label_id)
            out[t.row_id] = lab["fingerprint"] if lab else None
            if lab and t.row_type == "label":
                t.sample_id = lab["sample_id"]
        else:
            out[t.row_id] = content.samples_fingerprint(paths, [s for s in (t.sample_id, t.other_sample_id) if s],
                                                        digests)
    return out


def mark_review(dataset, label_ids_or_row_ids, state: str, user: str | None = None) -> int:
    """Record ``state`` (one of :data:`REVIEW_STATES`) on queue rows; returns how many were written.

    ``label_ids_or_row_ids``: label ids, queue row ids (see :mod:`iou_audit.review.rows`) or dicts
    ``{label_id, field[, sample_id]}`` (``ctx.selected_labels``). Each decision stores the row's
    fingerprint now (class and geometry, :mod:`iou_audit.review.fingerprint`), ``user`` and the
    UTC time; marking a row again replaces its decision. Labels get the tag ``review:<state>``
    (their other review tags removed); the samples' ``review_<state>`` counts are rewritten.
    Everything is resolved and validated before anything is written.

    Example:
        >>> mark_review(ds, ["6b07..."], "not_an_error", user="ana")        # doctest: +SKIP
        1
    """
    check_state(state)
    dataset = fop.root_dataset(dataset)
    decisions = load_decisions(dataset)
    targets = resolve(dataset, label_ids_or_row_ids, decisions)
    fps = fingerprints(dataset, targets)
    gone = [t.row_id for t in targets if fps[t.row_id] is None]
    if gone:
        raise ValueError(f"cannot mark {gone}: label or sample not in dataset {dataset.name!r} (deleted, or wrong field)")
    if not targets:
        return 0
    from pymongo import ReplaceOne

    dsid, at = fop.dataset_id(dataset), _now()
    ops = [ReplaceOne({"_id": f"{dsid}:{t.row_id}"}, {
        "dataset_id": dsid, "row_id": t.row_id, "row_type": t.row_type, "state": state,
        "fingerprint": fps[t.row_id], "user": user, "at": at, "field": t.field, "label_id": t.label_id,
        "sample_id": t.sample_id, "other_sample_id": t.other_sample_id, "ref_field": t.ref_field,
        "ref_label_id": t.ref_label_id}, upsert=True) for t in targets]
    _collection().bulk_write(ops, ordered=False)
    _write_marks(dataset, targets, add=review_tag(state))
    logger.info("marked %d row(s) %s on %r", len(targets), state, dataset.name)
    return len(targets)


def clear_review(dataset, ids) -> int:
    """Remove the decisions on these rows (ids as for :func:`mark_review`), their review tags and
    their share of the per-sample counts; returns how many decisions were removed (an id without
    a decision counts 0; a selected label's stray review tags are removed all the same)."""
    dataset = fop.root_dataset(dataset)
    decisions = load_decisions(dataset)
    if isinstance(ids, (str, dict)):
        ids = [ids]
    targets = []
    for item in ids:
        if isinstance(item, dict):
            targets += resolve(dataset, [item], decisions)
            continue
        row = str(item).strip()
        if row in decisions:
            targets.append(_target_from_decision(decisions[row]))
        else:
            parse_row_id(row)  # a clear error for what cannot be a row id
            logger.info("no decision on %r to clear", row)
    if not targets:
        return 0
    dsid = fop.dataset_id(dataset)
    ids_ = [f"{dsid}:{t.row_id}" for t in targets if t.row_id in decisions]
    n = _collection().delete_many({"_id": {"$in": ids_}}).deleted_count if ids_ else 0
    _write_marks(dataset, targets, add=None)
    return int(n)


def _write_marks(dataset, targets: list[Target], add: str | None) -> None:
    """Label tags of the targets' labels and the review counts of their samples, in one bulk write."""
    from iou_audit.table.write import prepare_writes

    tags: dict[str, dict[str, list[str]]] = {}
    pulls: dict[str, dict[str, list[str]]] = {}
    for t in targets:
        if t.row_type != "label" or dataset.get_field(t.field) is None:
            continue
        tags.setdefault(t.field, {})
        if add:
            tags[t.field][t.label_id] = [add]
        pulls.setdefault(t.field, {})[t.label_id] = [g for g in REVIEW_TAGS if g != add]
    sids = sorted({s for t in targets for s in (t.sample_id, t.other_sample_id) if s})
    existing = content.read_filepaths(dataset, sids)
    counts = sample_counts(dataset, [s for s in sids if s in existing])
    writes = prepare_writes(dataset, labels={f: {"tags": by_id} for f, by_id in tags.items()}, sample_values=counts)
    for field, by_id in pulls.items():
        writes.labels[field].pull_tags.update(by_id)
    writes.run()


def sample_counts(dataset, sample_ids: list[str]) -> dict[str, dict[str, int]]:
    """``{review_<state>: {sample_id: n}}`` for these samples (0 where none), from the stored
    decisions: a row counts on its sample, a pair on both."""
    counts = {name: dict.fromkeys(sample_ids, 0) for name in COUNT_FIELDS.values()}
    if not sample_ids:
        return counts
    want = set(sample_ids)
    query = {"dataset_id": fop.dataset_id(dataset),
             "$or": [{"sample_id": {"$in": sample_ids}}, {"other_sample_id": {"$in": sample_ids}}]}
    for d in _collection().find(query, {"state": 1, "sample_id": 1, "other_sample_id": 1}):
        if d.get("state") not in REVIEW_STATES:
            continue
        name = COUNT_FIELDS[d["state"]]
        for sid in {d.get("sample_id"), d.get("other_sample_id")} & want:
            counts[name][sid] += 1
    return counts


def row_ids_of(findings) -> list[str]:
    """The queue row id of each finding row (a DataFrame in the shared findings shape)."""
    out = []
    for lid, olid, field, sid, osid in zip(findings["label_id"], findings["other_label_id"], findings["field"],
                                           findings["sample_id"], findings["other_sample_id"]):
        if lid:
            out.append(lid)
        elif olid:
            out.append(missing_row_id(field, olid))
        else:
            out.append(sample_row_id(sid, osid))
    return out
