"""Where the relabel round trip meets the review memory (:mod:`iou_audit.review`): the confirmed
findings as a selection, ``fixed`` marks after a load or a fix, and the previous decision put back
when a fix is undone. The review memory is keyed by queue row id; a label's row id is its label id."""
from __future__ import annotations

from iou_audit import fiftyone_private as fop


def confirmed_label_ids(samples, field: str) -> tuple[list[str], dict[str, str]]:
    """Label ids of ``field`` whose queue row is ``confirmed`` (and unchanged since), in queue order
    (most suspicious first), with the queue's evidence for each (plus who confirmed it)."""
    from iou_audit.review import triage

    q = triage(samples, states=("confirmed",))
    if not len(q):
        return [], {}
    q = q[(q["field"] == field) & q["label_id"].notna() & (q["label_id"] != "")]
    ids = [str(i) for i in q["label_id"]]
    reasons = {}
    for lid, evidence, who in zip(ids, q["evidence"], q["reviewed_by"]):
        reasons[lid] = f"{evidence} (confirmed{' by ' + who if who else ''})"
    return ids, reasons


def reviewed_label_ids(samples, field: str) -> set[str]:
    """Label ids of ``field`` whose row is decided ``not_an_error`` or ``fixed`` and unchanged since
    (the rows the default queue leaves out)."""
    from iou_audit.review import triage

    q = triage(samples, states=("not_an_error", "fixed"))
    if not len(q):
        return set()
    return {str(i) for i, f in zip(q["label_id"], q["field"]) if f == field and i}


def decision_of(dataset, label_id: str) -> dict | None:
    """The stored review decision on the label's row (``{state, user, at, ...}``) or None."""
    from iou_audit.review import load_decisions

    d = load_decisions(fop.root_dataset(dataset)).get(label_id)
    if d is None:
        return None
    return {"state": d["state"], "user": d.get("user"), "at": str(d.get("at"))}


def mark_fixed(dataset, label_ids, user: str | None = None) -> int:
    """Mark these (existing) labels' rows ``fixed``; returns how many were marked. Deleted labels
    need no mark: their rows leave the queue with them."""
    from iou_audit.review import mark_review

    label_ids = list(label_ids)
    return mark_review(fop.root_dataset(dataset), label_ids, "fixed", user=user) if label_ids else 0


def restore_decision(dataset, label_id: str, previous: dict | None) -> None:
    """Put the row's decision back as it was before a fix: the previous state (by its user), or
    none. The label's review tag is the previous one again (``review:<state>`` or none)."""
    from iou_audit.review import clear_review, mark_review

    dataset = fop.root_dataset(dataset)
    if previous is None:
        clear_review(dataset, [label_id])
    else:
        mark_review(dataset, [label_id], previous["state"], user=previous.get("user"))
