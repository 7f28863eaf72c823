"""What to relabel: a :class:`Selection` is a view of samples, one label field and the flagged label
ids in it, with the reason each label was flagged (its finding tags and the audits' evidence).

Every relabel action (export, send to annotation, apply a fix) takes a Selection, so it works the
same whether the labels come from the App's selected labels, from the finding tags of the stored
audits, from explicit ids or from the review queue. Nothing here writes to the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

from iou_audit import fiftyone_private as fop
from iou_audit.results import list_audits, load_audit
from iou_audit.table import check_label_field

# Label attribute carrying the reason a label is in the relabel queue (computed in a view for
# export and annotation, so the annotator sees why; never stored by an export).
REASON_ATTR = "relabel_reason"


@dataclass(frozen=True)
class Selection:
    """``samples`` (only the samples holding a flagged label), ``field``, the flagged ``label_ids``
    (in dataset order) and ``reasons`` ``{label_id: text}``."""

    samples: object
    field: str
    label_ids: tuple[str, ...]
    reasons: dict = dc_field(default_factory=dict)
    list_path: str = ""

    @property
    def dataset(self):
        return fop.root_dataset(self.samples)

    def __len__(self) -> int:
        return len(self.label_ids)


def finding_tags(dataset, field: str | None = None) -> list[str]:
    """The label tags written by the stored audits (``<key>:<kind>``) present on ``dataset``
    (in ``field`` only, when given), sorted."""
    keys = list_audits(fop.root_dataset(dataset))
    counts = dataset.count_label_tags(label_fields=field) if field else dataset.count_label_tags()
    return sorted(t for t in counts if any(t.startswith(f"{k}:") for k in keys))


def select_labels(samples, field: str, label_ids=None, tags=None, with_evidence: bool = True,
                  skip_reviewed: bool = True) -> Selection:
    """The labels of ``field`` in ``samples`` to relabel.

    - ``label_ids``: exactly these labels (each must be in ``field`` of ``samples``; unknown ids are
      refused, naming them);
    - else ``tags``: the labels carrying any of these label tags;
    - else: the labels carrying any finding tag of a stored audit (:func:`finding_tags`).

    With tags (not explicit ids) and ``skip_reviewed``, labels whose queue row is decided
    ``not_an_error`` or ``fixed`` (and unchanged since) are left out, as the review queue does.

    ``reasons[label_id]`` lists the label's finding tags and, with ``with_evidence``, each stored
    audit's detail for it, e.g. ``"dups:duplicate (IoU 0.93 with 64f...)"``.
    """
    from fiftyone import ViewField as F

    _, list_path = check_label_field(samples, field)
    if label_ids is not None:
        if isinstance(label_ids, str):
            label_ids = [label_ids]
        wanted = [str(i) for i in label_ids]
        view = samples.select_labels(ids=wanted, fields=field)
    else:
        tags = finding_tags(samples, field) if tags is None else ([tags] if isinstance(tags, str) else list(tags))
        if not tags:
            raise ValueError(f"no finding tags on field {field!r} of {fop.root_dataset(samples).name!r}: "
                             "run an audit first, or pass label_ids or tags")
        view = samples.filter_labels(field, F("tags").contains(tags), only_matches=True)
        wanted = None
    sample_ids, ids_per_sample, tags_per_sample = view.values(["id", f"{list_path}.id", f"{list_path}.tags"])
    found, label_tags, holding = [], {}, []
    for sid, ids, tag_lists in zip(sample_ids, ids_per_sample, tags_per_sample):
        if ids:
            holding.append(sid)
            for lid, t in zip(ids, tag_lists or [None] * len(ids)):
                found.append(lid)
                label_tags[lid] = list(t or [])
    if wanted is not None:
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise ValueError(f"label ids not found in field {field!r} of the given samples: {missing[:10]}"
                             + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    if not found:
        raise ValueError(f"no labels of field {field!r} to relabel in the given samples")
    if wanted is None and skip_reviewed:
        from iou_audit.relabel.review_link import reviewed_label_ids

        reviewed = reviewed_label_ids(samples, field)
        kept = [lid for lid in found if lid not in reviewed]
        if not kept:
            raise ValueError(f"all {len(found)} flagged labels of {field!r} are reviewed (not_an_error or fixed); "
                             "pass skip_reviewed=False or explicit label ids to include them")
        kept_set = set(kept)
        holding = [sid for sid, ids in zip(sample_ids, ids_per_sample) if ids and kept_set & set(ids)]
        found = kept
    reasons = _reasons(samples, field, found, label_tags, with_evidence)
    return Selection(samples.select(holding, ordered=True), field, tuple(found), reasons, list_path)


def select_confirmed(samples, field: str) -> Selection:
    """The labels of ``field`` in ``samples`` whose review decision is ``confirmed`` (a real error:
    relabel), in dataset order; each reason is the label's finding tags, then the triage
    queue's evidence and who confirmed it."""
    from dataclasses import replace

    from iou_audit.relabel.review_link import confirmed_label_ids

    ids, reasons = confirmed_label_ids(samples, field)
    if not ids:
        raise ValueError(f"no confirmed findings on field {field!r} of {fop.root_dataset(samples).name!r}: "
                         "mark queue rows confirmed first (iou_audit.review.mark_review)")
    sel = select_labels(samples, field, label_ids=ids, with_evidence=False)
    # the finding tags (what the sidebar filters on), then the queue's evidence in words
    return replace(sel, reasons={lid: f"{sel.reasons[lid]} | {reasons[lid]}" for lid in sel.label_ids})


def _reasons(samples, field, label_ids, label_tags, with_evidence) -> dict:
    dataset = fop.root_dataset(samples)
    keys = list_audits(dataset)
    evidence: dict = {}
    if with_evidence and keys:
        wanted = set(label_ids)
        for key in keys:
            f = load_audit(dataset, key).findings
            f = f[(f.field == field) & f.label_id.isin(wanted)]
            for row in f.itertuples():
                text = f"{key}:{row.kind}" + (f" ({row.detail})" if isinstance(row.detail, str) and row.detail else "")
                evidence.setdefault(row.label_id, []).append(text)
    out = {}
    for lid in label_ids:
        parts = list(evidence.get(lid, []))
        covered = {p.split(" (", 1)[0] for p in parts}
        parts += [t for t in label_tags.get(lid, []) if t not in covered and any(t.startswith(f"{k}:") for k in keys)]
        out[lid] = "; ".join(parts) if parts else "selected for relabel"
    return out


def reason_view(selection: Selection, attr: str = REASON_ATTR, only_flagged: bool = False):
    """``selection.samples`` with label attribute ``attr`` computed in the view (not stored): the
    reason for flagged labels, None for the others; ``only_flagged`` also hides the other labels."""
    from fiftyone import ViewField as F

    view = selection.samples
    if only_flagged:
        view = view.select_labels(ids=list(selection.label_ids), fields=selection.field)
    lid = F("_id").to_string()
    reason = lid.is_in(list(selection.reasons)).if_else(lid.map_values(selection.reasons), None)
    return view.set_field(f"{selection.list_path}.{attr}", reason)
