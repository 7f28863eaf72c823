"""What the combined suspicion reads besides the findings: scoring sources' per-label values and annotators.

One bulk ``values()`` read per field (label ids, the scoring audits' ``<key>_<attr>`` values, the
annotator attribute), over the view the queue is built on. See :mod:`iou_audit.review.suspicion`
for the rule these feed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iou_audit.review.suspicion import ANNOTATOR_ATTR, SCORING_SOURCES


@dataclass
class LabelSources:
    """Per-label inputs of the combined suspicion.

    Attributes:
        scoring: ``{audit_key: {label_id: p}}``: each scoring source's error probability per label.
        scoring_field: ``{audit_key: field}`` it scores.
        annotator: ``{label_id: annotator}`` (``"<field>"`` or the attribute's value).
        labels: ``{field: (label_ids, sample_ids)}`` of every label read (every scoring and
            annotator field), for the annotators' label counts and ``every_label`` rows.
    """

    scoring: dict = field(default_factory=dict)
    scoring_field: dict = field(default_factory=dict)
    annotator: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)


def annotator_fields(infos: dict) -> dict[str, str | None]:
    """``{field: attribute or None}``: agreement audits' annotator fields (None: the field is the
    annotator; else the attribute naming it).

    >>> annotator_fields({"a": {"audit": "agreement", "config": {"label_fields": ["x", "y"], "annotator_attr": None}}})
    {'x': None, 'y': None}
    """
    out: dict[str, str | None] = {}
    for info in infos.values():
        if info["audit"] != "agreement":
            continue
        cfg = info.get("config") or {}
        attr = cfg.get("annotator_attr")
        for f in cfg.get("label_fields") or ():
            out[f] = attr
    return out


def read_sources(view, infos: dict, label_fields, annotator_attr: str | None = ANNOTATOR_ATTR) -> LabelSources:
    """The scoring sources' values and the annotators of the labels of ``view``.

    Args:
        view: the dataset or view the queue is built on.
        infos: ``{audit_key: audit_info(...)}`` of the audits merged.
        label_fields: fields holding the queue's label rows (their annotators are read too).
        annotator_attr: label attribute naming the annotator (None: only agreement audits' fields).
    """
    from iou_audit.table.read import ALL_LABEL_TYPES, check_label_field

    out = LabelSources()
    wanted: dict[str, list[tuple[str, str]]] = {}  # field -> (audit key, attribute) to read
    for key, info in infos.items():
        spec = SCORING_SOURCES.get(info["audit"])
        if spec is None:
            continue
        f = (info.get("config") or {}).get(spec[0])
        if f and view.get_field(f) is not None:
            out.scoring_field[key] = f
            wanted.setdefault(f, []).append((key, f"{key}_{spec[1]}"))
    by_field = annotator_fields(infos)
    for f in set(label_fields) | set(by_field):
        if f and view.get_field(f) is not None:
            wanted.setdefault(f, [])
    for f, attrs in wanted.items():
        try:
            _, list_path = check_label_field(view, f, ALL_LABEL_TYPES)
        except ValueError:
            continue
        ann_attr = by_field.get(f, annotator_attr) if f in by_field else annotator_attr
        paths = ["id", f"{list_path}.id"] + [f"{list_path}.{a}" for _, a in attrs]
        if ann_attr:
            paths.append(f"{list_path}.{ann_attr}")
        cols = view.values(paths)
        sids = [s for s, ids in zip(cols[0], cols[1]) for _ in (ids or ())]
        flat = [[x for per in col for x in (per or ())] for col in cols[1:]]
        ids = flat[0]
        out.labels[f] = (ids, sids)
        for k, (key, _) in enumerate(attrs):
            one_minus = SCORING_SOURCES[infos[key]["audit"]][2]
            vals = np.array([np.nan if v is None else float(v) for v in flat[1 + k]], dtype=np.float64)
            p = 1.0 - vals if one_minus else vals
            out.scoring[key] = {i: v for i, v in zip(ids, p.tolist()) if v == v}
        if f in by_field and by_field[f] is None:
            out.annotator.update(dict.fromkeys(ids, f))
        elif ann_attr:
            out.annotator.update((i, str(v)) for i, v in zip(ids, flat[-1]) if v is not None)
    return out
