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


def _frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    out = {c: cols.get(c, [None] * n) for c in FINDING_COLUMNS}
    out["audit"] = [AUDIT] * n
    return pd.DataFrame(out)


def agreement_findings(ctab: pd.DataFrame, mem: pd.DataFrame, clusters, covered, sample_ids, fields, names,
                       low_iou: float = 0.75) -> pd.DataFrame:
    """All four kinds of findings from the cluster table and the member table."""
    sid = np.asarray(sample_ids, dtype=object)
    fields = np.asarray(fields, dtype=object)
    names = np.asarray(names, dtype=object)
    c_sample = ctab.sample_index.to_numpy()
    n_present = ctab.n_present.to_numpy()
    n_cov = ctab.n_covering.to_numpy()
    others_cov = np.maximum(n_cov - 1, 1)
    mc = mem.cluster.to_numpy()
    # A representative member per cluster (lowest annotator index present) for "other" columns.
    first_k = np.argmax(clusters.members >= 0, axis=1)
    first_id = mem.set_index(["cluster", "annotator"]).label_id
    rep_id = first_id.reindex(pd.MultiIndex.from_arrays([np.arange(len(ctab)), first_k])).to_numpy()
    out = []

    member_iou = mem.member_iou.to_numpy()
    low = (n_present[mc] >= 2) & (member_iou < low_iou)
    if low.any():
        r = mem[low]
        c = r.cluster.to_numpy()
        iou = member_iou[low]
        edges = np.abs(r[["d_left", "d_top", "d_right", "d_bottom"]].to_numpy())
        worst = np.nan_to_num(edges, nan=-1).argmax(axis=1)
        names_e = np.array(["left", "top", "right", "bottom"])
        out.append(_frame(kind=["low_agreement"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), other_label_id=rep_id[c], label=r.label.to_numpy(),
                          score=np.clip(1 - iou, 0, 1), iou=iou,
                          detail=[f"{names[k]}: mean IoU {m:.3f} with the {n - 1} other annotator(s); cluster min {mn:.3f}; "
                                  f"largest edge offset {names_e[w]} {e[w]:.2f} of the object size"
                                  for k, m, mn, n, w, e in zip(r.annotator, iou, ctab.min_iou.to_numpy()[c], n_present[c], worst, edges)]))

    found = n_present >= ctab.quorum.to_numpy()
    cov_by_cluster = covered[c_sample]
    missing = (clusters.members < 0) & cov_by_cluster & found[:, None]
    cm, km = np.nonzero(missing)
    if len(cm):
        score = n_present[cm] / others_cov[cm]
        out.append(_frame(kind=["missing_in_annotator"] * len(cm), sample_id=sid[c_sample[cm]], field=fields[km],
                          other_field=fields[first_k[cm]], other_label_id=rep_id[cm], label=ctab.label.to_numpy()[cm],
                          score=np.clip(score, 0, 1), iou=ctab.mean_iou.to_numpy()[cm],
                          detail=[f"{names[k]} lacks an object found by {n} of {t} annotators" for k, n, t in
                                  zip(km, n_present[cm], n_cov[cm])]))

    extra = ~found[mc]
    if extra.any():
        r = mem[extra]
        c = r.cluster.to_numpy()
        score = 1 - (n_present[c] - 1) / others_cov[c]
        out.append(_frame(kind=["extra_in_annotator"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), label=r.label.to_numpy(), score=np.clip(score, 0, 1),
                          iou=ctab.mean_iou.to_numpy()[c],
                          detail=[f"only {n} of {t} annotators have this object (quorum {q}); {names[k]} is one"
                                  for k, n, t, q in zip(r.annotator, n_present[c], n_cov[c], ctab.quorum.to_numpy()[c])]))

    votes = ctab.votes.to_numpy()
    conflict = (ctab.n_classes.to_numpy()[mc] > 1)
    if conflict.any():
        own = mem.own_votes.to_numpy()
        maj = ctab.majority_votes.to_numpy()[mc]
        flag = conflict & ((own < maj) | ctab.majority_tie.to_numpy()[mc])
        r = mem[flag]
        c = r.cluster.to_numpy()
        own = own[flag]
        score = (n_present[c] - own) / np.maximum(n_present[c] - 1, 1)
        out.append(_frame(kind=["class_conflict"] * len(r), sample_id=sid[c_sample[c]], field=fields[r.annotator],
                          label_id=r.label_id.to_numpy(), other_label_id=rep_id[c], label=r.label.to_numpy(),
                          score=np.clip(score, 0, 1), iou=ctab.mean_iou.to_numpy()[c],
                          detail=[f"{names[k]} says {lab!r}; votes {votes[ci]}" for k, lab, ci in zip(r.annotator, r.label, c)]))
    if not out:
        return _frame(kind=[])
    return pd.concat(out, ignore_index=True)
