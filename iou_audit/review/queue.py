"""One triage queue across every stored audit of a dataset, with the review state of each row.

Rows: one per label any audit flagged (the findings' ``label_id``), and one per region of
disagreement a segmentation run drew (:mod:`iou_audit.review.regions`); one per object a label field
lacks (agreement ``missing_in_annotator``, keyed on the reference label another annotator drew);
one per sample or sample pair for sample-level findings (leaks, unreadable images). Dataset-level
findings (``split_drift``: no sample) are not queue rows; findings on labels or samples deleted
since the audit ran are left out.

Combined score: one suspicion per row from every source of evidence, the rule of
:mod:`iou_audit.review.suspicion` (naive-Bayes log-odds: the row's prior, its annotator's error
rate when known, plus each source's log likelihood ratio; scoring sources such as a predictions
audit's ``<key>_quality`` and the labels-only prior score every label, other audits count by their
highest finding score on the row). Rows are sorted by that score (then by row id, for a stable
order). ``every_label=True`` adds a row for every label a scoring source scores, flagged or not,
so the whole field is ranked (kind list empty when nothing flagged it).

Review state of a row, from its stored decision (:mod:`iou_audit.review.memory`) and the
fingerprint of its label now (:mod:`iou_audit.review.fingerprint`):
- no decision: ``open``;
- the label is unchanged since the decision: the decision's state;
- the label changed since a ``not_an_error`` or ``confirmed`` decision: ``changed_since_review``;
- the label changed since a ``fixed`` decision: ``fixed`` while the findings are stale (the
  sample was modified after every audit flagging the row completed: they judged the label before
  the fix), so the row is out of the default queue; ``open`` (a new finding, no reviewer yet) once
  an audit that completed after the sample's last modification still flags it. Any later write on
  that sample (another label edited or marked) makes such a row look stale again until the next
  run: an approximation, since FiftyOne records modification times per sample, not per label.
  The old ``fixed`` decision (and its ``review:fixed`` tag) stays stored, shown in
  ``decision_state``, until the row is marked again or cleared.
"""
from __future__ import annotations

import datetime
import logging

import numpy as np
import pandas as pd

from iou_audit import fiftyone_private as fop
from iou_audit.review import content
from iou_audit.review.memory import load_decisions, row_ids_of
from iou_audit.review.regions import region_findings
from iou_audit.review.sources import read_sources
from iou_audit.review.states import DEFAULT_QUEUE_STATES, QUEUE_STATES, check_queue_states
from iou_audit.review.suspicion import ANNOTATOR_ATTR, row_suspicion
from iou_audit.review.words import finding_words

logger = logging.getLogger(__name__)

QUEUE_COLUMNS = [
    "row_id", "sample_id", "other_sample_id", "field", "label_id", "label", "audits", "kinds", "evidence",
    "score", "n_audits", "review_state", "reviewed_by", "reviewed_at",
    "row_type", "other_label_ids", "audit_scores", "fingerprint", "decision_state",
]

_OPTIONAL = ("sample_id", "other_sample_id", "field", "label_id", "label", "reviewed_by", "reviewed_at",
             "decision_state")


