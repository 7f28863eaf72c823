"""Findings of the agreement audit, in the shared findings model (one row per label involved).

Kinds and scores (all in 0..1, higher = more suspicious):
- ``low_agreement``: a label in a cluster of >= 2 annotators whose mean IoU with the other members
  is below ``low_iou``, so a single careless outline is pinned on its author (with K = 2 both
  members are flagged); score ``1 - that IoU``; the detail names the edge that deviates most from
  the members' mean box (in units of the object's size): "sloppy edge" vs "different object".
- ``missing_in_annotator``: a quorum found the object, this covering annotator did not; one row
  per (object, missing annotator) naming a member as ``other_label_id``; score = share of the other
  covering annotators that found it.
- ``extra_in_annotator``: the object is below quorum; one row per member, score = share of the
  other covering annotators that did *not* find it.
- ``class_conflict``: members disagree on the class; one row per member whose class is not the
  (unique) majority, or every member on a tie; score = share of the other members disagreeing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FINDING_COLUMNS = ["audit", "kind", "sample_id", "field", "label_id", "other_field", "other_label_id",
                   "other_sample_id", "label", "score", "iou", "detail"]
AUDIT = "agreement"


KINDS = ("low_agreement", "missing_in_annotator", "extra_in_annotator", "class_conflict")


def _frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    out = {c: cols.get(c, [None] * n) for c in FINDING_COLUMNS}
    out["audit"] = [AUDIT] * n
    return pd.DataFrame(out)


def _strings(column, rows: np.ndarray) -> np.ndarray:
    """``column`` (a Series, or a :class:`MemberColumn`) at positions ``rows`` as an object array;
    -1 gives NaN (a missing value)."""
    out = np.full(len(rows), np.nan, dtype=object)
    ok = rows >= 0
    out[ok] = column.iloc[rows[ok]].to_numpy(dtype=object) if isinstance(column, pd.Series) else column.take(rows[ok])
    return out


class MemberColumn:
    """A column of the annotator tables (``label_id`` or ``label``) at the member table's rows, read
    only where a finding needs it: the member table does not keep its own copy of these strings
    (about 40 bytes per label), member ``i`` being row ``row[i]`` of table ``annotator[i]``.

    Example:
        >>> from types import SimpleNamespace as T
        >>> ts = [T(label_id=np.array([b"a1", b"a2"])), T(label_id=np.array(["b1"], dtype=object))]
        >>> MemberColumn(ts, "label_id", np.array([1, 0, 0]), np.array([0, 0, 1])).take(np.array([2, 0])).tolist()
        ['a2', 'b1']
    """

    def __init__(self, tables, name: str, annotator: np.ndarray, row: np.ndarray):
        self.columns = [getattr(t, name) for t in tables]
        self.annotator, self.row = annotator, row

    def take(self, members: np.ndarray) -> np.ndarray:
        out = np.empty(len(members), dtype=object)
        ann, row = self.annotator[members], self.row[members]
        for k, col in enumerate(self.columns):
            sel = np.flatnonzero(ann == k)
            if len(sel):
                values = np.asarray(col)[row[sel]]
                out[sel] = values.astype(str).astype(object) if values.dtype.kind == "S" else values.astype(object)
        return out


def agreement_findings(ctab: pd.DataFrame, mem: pd.DataFrame, clusters, covered, sample_ids, fields, names,
                       low_iou: float = 0.75, tables=None) -> pd.DataFrame:
    """All four kinds of findings from the cluster table and the member table (its label ids,
    classes and edge offsets read from ``tables``, the annotator tables, when it has no such columns)."""
    # Columns are read out of the frames as numpy arrays (row selections of the frames cost 50 ms
    # on the 3 x 5,000 x 15 benchmark); string columns only at the rows a finding needs (turning
    # pandas' string columns back into objects is the slow part); the detail texts are formatted
    # from Python scalars (numpy scalars format the same, slower).
    sid = np.asarray(sample_ids, dtype=object)
    fields = np.asarray(fields, dtype=object)
    names_l = [str(n) for n in names]
    c_sample = ctab.sample_index.to_numpy()
    n_present = ctab.n_present.to_numpy()
    n_cov = ctab.n_covering.to_numpy()
    quorum = ctab.quorum.to_numpy()
    mean_iou = ctab.mean_iou.to_numpy()
    others_cov = np.maximum(n_cov - 1, 1)
    mc = mem.cluster.to_numpy()
    m_ann = mem.annotator.to_numpy()
    if "label_id" in mem:
        m_label, m_id = mem["label"], mem["label_id"]
    else:
        m_row = mem.row.to_numpy()
        m_label, m_id = (MemberColumn(tables, c, m_ann, m_row) for c in ("label", "label_id"))
    # A representative member per cluster (lowest annotator index present) for "other" columns:
    # the member whose (cluster, annotator) is (c, first_k[c]).
    K = clusters.members.shape[1]
    first_k = np.argmax(clusters.members >= 0, axis=1)
    key = mc.astype(np.int64) * K + m_ann  # (the member table's columns may be narrow ints)
    order = np.argsort(key, kind="stable")
    want = np.arange(len(ctab)) * K + first_k
    pos = np.searchsorted(key[order], want)
    found_rep = pos < len(order)
    found_rep[found_rep] = key[order[pos[found_rep]]] == want[found_rep]
    rep_row = np.where(found_rep, order[np.minimum(pos, max(len(order) - 1, 0))], -1)

    def rep_id(c):
        return _strings(m_id, rep_row[c])
    out = []

    member_iou = mem.member_iou.to_numpy()
    low = np.flatnonzero((n_present[mc] >= 2) & (member_iou < low_iou))
    if len(low):
        c = mc[low]
        iou = member_iou[low]
        if "d_left" in mem:
            edges = np.abs(mem[["d_left", "d_top", "d_right", "d_bottom"]].to_numpy()[low])
        else:  # the kept member table has no edge offsets: computed at these rows only
            from iou_audit.audits.agreement.stats import edge_offsets

            edges = np.abs(edge_offsets(tables, mc, m_ann, mem.row.to_numpy(), low))
        worst = np.nan_to_num(edges, nan=-1).argmax(axis=1)
        names_e = ["left", "top", "right", "bottom"]
        out.append(_frame(kind=["low_agreement"] * len(low), sample_id=sid[c_sample[c]], field=fields[m_ann[low]],
                          label_id=_strings(m_id, low), other_label_id=rep_id(c), label=_strings(m_label, low),
                          score=np.clip(1 - iou, 0, 1), iou=iou,
                          detail=[f"{names_l[k]}: mean IoU {m:.3f} with the {n - 1} other annotator(s); cluster min {mn:.3f}; "
                                  f"largest edge offset {names_e[w]} {e:.2f} of the object size"
                                  for k, m, mn, n, w, e in zip(m_ann[low].tolist(), iou.tolist(),
                                                               ctab.min_iou.to_numpy()[c].tolist(), n_present[c].tolist(),
                                                               worst.tolist(), edges[np.arange(len(low)), worst].tolist())]))

    found = n_present >= quorum
    cov_by_cluster = covered[c_sample]
    missing = (clusters.members < 0) & cov_by_cluster & found[:, None]
    cm, km = np.nonzero(missing)
    if len(cm):
        score = n_present[cm] / others_cov[cm]
        out.append(_frame(kind=["missing_in_annotator"] * len(cm), sample_id=sid[c_sample[cm]], field=fields[km],
                          other_field=fields[first_k[cm]], other_label_id=rep_id(cm), label=_strings(ctab["label"], cm),
                          score=np.clip(score, 0, 1), iou=mean_iou[cm],
                          detail=[f"{names_l[k]} lacks an object found by {n} of {t} annotators" for k, n, t in
                                  zip(km.tolist(), n_present[cm].tolist(), n_cov[cm].tolist())]))

    extra = np.flatnonzero(~found[mc])
    if len(extra):
        c = mc[extra]
        score = 1 - (n_present[c] - 1) / others_cov[c]
        out.append(_frame(kind=["extra_in_annotator"] * len(extra), sample_id=sid[c_sample[c]], field=fields[m_ann[extra]],
                          label_id=_strings(m_id, extra), label=_strings(m_label, extra), score=np.clip(score, 0, 1), iou=mean_iou[c],
                          detail=[f"only {n} of {t} annotators have this object (quorum {q}); {names_l[k]} is one"
                                  for k, n, t, q in zip(m_ann[extra].tolist(), n_present[c].tolist(), n_cov[c].tolist(),
                                                        quorum[c].tolist())]))

    conflict = (ctab.n_classes.to_numpy()[mc] > 1)
    if conflict.any():
        own = mem.own_votes.to_numpy()
        maj = ctab.majority_votes.to_numpy()[mc]
        flag = np.flatnonzero(conflict & ((own < maj) | ctab.majority_tie.to_numpy()[mc]))
        c = mc[flag]
        own = own[flag]
        labels, votes = _strings(m_label, flag), _strings(ctab["votes"], c)
        score = (n_present[c] - own) / np.maximum(n_present[c] - 1, 1)
        out.append(_frame(kind=["class_conflict"] * len(flag), sample_id=sid[c_sample[c]], field=fields[m_ann[flag]],
                          label_id=_strings(m_id, flag), other_label_id=rep_id(c), label=labels,
                          score=np.clip(score, 0, 1), iou=mean_iou[c],
                          detail=[f"{names_l[k]} says {lab!r}; votes {v}"
                                  for k, lab, v in zip(m_ann[flag].tolist(), labels.tolist(), votes.tolist())]))
    if not out:
        return _frame(kind=[])
    return pd.concat(out, ignore_index=True)
