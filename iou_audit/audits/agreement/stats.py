"""Agreement statistics on clusters and pairwise matches (pure numpy/pandas, no database).

Terms: a *cluster* is one object across annotators (see ``clusters.py``); an annotator *covers* a
sample if it labelled it (its labels there, empty or not, are its answer); ``n_covering`` counts the
covering annotators of a cluster's sample.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.agreement.cluster_stats import quorum_count  # noqa: F401  (re-exported)
from iou_audit.audits.agreement.pairs import lookup_iou


def member_long(tables, clusters) -> pd.DataFrame:
    """One row per (cluster, annotator) membership: cluster, annotator, row, label, box."""
    parts = []
    for k, t in enumerate(tables):
        rows = np.arange(len(t.label_id))
        box = np.asarray(t.box, dtype=np.float64).reshape(-1, 4)
        parts.append(pd.DataFrame({
            "cluster": clusters.cluster_of[k], "annotator": k, "row": rows,
            "label": np.asarray(t.label, dtype=object), "label_id": np.asarray(t.label_id, dtype=object),
            "x1": box[:, 0], "y1": box[:, 1], "x2": box[:, 2], "y2": box[:, 3],
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def cluster_pair_ious(tables, clusters, pair_matches):
    """IoU of every present member pair of every cluster.

    Returns ``(cluster, annotator_a, annotator_b, iou)`` arrays (one entry per pair), read from the
    stored IoU blocks, so members joined through a third annotator still get their own IoU.
    """
    cs, aa, bb, vv = [], [], [], []
    m = clusters.members
    for pm in pair_matches:
        both = np.flatnonzero((m[:, pm.a] >= 0) & (m[:, pm.b] >= 0))
        v = lookup_iou(pm, np.asarray(tables[pm.a].offsets), np.asarray(tables[pm.b].offsets),
                       clusters.sample_index[both], m[both, pm.a], m[both, pm.b])
        cs.append(both), aa.append(np.full(len(both), pm.a)), bb.append(np.full(len(both), pm.b)), vv.append(v)
    cat = lambda x, d: np.concatenate(x) if x else np.zeros(0, d)  # noqa: E731
    return cat(cs, np.int64), cat(aa, np.int64), cat(bb, np.int64), cat(vv, float)


def cluster_table(tables, clusters, pair_matches, covered: np.ndarray, quorum) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cluster statistics and the long member table (with per-member agreement).

    Cluster columns: sample_index, n_covering, n_present, quorum, mean_iou, min_iou (NaN for a
    single member), label (majority class; ties -> alphabetical), votes (``"cat:2, dog:1"``),
    n_classes, edge offsets ``d_left/d_top/d_right/d_bottom`` (largest member deviation of that
    edge from the members' mean box, in units of the mean box's width or height).
    """
    pair_iou = pair_iou_stats(tables, clusters, pair_matches)
    return _cluster_table_pandas(tables, clusters, pair_iou, covered, quorum)


