"""Whether a stored run is stale: samples modified after it finished writing."""
from __future__ import annotations

from datetime import datetime


def staleness(dataset, key: str) -> dict:
    """Samples modified after audit ``key`` finished writing: ``{"n_modified", "completed_at",
    "message"}`` (``message`` is "" when the run is current).

    A sample counts when its ``last_modified_at`` is after the run's ``completed_at`` and not inside
    the write window (registration to completion) of a later iou-audit run, nor within
    ``REVIEW_WRITE_SECONDS`` after a review decision stored on it (``iou_audit.review``): those
    writes (attributes, review tags) do not change what the audit saw. Samples added since the run
    count too. A cleared review mark leaves no record, so that write does count.

    Example:
        >>> staleness(ds, "duplicates")                                   # doctest: +SKIP
        {'n_modified': 1, 'completed_at': datetime(...), 'message': '1 sample modified since ...'}
    """
    from fiftyone import ViewField as F

    from iou_audit.results.runs import audit_info, list_audits

    info = audit_info(dataset, key)
    done = info["completed_at"] or info["timestamp"]
    expr = F("last_modified_at") > done
    for other in list_audits(dataset):
        if other == key:
            continue
        o = audit_info(dataset, other)
        if o["completed_at"] is not None and o["completed_at"] > done:
            start = max(o["timestamp"], done)
            expr = expr & ~((F("last_modified_at") >= start) & (F("last_modified_at") <= o["completed_at"]))
    ids, times = dataset.match(expr).values(["id", "last_modified_at"])
    n = len(ids) - len(_review_writes(dataset, ids, times))
    when = done.strftime("%Y-%m-%d %H:%M") if isinstance(done, datetime) else str(done)
    message = (f"{n} sample{'s' if n != 1 else ''} modified since this run ({when} UTC): re-run it"
               if n else "")
    return {"n_modified": int(n), "completed_at": done, "message": message}


#: A review mark's tag/count write lands within this many seconds of the decision's time.
REVIEW_WRITE_SECONDS = 30


def _review_writes(dataset, ids, times) -> set:
    """Of these samples, those whose last modification is a review mark's write."""
    from iou_audit.review import load_decisions

    marked: dict = {}
    for d in load_decisions(dataset).values():
        for sid in (d.get("sample_id"), d.get("other_sample_id")):
            if sid and d.get("at") is not None:
                marked.setdefault(sid, []).append(d["at"])
    out = set()
    for sid, t in zip(ids, times):
        for at in marked.get(sid, ()):
            if t is not None and 0 <= (t - at).total_seconds() <= REVIEW_WRITE_SECONDS:
                out.add(sid)
    return out

