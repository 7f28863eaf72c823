"""Fixes that need no annotator, applied on explicit request only and each recorded so it can be
undone exactly.

Actions (:data:`FIX_ACTIONS`):
- ``delete_duplicate``: delete a label a duplicates audit flagged ``duplicate`` (its
  ``<key>_dup_of`` attribute names the label it copies; that one must still exist, so the object is
  never lost);
- ``consensus_class``: set a label's class to the class of the agreement audit's consensus label it
  belongs to (the consensus label whose ``members`` holds its id);
- ``consensus_box``: replace a label's box with that consensus label's box (refused for labels
  with an instance mask, which the new box would misplace).

Each fix is one conditional database update: it only happens if the label is still byte for byte
the document the plan was made from, so a label changed in between is refused, never overwritten.
The record (execution store ``iou_audit_relabel``, key ``fix:<id>``) keeps the label's exact
previous BSON document, its position, who and when; :func:`undo_fix` puts that document back (same
id, attributes, tags, position) only if the label is still as the fix left it.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from dataclasses import field as dc_field

from iou_audit import fiftyone_private as fop
from iou_audit.relabel.raw import RawLabel, read_raw_label, read_raw_labels
from iou_audit.relabel.store import db_now as _now
from iou_audit.relabel.store import default_user, now_iso, relabel_store
from iou_audit.results import audit_info, list_audits

FIX_ACTIONS = ("delete_duplicate", "consensus_class", "consensus_box")


class FixRefused(ValueError):
    """A fix or undo that cannot be done safely; nothing was written."""


@dataclass(frozen=True)
class FixPlan:
    """What :func:`apply_fix` will do: ``before`` is the label as read, ``after`` the new label
    document (None: deleted), ``source`` where the new value comes from."""

    action: str
    field: str
    before: RawLabel
    after: dict | None
    source: dict = dc_field(default_factory=dict)
    description: str = ""

    @property
    def label_id(self) -> str:
        return self.before.label_id

    @property
    def fingerprint(self) -> str:
        """Identifies the label state the plan was made from (pass it back to :func:`apply_fix` as
        ``expected`` after showing the plan to a person)."""
        import hashlib

        return hashlib.sha1(self.before.raw).hexdigest()


def plan_fix(dataset, field: str, label_id: str, action: str, audit_key: str | None = None) -> FixPlan:
    """Plan ``action`` on label ``label_id`` of ``field`` (``audit_key``: the duplicates or
    agreement run to take it from; default: the one run that flagged / fused the label)."""
    if action not in FIX_ACTIONS:
        raise ValueError(f"action must be one of {list(FIX_ACTIONS)}, got {action!r}")
    dataset = fop.root_dataset(dataset)
    before = read_raw_label(dataset, field, label_id)
    label = before.as_dict()
    if action == "delete_duplicate":
        return _plan_delete(dataset, field, before, label, audit_key)
    key, cons = _consensus_of(dataset, field, label_id, audit_key)
    after = dict(label)
    if action == "consensus_class":
        if cons.get("label") == label.get("label"):
            raise FixRefused(f"label {label_id!r} already has the consensus class {cons.get('label')!r}")
        after["label"] = cons.get("label")
        what = f"class {label.get('label')!r} -> {cons.get('label')!r}"
    else:
        if "bounding_box" not in label:
            raise FixRefused(f"label {label_id!r} of {field!r} has no bounding box to replace")
        if label.get("mask") is not None or label.get("mask_path"):
            raise FixRefused(f"label {label_id!r} has an instance mask; replacing its box would misplace the mask")
        box = [float(v) for v in cons["bounding_box"]]
        if [float(v) for v in label["bounding_box"]] == box:
            raise FixRefused(f"label {label_id!r} already has the consensus box")
        after["bounding_box"] = box
        what = f"box {_fmt(label['bounding_box'])} -> {_fmt(box)}"
    return FixPlan(action, field, before, after, {"audit_key": key, "consensus_label_id": str(cons["_id"])},
                   f"{action} on {label_id} ({field}): {what} (consensus of audit {key!r})")


def _fmt(box) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in box) + "]"


def _plan_delete(dataset, field, before: RawLabel, label: dict, audit_key) -> FixPlan:
    keys = [k for k in ([audit_key] if audit_key else list_audits(dataset))
            if audit_info(dataset, k)["audit"] == "duplicates"
            and audit_info(dataset, k)["config"].get("label_field") == field]
    flagged = [k for k in keys if f"{k}:duplicate" in (label.get("tags") or []) and label.get(f"{k}_dup_of")]
    kept = [k for k in keys if f"{k}:duplicate" in (label.get("tags") or [])]
    if not flagged and kept:
        raise FixRefused(f"label {before.label_id!r} is the copy audit {kept[0]!r} keeps of a duplicate pair "
                         "(the other copy carries the dup_of attribute); delete the other copy")
    if not flagged:
        raise FixRefused(f"label {before.label_id!r} of {field!r} is not flagged duplicate by a duplicates audit "
                         f"of this field ({keys or 'none stored'}); only flagged duplicates can be deleted")
    key = flagged[0]
    original = str(label[f"{key}_dup_of"])
    if original not in read_raw_labels(dataset, field, [original]):
        raise FixRefused(f"label {before.label_id!r} duplicates {original!r}, which no longer exists; "
                         "deleting it would remove the object")
    return FixPlan("delete_duplicate", field, before, None, {"audit_key": key, "duplicate_of": original},
                   f"delete_duplicate {before.label_id} ({field}, class {label.get('label')!r}): a copy of "
                   f"{original} (audit {key!r})")


def _consensus_of(dataset, field, label_id, audit_key) -> tuple[str, dict]:
    from fiftyone import ViewField as F

    runs = []
    for k in ([audit_key] if audit_key else list_audits(dataset)):
        info = audit_info(dataset, k)
        cf = info["config"].get("consensus_field")
        if info["audit"] == "agreement" and cf and field in (info["config"].get("label_fields") or [field]):
            runs.append((k, cf))
    if not runs:
        raise FixRefused(f"no agreement audit with a consensus field covers field {field!r}; run audit_agreement "
                         "with consensus_field=... first")
    for key, cf in runs:
        if dataset.get_field(cf) is None:
            continue
        view = dataset.filter_labels(cf, F("members").contains(label_id))
        matches = [d for dets in view.values(f"{cf}.detections") for d in (dets or [])
                   if label_id in (d["members"] or [])]
        if matches:
            d = matches[0]
            return key, {"_id": d.id, "label": d.label, "bounding_box": list(d.bounding_box)}
    raise FixRefused(f"label {label_id!r} is not a member of any consensus label of {[r[1] for r in runs]} "
                     "(it was not part of an object the annotators' majority found)")


def apply_fix(dataset, plan: FixPlan, user: str | None = None, expected: str | None = None) -> dict:
    """Apply ``plan``: one conditional update that happens only if the label is still the document
    the plan read (and has fingerprint ``expected`` when given). Returns the stored record."""
    import bson
    from bson import json_util
    from bson.raw_bson import RawBSONDocument

    dataset = fop.root_dataset(dataset)
    if expected is not None and expected != plan.fingerprint:
        raise FixRefused(f"label {plan.label_id!r} changed since the fix was shown; nothing written, review it again")
    from iou_audit.relabel.review_link import decision_of, mark_fixed

    b = plan.before
    fix_id = uuid.uuid4().hex[:12]
    after_raw = None if plan.after is None else bson.encode(plan.after)
    record = {
        "fix_id": fix_id, "action": plan.action, "field": plan.field, "sample_id": b.sample_id,
        "label_id": b.label_id, "index": b.index, "db_list": b.db_list, "description": plan.description,
        "source": plan.source, "before_bson": base64.b64encode(b.raw).decode(),
        # the same previous label, readable (MongoDB extended JSON); undo uses the exact BSON above
        "before": json_util.dumps(b.as_dict()),
        "after_bson": None if after_raw is None else base64.b64encode(after_raw).decode(),
        "user": default_user(user), "applied_at": now_iso(), "state": "applied",
        "undone_at": None, "undone_by": None,
        # the review decision on the label's row before the fix, put back by undo_fix
        "review_before": decision_of(dataset, b.label_id),
    }
    store = relabel_store(dataset)
    store.set(f"fix:{fix_id}", record)  # recorded first: a fix can never exist without its record
    coll = fop.raw_sample_collection(dataset)
    where = {"_id": bson.ObjectId(b.sample_id), f"{b.db_list}.{b.index}": RawBSONDocument(b.raw)}
    if plan.after is None:
        update = {"$pull": {b.db_list: {"_id": bson.ObjectId(b.label_id)}}, "$set": {"last_modified_at": _now()}}
    else:
        update = {"$set": {f"{b.db_list}.{b.index}": RawBSONDocument(after_raw), "last_modified_at": _now()}}
    if coll.update_one(where, update).matched_count != 1:
        store.delete(f"fix:{fix_id}")
        raise FixRefused(f"label {b.label_id!r} of {plan.field!r} changed since the fix was planned "
                         "(or moved in its list); nothing written, plan it again")
    if plan.after is not None:  # a deleted label's row leaves the queue with it
        mark_fixed(dataset, [b.label_id], user=record["user"])
    fop.reload_samples(dataset, [b.sample_id])
    return record


def undo_fix(dataset, fix_id: str, user: str | None = None) -> dict:
    """Put back the exact label document a fix replaced or deleted (same id, attributes, tags and
    position), only if the label is still as the fix left it. Undoing twice is refused."""
    import bson
    from bson.raw_bson import RawBSONDocument

    dataset = fop.root_dataset(dataset)
    store = relabel_store(dataset)
    record = store.get(f"fix:{fix_id}")
    if record is None:
        raise FixRefused(f"no fix {fix_id!r} recorded on {dataset.name!r}")
    if record["state"] == "undone":
        raise FixRefused(f"fix {fix_id!r} was already undone ({record['undone_at']} by {record['undone_by']}); "
                         "nothing to undo")
    undone = dict(record, state="undone", undone_at=now_iso(), undone_by=default_user(user))
    if not store.compare_and_set(f"fix:{fix_id}", record, undone):  # two undos racing: one wins
        raise FixRefused(f"fix {fix_id!r} is being undone by another process")
    before = base64.b64decode(record["before_bson"])
    db_list, sid, lid = record["db_list"], bson.ObjectId(record["sample_id"]), bson.ObjectId(record["label_id"])
    coll = fop.raw_sample_collection(dataset)
    if record["after_bson"] is None:  # deleted: insert it back where it was, unless it is back already
        res = coll.update_one({"_id": sid, f"{db_list}._id": {"$ne": lid}},
                              {"$push": {db_list: {"$each": [RawBSONDocument(before)], "$position": record["index"]}},
                               "$set": {"last_modified_at": _now()}})
        why = "it is in the list again" if coll.count_documents({"_id": sid}, limit=1) else "its sample was deleted"
    else:
        current = read_raw_labels(dataset, record["field"], [record["label_id"]]).get(record["label_id"])
        after = base64.b64decode(record["after_bson"])
        res = None
        # the fix's own "review:fixed" mark is not an edit
        if current is not None and _without_review_tags(current.raw) == _without_review_tags(after):
            res = coll.update_one({"_id": sid, f"{db_list}.{current.index}": RawBSONDocument(current.raw)},
                                  {"$set": {f"{db_list}.{current.index}": RawBSONDocument(before),
                                            "last_modified_at": _now()}})
        why = "it was deleted" if current is None else "it was edited after the fix"
    if res is None or res.matched_count != 1:
        store.set(f"fix:{fix_id}", record)  # still applied
        raise FixRefused(f"cannot undo fix {fix_id!r}: label {record['label_id']!r} changed since the fix ({why}); "
                         "nothing written")
    if record["after_bson"] is not None:
        from iou_audit.relabel.review_link import restore_decision

        restore_decision(dataset, record["label_id"], record.get("review_before"))
    fop.reload_samples(dataset, [record["sample_id"]])
    return undone


def _without_review_tags(raw: bytes) -> bytes:
    """The label document with its ``review:<state>`` tags dropped (they belong to the review memory)."""
    import bson

    from iou_audit.review import TAG_PREFIX

    doc = bson.decode(raw)
    if doc.get("tags"):
        doc["tags"] = [t for t in doc["tags"] if not str(t).startswith(TAG_PREFIX)]
    return bson.encode(doc)


def list_fixes(dataset, state: str | None = None) -> list[dict]:
    """Every recorded fix (``state``: only ``applied`` or ``undone`` ones), oldest first."""
    store = relabel_store(dataset)
    recs = [store.get(k) for k in store.list_keys() if k.startswith("fix:")]
    recs = [r for r in recs if r and (state is None or r["state"] == state)]
    return sorted(recs, key=lambda r: r["applied_at"])