def pair_iou_stats(tables, clusters, pair_matches) -> dict:
    """Per cluster: sum, mean and min IoU of its member pairs (NaN for one member); per (cluster,
    annotator): the member's mean IoU with the other members (the fusion weight, a label attribute)."""
    C = len(clusters.sample_index)
    c, a, b, v = cluster_pair_ious(tables, clusters, pair_matches)
    iou_sum = np.bincount(c, weights=v, minlength=C)
    iou_n = np.bincount(c, minlength=C)
    iou_min = np.full(C, np.inf)
    np.minimum.at(iou_min, c, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_iou = np.where(iou_n > 0, iou_sum / np.maximum(iou_n, 1), np.nan)
    iou_min = np.where(iou_n > 0, iou_min, np.nan)
    K = len(tables)
    msum = np.zeros((C, K))
    np.add.at(msum, (c, a), v)
    np.add.at(msum, (c, b), v)
    others = np.maximum(clusters.n_present - 1, 1)
    return {"iou_sum": iou_sum, "mean_iou": mean_iou, "min_iou": iou_min, "member_iou": msum / others[:, None]}


def _cluster_table_pandas(tables, clusters, pair_iou: dict, covered: np.ndarray, quorum) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`cluster_table` with pandas groupby: any label type (``cluster_stats`` needs strings)."""
    C = len(clusters.sample_index)
    mem = member_long(tables, clusters)
    iou_sum, mean_iou, iou_min, member_iou = (pair_iou[k] for k in ("iou_sum", "mean_iou", "min_iou", "member_iou"))
    n_present = clusters.n_present
    mem["member_iou"] = np.where(n_present[mem.cluster] > 1, member_iou[mem.cluster, mem.annotator], np.nan)
    # Edge offsets vs the members' mean box.
    g = mem.groupby("cluster", sort=True)
    mean_box = g[["x1", "y1", "x2", "y2"]].transform("mean")
    w = (mean_box.x2 - mean_box.x1).to_numpy()
    h = (mean_box.y2 - mean_box.y1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        for col, ref, size in (("d_left", "x1", w), ("d_top", "y1", h), ("d_right", "x2", w), ("d_bottom", "y2", h)):
            mem[col] = np.where(size > 0, (mem[ref] - mean_box[ref]).to_numpy() / size, np.nan)
    edges = mem.assign(**{k: mem[k].abs() for k in ("d_left", "d_top", "d_right", "d_bottom")}).groupby("cluster")[
        ["d_left", "d_top", "d_right", "d_bottom"]].max().reindex(range(C))
    votes = mem.groupby(["cluster", "label"], sort=True).size().rename("n").reset_index()
    votes = votes.sort_values(["cluster", "n", "label"], ascending=[True, False, True], kind="stable")
    top = votes.drop_duplicates("cluster").set_index("cluster").reindex(range(C))
    # "cat:2, dog:1" per cluster; the per-group join runs only on clusters with several classes.
    pieces = votes.label.astype(str) + ":" + votes.n.astype(str)
    n_cls = votes.groupby("cluster").size()
    multi = votes.cluster.map(n_cls).to_numpy() > 1
    vote_text = pd.Series(pieces.to_numpy()[~multi], index=votes.cluster.to_numpy()[~multi], dtype=object)
    if multi.any():
        # ", ".join per cluster as one object-array reduceat (votes of a cluster are contiguous)
        p = pieces.to_numpy(dtype=object)[multi]
        cl = votes.cluster.to_numpy()[multi]
        new = np.r_[True, cl[1:] != cl[:-1]]
        p = np.where(np.r_[new[1:], True], p, p + ", ")
        starts = np.flatnonzero(new)
        joined = pd.Series(np.add.reduceat(p, starts), index=cl[starts], dtype=object)
        vote_text = pd.concat([vote_text, joined])
    vote_text = vote_text.reindex(range(C))
    n_cov = covered[clusters.sample_index].sum(axis=1)
    table = pd.DataFrame({
        "cluster": np.arange(C), "sample_index": clusters.sample_index, "n_covering": n_cov,
        "n_present": n_present, "quorum": quorum_count(n_cov, quorum), "mean_iou": mean_iou, "min_iou": iou_min,
        "label": top["label"].to_numpy(), "majority_votes": top["n"].to_numpy(),
        "n_classes": votes.groupby("cluster").size().reindex(range(C)).to_numpy(), "votes": vote_text.to_numpy(),
    })
    table = pd.concat([table, edges.reset_index(drop=True)], axis=1)
    table["iou_pair_sum"] = iou_sum
    # Votes for each member's own class (class_conflict scores); ties for the majority.
    own = votes.set_index(["cluster", "label"]).n
    mem["own_votes"] = own.reindex(pd.MultiIndex.from_arrays([mem.cluster, mem.label])).to_numpy()
    n_top = votes.groupby("cluster").n.transform("max")
    table["majority_tie"] = (votes[votes.n == n_top].groupby("cluster").size().reindex(range(C)) > 1).to_numpy()
    return table, mem


def edge_offsets(tables, cluster: np.ndarray, annotator: np.ndarray, row: np.ndarray, members: np.ndarray,
                 reduceat: np.ndarray | None = None) -> np.ndarray:
    """(len(members), 4) edge offsets ``d_left/d_top/d_right/d_bottom`` of the member-table rows
    ``members``, recomputed from the tables' boxes as :func:`cluster_table` computes them (the kept
    member table does not hold them: 32 bytes per label; findings need them at a few rows).

    The members' mean box is taken over every member of their clusters, in member-table order,
    with the summation pandas chose for the batch that built the cluster: its compensated loop, or
    ``ufunc.reduceat`` where that batch's cluster ids were sorted and its boxes had no NaN
    (``reduceat``: per cluster, True for those; None: none). Each cluster's mean is then the same
    sum of the same values in the same order, so the offsets are bit-identical.

    Example (one object of two boxes; the first member's left edge lies left of the object's mean box):
        >>> from types import SimpleNamespace as T
        >>> ts = [T(box=np.array([[0., 0, .4, .4]])), T(box=np.array([[.2, 0, .4, .4]]))]
        >>> edge_offsets(ts, np.array([0, 0]), np.array([0, 1]), np.array([0, 0]), np.array([0]))[0].tolist()
        [-0.3333333333333333, 0.0, 0.0, 0.0]
    """
    members = np.asarray(members, np.int64)
    out = np.full((len(members), 4), np.nan)
    if not len(members):
        return out
    sel = np.flatnonzero(np.isin(cluster, np.unique(cluster[members])))  # every member of those clusters
    ann, rows, c_sel = annotator[sel], row[sel], np.asarray(cluster[sel], np.int64)
    box = np.empty((len(sel), 4))
    for k, t in enumerate(tables):
        here = ann == k
        box[here] = np.asarray(t.box, dtype=np.float64).reshape(-1, 4)[rows[here]]
    mean = np.empty_like(box)
    by_reduceat = np.zeros(len(sel), bool) if reduceat is None else np.asarray(reduceat, bool)[c_sel]
    for use_reduceat in (False, True):
        part = np.flatnonzero(by_reduceat == use_reduceat)
        if not len(part):
            continue
        if use_reduceat:  # sorted ids, no NaN: pandas reduces each cluster's run of rows
            part = part[np.argsort(c_sel[part], kind="stable")]
            c, b = c_sel[part], box[part]
        else:  # a last row of a lower id keeps the ids unsorted: pandas' compensated loop, per cluster
            c, b = np.r_[c_sel[part], -1], np.vstack([box[part], np.zeros((1, 4))])
        frame = pd.DataFrame({"cluster": c, "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3]})
        mean[part] = frame.groupby("cluster", sort=True)[["x1", "y1", "x2", "y2"]].transform("mean").to_numpy()[:len(part)]
    w = mean[:, 2] - mean[:, 0]
    h = mean[:, 3] - mean[:, 1]
    at = np.searchsorted(sel, members)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, size in enumerate((w, h, w, h)):
            out[:, j] = np.where(size > 0, (box[:, j] - mean[:, j]) / size, np.nan)[at]
    return out


def edge_mean_by_reduceat(mem: pd.DataFrame) -> bool:
    """Whether :func:`cluster_table`'s groupby mean of the member boxes took pandas' ``reduceat``
    path (sorted cluster ids and no NaN box value) rather than its compensated loop."""
    from iou_audit.audits.agreement.cluster_stats import is_sorted

    return bool(len(mem)) and is_sorted(mem.cluster.to_numpy()) and not np.isnan(mem[["x1", "y1", "x2", "y2"]].to_numpy()).any()


def pair_table(tables, names, pair_matches, covered: np.ndarray) -> pd.DataFrame:
    """The annotator x annotator table: one row per pair on the samples both covered.

    ``f1`` = 2 * matched / (n_a + n_b) (geometry only), ``f1_class`` counts only matches whose
    classes agree, ``mean_iou`` is over matched pairs.
    """
    rows = []
    for pm in pair_matches:
        ta, tb = tables[pm.a], tables[pm.b]
        both = covered[:, pm.a] & covered[:, pm.b]
        sa = np.repeat(both, np.diff(ta.offsets))
        sb = np.repeat(both, np.diff(tb.offsets))
        matched = np.flatnonzero((pm.match_a >= 0) & sa)
        same = np.asarray(ta.label, dtype=object)[matched] == np.asarray(tb.label, dtype=object)[pm.match_a[matched]]
        n_a, n_b, m = int(sa.sum()), int(sb.sum()), len(matched)
        den = n_a + n_b
        rows.append({
            "annotator_a": names[pm.a], "annotator_b": names[pm.b], "n_samples": int(both.sum()),
            "n_a": n_a, "n_b": n_b, "matched": m, "matched_same_class": int(same.sum()),
            "f1": 2 * m / den if den else np.nan, "f1_class": 2 * int(same.sum()) / den if den else np.nan,
            "mean_iou": float(pm.iou_a[matched].mean()) if m else np.nan,
        })
    return pd.DataFrame(rows)


def matrix(pairs: pd.DataFrame, names, column: str) -> pd.DataFrame:
    """Symmetric annotator x annotator matrix of one ``pair_table`` column (diagonal 1)."""
    names = list(names)
    if len(set(names)) < len(names):  # repeated names: .loc sets every row and column of a name
        out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
        for r in pairs.itertuples():
            out.loc[r.annotator_a, r.annotator_b] = out.loc[r.annotator_b, r.annotator_a] = getattr(r, column)
        return out
    # filled as an array, then framed (per-cell .loc writes took 2 ms a matrix)
    where = {n: i for i, n in enumerate(names)}
    values = np.eye(len(names))
    for a, b, v in zip(pairs.annotator_a.tolist(), pairs.annotator_b.tolist(), pairs[column].tolist()) if len(pairs) else ():
        values[where[a], where[b]] = values[where[b], where[a]] = v
    return pd.DataFrame(values, index=names, columns=names)


def per_image_and_class(tables, pair_matches, covered: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Matching F1 and mean IoU per sample and per class, pooled over all annotator pairs.

    Per class, a pair counts as agreeing only if both labels carry that class; the F1 denominator is
    the number of labels of that class in both annotators of each pair.
    """
    from iou_audit.audits.agreement.cluster_stats import RunningGroupSum, string_labels

    S = covered.shape[0]
    img = np.zeros((S, 4))  # matched, labels, iou sum, matched same class
    labels = [np.asarray(t.label, dtype=object) for t in tables]
    coded = string_labels(np.concatenate(labels)) if sum(map(len, labels)) else None
    start = np.cumsum([0] + [len(x) for x in labels])
    # Pair after pair, each pair's per-label arrays are folded into the sums and dropped (they used
    # to be kept for every pair and joined: ~0.5 GB at 100,000 samples). The sums are taken in the
    # same order as over the joined arrays, so every float is bit-identical: per sample, the IoUs
    # added in pair order as one np.bincount would (counts are exact integers); per class, the
    # compensated sum pandas' groupby takes over the same rows in the same order, the zeros of
    # unmatched labels included.
    if coded is not None:
        code, names = coded
        running = RunningGroupSum(len(names))
        n_labels, n_matched = np.zeros(len(names), np.int64), np.zeros(len(names), np.int64)
    for a, rows_a, b, rows_b, same_a, same_iou in _pair_rows(tables, pair_matches, covered, labels, coded, start, img):
        if coded is not None:
            ca, cb, cm = code[start[a] + rows_a], code[start[b] + rows_b], code[start[a] + same_a]
            running.add(ca), running.add(cb), running.add(cm, same_iou)
            n_labels += np.bincount(ca, minlength=len(names)) + np.bincount(cb, minlength=len(names))
            n_matched += np.bincount(cm, minlength=len(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_image = pd.DataFrame({
            "sample_index": np.arange(S), "n_labels": img[:, 1].astype(int), "matched": img[:, 0].astype(int),
            "f1": 2 * img[:, 0] / img[:, 1], "f1_class": 2 * img[:, 3] / img[:, 1], "mean_iou": img[:, 2] / img[:, 0],
        })
    if not pair_matches:
        return per_image, pd.DataFrame(columns=["label", "n_labels", "matched", "f1", "mean_iou"]).reset_index(drop=True)
    if coded is None or running.sorted:  # not all strings, or e.g. a single class (pandas sums with reduceat): pandas
        cls = list(_pair_rows(tables, pair_matches, covered, labels, coded, start, None))
        return per_image, _per_class_pandas(labels, cls)
    present = np.flatnonzero(n_labels > 0)
    n_labels, n_matched, iou_sum = n_labels[present], n_matched[present], running.total[present]
    per_class = pd.DataFrame({
        "label": names[present], "n_labels": n_labels, "matched": n_matched, "f1": 2 * n_matched / n_labels,
        "mean_iou": np.where(n_matched == 0, np.nan, iou_sum / np.maximum(n_matched, 1)),
    })
    return per_image, per_class


def _pair_rows(tables, pair_matches, covered: np.ndarray, labels, coded, start, img: np.ndarray | None):
    """Per pair: ``(a, label rows of a, b, label rows of b, matched same-class rows of a, their
    IoUs)`` on the samples both covered; with ``img`` given, also adds the pair's per-sample
    counts and IoU sums into it (columns matched, labels, IoU sum, matched same class)."""
    from iou_audit.audits.agreement.cluster_stats import add_in_order

    S = covered.shape[0]
    for pm in pair_matches:
        ta, tb = tables[pm.a], tables[pm.b]
        both = covered[:, pm.a] & covered[:, pm.b]
        sa_idx = np.repeat(np.arange(S), np.diff(ta.offsets))
        sb_idx = np.repeat(np.arange(S), np.diff(tb.offsets))
        ka, kb = both[sa_idx], both[sb_idx]
        matched = np.flatnonzero((pm.match_a >= 0) & ka)
        if coded is not None:  # all labels str: equal codes = equal labels, without comparing objects
            same = coded[0][start[pm.a] + matched] == coded[0][start[pm.b] + pm.match_a[matched]]
        else:
            same = labels[pm.a][matched] == labels[pm.b][pm.match_a[matched]]
        if img is not None:
            img[:, 0] += np.bincount(sa_idx[matched], minlength=S)
            add_in_order(img[:, 2], sa_idx[matched], pm.iou_a[matched])
            img[:, 3] += np.bincount(sa_idx[matched[same]], minlength=S)
            img[:, 1] += np.bincount(sa_idx[ka], minlength=S) + np.bincount(sb_idx[kb], minlength=S)
        yield pm.a, np.flatnonzero(ka), pm.b, np.flatnonzero(kb), matched[same], pm.iou_a[matched[same]]


def _per_class_pandas(labels, cls) -> pd.DataFrame:
    """The per-class table with a pandas groupby (labels that are not all strings)."""
    frames = []
    for a, rows_a, b, rows_b, same_a, same_iou in cls:
        frames.append(pd.DataFrame({"label": labels[a][rows_a], "labels": 1, "matched": 0, "iou_sum": 0.0}))
        frames.append(pd.DataFrame({"label": labels[b][rows_b], "labels": 1, "matched": 0, "iou_sum": 0.0}))
        frames.append(pd.DataFrame({"label": labels[a][same_a], "labels": 0, "matched": 1, "iou_sum": same_iou}))
    c = pd.concat(frames, ignore_index=True).groupby("label").sum()
    per_class = pd.DataFrame({
        "label": c.index, "n_labels": c["labels"].to_numpy(), "matched": c["matched"].to_numpy(),
        "f1": 2 * c["matched"].to_numpy() / c["labels"].to_numpy(),
        "mean_iou": c["iou_sum"].to_numpy() / np.maximum(c["matched"].to_numpy(), 1),
    })
    per_class.loc[per_class.matched == 0, "mean_iou"] = np.nan
    return per_class.reset_index(drop=True)


def member_class_agrees(ctab: pd.DataFrame, mem: pd.DataFrame) -> np.ndarray:
    """Per member row: its class is the plurality class of the *other* members of its object.

    That is, the others' votes for it (own_votes - 1) are >= 1 and >= the others' best count for
    another class. Another class has at most as many votes as the majority, so only a majority
    member can pass; it then beats every other class unless the majority is tied, hence:
    own_votes == majority_votes >= 2 and no tie. (This reads the cluster table instead of
    re-counting classes with a groupby: 50 ms on the benchmark.)

    Example (one object, votes cat 2 / dog 1):
        >>> ctab = pd.DataFrame({"majority_votes": [2], "majority_tie": [False]})
        >>> mem = pd.DataFrame({"cluster": [0, 0, 0], "own_votes": [2, 2, 1]})
        >>> member_class_agrees(ctab, mem).tolist()
        [True, True, False]
    """
    c = mem.cluster.to_numpy()
    top_n = ctab.majority_votes.to_numpy()[c]
    return (mem.own_votes.to_numpy() == top_n) & (top_n >= 2) & ~ctab.majority_tie.to_numpy(dtype=bool)[c]


def annotator_reliability(names, clusters, ctab: pd.DataFrame, mem: pd.DataFrame, covered: np.ndarray, quorum) -> pd.DataFrame:
    """Each annotator against the consensus of the *others* (leave-one-out), to rank annotators.

    An object is in the others' consensus when at least half of the other covering annotators
    (ceil(n/2), at least 1) have it -- "half", not a strict majority, so that with two others one
    annotator's miss does not discredit the third. TP = such objects this annotator also has,
    FN = ones it lacks, FP = its labels outside the others' consensus. ``reliability`` is that F1
    (geometry only); ``class_accuracy`` is the share of TPs whose class is the others' plurality
    class (ties count as agreement); ``reliability_class`` counts only those TPs (the ranking key);
    ``mean_iou`` is its labels' mean IoU with the other members. ``quorum`` is not used here.
    """
    rows = []
    present = clusters.members >= 0
    cov = covered[clusters.sample_index]
    c = mem.cluster.to_numpy()
    class_ok = member_class_agrees(ctab, mem)
    for k, name in enumerate(names):
        others = present.sum(axis=1) - present[:, k]
        n_others = np.maximum(cov.sum(axis=1) - cov[:, k], 1)
        consensus = cov[:, k] & (others >= np.maximum((n_others + 1) // 2, 1)) & (others > 0)
        tp = consensus & present[:, k]
        fn, fp = consensus & ~present[:, k], ~consensus & present[:, k]
        is_k = mem.annotator.to_numpy() == k
        tp_member = is_k & tp[c]
        tp_class = int((tp_member & class_ok).sum())
        den = 2 * tp.sum() + fp.sum() + fn.sum()
        rows.append({
            "annotator": name, "n_labels": int(present[:, k].sum()), "tp": int(tp.sum()), "fn": int(fn.sum()),
            "fp": int(fp.sum()), "reliability": 2 * tp.sum() / den if den else np.nan,
            "class_accuracy": tp_class / tp_member.sum() if tp_member.sum() else np.nan,
            "reliability_class": 2 * tp_class / den if den else np.nan,
            "mean_iou": float(np.nanmean(mem.member_iou.to_numpy()[tp_member])) if tp_member.any() else np.nan,
        })
    out = pd.DataFrame(rows)
    out["rank"] = out.reliability_class.rank(ascending=False, method="min")
    return out