def empty_queue(message: str = "") -> pd.DataFrame:
    """The queue with no rows (its columns as always); ``attrs["message"]`` says why."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in QUEUE_COLUMNS})
    frame["score"] = frame["score"].astype(np.float64)
    frame["n_audits"] = frame["n_audits"].astype(np.int64)
    frame.attrs["message"] = message
    return frame


def noisy_or(scores) -> float:
    """``1 - prod(1 - s)`` of per-audit scores in [0, 1] (NaN counts 0): the queue's rule before the
    combined suspicion (:mod:`iou_audit.review.suspicion`), kept for callers.

    Example:
        >>> noisy_or([0.5, 0.5]), noisy_or([0.9]), noisy_or([float("nan"), 0.2])
        (0.75, 0.9, 0.2)
    """
    s = np.nan_to_num(np.asarray(list(scores), dtype=np.float64), nan=0.0).clip(0, 1)
    return float(round(1.0 - np.prod(1.0 - s), 12))


def _naive_utc(t) -> datetime.datetime | None:
    if t is None:
        return None
    if getattr(t, "tzinfo", None) is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t


def triage(dataset_or_view, audit_keys=None, states=DEFAULT_QUEUE_STATES, every_label: bool = False,
           annotator_attr: str | None = ANNOTATOR_ATTR) -> pd.DataFrame:
    """The merged queue of the stored audits' findings on ``dataset_or_view``.

    Args:
        dataset_or_view: a dataset, or a view (only its samples, and for label rows only its labels).
        audit_keys: the audits to merge (default: every complete iou-audit run on the dataset).
            Keys that are not stored are skipped (named in ``attrs["missing_audits"]``).
        states: the review states to keep (:data:`QUEUE_STATES`; None: all). The default leaves
            out rows reviewed as ``not_an_error`` or ``fixed`` whose label is unchanged.
        every_label: also a row for every label a scoring source (a predictions audit, the
            labels-only prior) scores, whether or not a finding flags it.
        annotator_attr: label attribute naming each label's annotator (its error rate is the
            label's prior); None: only agreement audits' annotator fields.

    Returns:
        one row per queue row (see the module docstring), columns :data:`QUEUE_COLUMNS`:
        ``row_id``, ``sample_id``, ``other_sample_id`` (pairs), ``field``, ``label_id`` (None for
        sample rows), ``label`` (class now), ``audits`` and ``kinds`` (lists), ``evidence`` (one
        clause per audit and kind, "; "-joined), ``score`` (combined suspicion, in [0, 1]), ``n_audits``,
        ``review_state``, ``reviewed_by``, ``reviewed_at``, plus ``row_type``, ``other_label_ids``,
        ``audit_scores`` ({key: score}), ``fingerprint`` (now) and ``decision_state`` (stored).
        With nothing to show, an empty frame whose ``attrs["message"]`` says why.
        ``attrs["annotator_error_rates"]``: ``{annotator: estimated error rate}`` when known.

    Example:
        >>> q = triage(ds)                                                   # doctest: +SKIP
        >>> q.loc[0, ["audits", "evidence", "score", "review_state"]].tolist()  # doctest: +SKIP
        [['dups', 'preds'], 'dups: duplicate of another RBC box, IoU 0.93; preds: ...', 0.97, 'open']
    """
    queue, missing = _triage(dataset_or_view, audit_keys, states, every_label, annotator_attr)
    if missing:
        queue.attrs["missing_audits"] = missing
    return queue


def _triage(dataset_or_view, audit_keys, states, every_label=False,
            annotator_attr=ANNOTATOR_ATTR) -> tuple[pd.DataFrame, list[str]]:
    from iou_audit.results.runs import audit_info, list_audits, load_audit

    states = QUEUE_STATES if states is None else check_queue_states(states)
    dataset = fop.root_dataset(dataset_or_view)
    stored = list_audits(dataset)
    missing: list[str] = []
    if audit_keys is None:
        keys = stored
    else:
        audit_keys = [audit_keys] if isinstance(audit_keys, str) else list(audit_keys)
        keys = [k for k in audit_keys if k in stored]
        missing = [k for k in audit_keys if k not in stored]
        if missing:
            logger.warning("audits not stored on %r, skipped: %s", dataset.name, missing)
    if not keys:
        if not stored:
            return empty_queue(f"no stored audits on dataset {dataset.name!r}: run one first "
                               f"(e.g. `iou-audit duplicates -d {dataset.name} --field ground_truth`)"), missing
        return empty_queue(f"none of the audits {audit_keys} is stored on dataset {dataset.name!r}; "
                           f"stored: {stored}"), missing

    frames, ran_at, infos = [], {}, {}
    for key in keys:
        result = load_audit(dataset, key)
        regions = region_findings(dataset, result)
        f = pd.concat([result.findings, regions], ignore_index=True) if len(regions) else result.findings
        f.insert(0, "audit_key", key)
        frames.append(f)
        info = infos[key] = audit_info(dataset, key)
        ran_at[key] = _naive_utc(info["completed_at"] or info["timestamp"])
    findings = pd.concat(frames, ignore_index=True)
    findings = findings[findings["sample_id"] != ""].reset_index(drop=True)  # dataset-level: not a row
    label_fields = set(findings.loc[findings["label_id"] != "", "field"])
    sources = read_sources(dataset_or_view, infos, label_fields, annotator_attr)
    if every_label:
        findings = _with_scored_labels(findings, sources)
    queue = _merge(dataset_or_view, dataset, findings, ran_at, load_decisions(dataset))
    if len(queue):
        queue["score"], rates = row_suspicion(queue["row_type"].tolist(), queue["label_id"].tolist(),
                                              queue["audit_scores"].tolist(), sources, keys,
                                              {k: infos[k]["audit"] for k in keys})
        queue = queue.sort_values(["score", "row_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
        if rates:
            queue.attrs["annotator_error_rates"] = rates
    if not len(queue):
        return empty_queue(f"the audits {keys} flag nothing on {'this view of ' if dataset_or_view is not dataset else ''}"
                           f"dataset {dataset.name!r}"), missing
    rates = queue.attrs.get("annotator_error_rates")
    queue = queue[queue["review_state"].isin(states)].reset_index(drop=True)
    if rates:
        queue.attrs["annotator_error_rates"] = rates
    if not len(queue):
        return empty_queue(f"no queue rows in states {list(states)} (audits {keys}, dataset {dataset.name!r})"), missing
    return queue, missing


#: the kind of the placeholder finding of a label only a scoring source scores (``every_label``);
#: not shown in a row's kinds, audits or evidence
SCORED_KIND = "scored"


def _with_scored_labels(findings: pd.DataFrame, sources) -> pd.DataFrame:
    """``findings`` plus one placeholder row per label a scoring source scores that no finding holds."""
    have = set(findings["label_id"])
    extra = []
    for key, field in sources.scoring_field.items():
        ids, sids = sources.labels.get(field, ((), ()))
        values = sources.scoring[key]
        for lid, sid in zip(ids, sids):
            if lid not in have and lid in values:
                have.add(lid)
                extra.append((key, "", SCORED_KIND, sid, field, lid, values[lid]))
    if not extra:
        return findings
    cols = ["audit_key", "audit", "kind", "sample_id", "field", "label_id", "score"]
    add = pd.DataFrame(extra, columns=cols)
    for c in findings.columns:
        if c not in add:
            add[c] = np.nan if c == "iou" else ""
    return pd.concat([findings, add[findings.columns]], ignore_index=True)


def _view_filter(view, dataset, findings: pd.DataFrame) -> pd.Series:
    """Which findings lie in the view: its samples, and for label findings its labels."""
    if view is dataset:
        return pd.Series(True, index=findings.index)
    keep = findings["sample_id"].isin(set(view.values("id")))
    labelled = findings["label_id"] != ""
    for field in findings.loc[labelled, "field"].unique():
        if view.get_field(field) is None:
            keep &= ~(labelled & (findings["field"] == field))
            continue
        from iou_audit.table.read import ALL_LABEL_TYPES, check_label_field

        _, list_path = check_label_field(view, field, ALL_LABEL_TYPES)
        ids = set(view.values(f"{list_path}.id", unwind=True))
        here = labelled & (findings["field"] == field)
        keep &= ~here | findings["label_id"].isin(ids)
    return keep


def _merge(view, dataset, findings: pd.DataFrame, ran_at: dict, decisions: dict) -> pd.DataFrame:
    if not len(findings):
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    findings = findings[_view_filter(view, dataset, findings)].reset_index(drop=True)
    findings["row_id"] = row_ids_of(findings)
    labelled = findings["label_id"] != ""
    is_missing = ~labelled & (findings["other_label_id"] != "")

    # what the labels and samples look like now: fingerprints, classes, sizes
    wanted: dict[str, set] = {}
    for field, lid in zip(findings.loc[labelled, "field"], findings.loc[labelled, "label_id"]):
        wanted.setdefault(field, set()).add(lid)
    for col_f, col_l in (("other_field", "other_label_id"),):
        rows = findings[(findings[col_f] != "") & (findings[col_l] != "")]
        for field, lid in zip(rows[col_f], rows[col_l]):
            wanted.setdefault(field, set()).add(lid)
    labels = content.read_labels(dataset, wanted)
    sample_ids = set(findings["sample_id"]) | (set(findings["other_sample_id"]) - {""})
    sample_docs = content.read_samples(dataset, sample_ids)
    paths = {sid: d["filepath"] for sid, d in sample_docs.items()}
    sample_rows = findings[~labelled & ~is_missing]
    digests = content.read_mask_digests(dataset, set(sample_rows["sample_id"]) | (set(sample_rows["other_sample_id"])
                                                                                   - {""}))

    # one pass over plain records, grouped by row and sorted by score within a row (pandas
    # per-group operations cost ~5 ms a row: 10 s for BCCD's 2,000 rows)
    score = findings["score"].to_numpy(dtype=np.float64)
    findings["_row_type"] = np.where(labelled, "label", np.where(is_missing, "missing", "sample"))
    findings["_score"] = np.nan_to_num(score, nan=-1.0)
    findings = findings.sort_values(["row_id", "_score"], ascending=[True, False], kind="stable")
    cols = ["row_id", "_row_type", "audit_key", "audit", "kind", "sample_id", "field", "label_id", "other_label_id",
            "other_sample_id", "label", "score", "iou", "detail", "other_field"]
    records = list(zip(*(findings[c].tolist() for c in cols)))
    rows = []
    start = 0
    while start < len(records):
        stop = start
        while stop < len(records) and records[stop][0] == records[start][0]:
            stop += 1
        row = _row(records[start:stop], labels, paths, sample_docs, ran_at, decisions, digests)
        if row is not None:
            rows.append(row)
        start = stop
    if not rows:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    queue = pd.DataFrame(rows, columns=QUEUE_COLUMNS)
    for col in _OPTIONAL:  # None, not NaN/NaT, where a row has no value
        queue[col] = pd.Series([r[col] for r in rows], dtype=object)
    return queue.reset_index(drop=True)


def _row(group: list[tuple], labels: dict, paths: dict, sample_docs: dict, ran_at: dict, decisions: dict,
         digests: dict | None = None):
    """One queue row from its findings (records sorted by score, best first); None when its label
    or a sample was deleted since the audit ran."""
    row_id, row_type, _, _, _, sid, field, lid, olid, osid, flabel = group[0][:11]
    lab = None
    if row_type == "label":
        lab = labels.get(lid)
        fp = lab["fingerprint"] if lab else None
    elif row_type == "missing":
        ref = labels.get(olid)
        fp = ref["fingerprint"] if ref else None
    else:
        osid = osid if osid not in ("", sid) else None
        row_type = "pair" if osid else "sample"
        fp = content.samples_fingerprint(paths, [s for s in (sid, osid) if s], digests)
    if fp is None:
        return None
    lab = lab or {}
    per_audit: dict[str, float] = {}
    by_kind: dict[tuple, list] = {}
    for rec in group:
        if rec[4] == SCORED_KIND:
            continue
        key = rec[2]
        per_audit[key] = max(per_audit.get(key, 0.0), 0.0 if rec[11] != rec[11] else float(rec[11]))  # NaN: 0
        by_kind.setdefault((key, rec[4]), []).append(rec)
    clauses = []
    for (key, kind), recs in by_kind.items():
        best = recs[0]
        other = labels.get(best[8]) if best[8] else None
        words = finding_words(best[3], kind, lab.get("label") or best[10], best[11], best[12], best[13],
                              field=best[6], other_class=other["label"] if other else None,
                              box_px=lab.get("box_px"), confidence=lab.get("confidence"), other_field=best[14])
        more = f" (+{len(recs) - 1} more)" if len(recs) > 1 else ""
        clauses.append(f"{key}: {words}{more}")
    audits = list(per_audit)
    decision = decisions.get(row_id)
    modified = [sample_docs.get(s, {}).get("last_modified_at") for s in (sid, osid) if s]
    modified = max([_naive_utc(m) for m in modified if m is not None], default=None)
    judged_by = audits or list(dict.fromkeys(rec[2] for rec in group))
    state, by, at = _state(decision, fp, max(ran_at[k] or datetime.datetime.min for k in judged_by), modified)
    return {
        "row_id": row_id,
        "sample_id": min(sid, osid) if row_type == "pair" else sid,
        "other_sample_id": max(sid, osid) if row_type == "pair" else None,
        "field": field or None,
        "label_id": lid if row_type == "label" else None,
        "label": (lab.get("label") or flabel or None) if row_type in ("label", "missing") else None,
        "audits": audits,
        "kinds": list(dict.fromkeys(rec[4] for rec in group if rec[4] != SCORED_KIND)),
        "evidence": "; ".join(clauses),
        "score": np.nan,  # the combined suspicion, set over all rows at once (row_suspicion)
        "n_audits": len(audits),
        "review_state": state,
        "reviewed_by": by,
        "reviewed_at": at,
        "row_type": row_type,
        "other_label_ids": sorted({rec[8] for rec in group} - {""}),
        "audit_scores": per_audit,
        "fingerprint": fp,
        "decision_state": decision["state"] if decision else None,
    }


def _state(decision: dict | None, fingerprint: str, flagged_at: datetime.datetime,
           modified_at: datetime.datetime | None):
    """``(review_state, reviewed_by, reviewed_at)`` of a row (rules in the module docstring);
    ``flagged_at``: when the last audit flagging it completed; ``modified_at``: its samples' last
    modification."""
    if decision is None:
        return "open", None, None
    by, at = decision.get("user"), _naive_utc(decision.get("at"))
    if decision.get("fingerprint") == fingerprint:
        return decision["state"], by, at
    if decision["state"] == "fixed":
        if modified_at is None or flagged_at >= modified_at:
            return "open", None, None  # an audit that saw the new label still flags it
        return "fixed", by, at
    return "changed_since_review", by, at
