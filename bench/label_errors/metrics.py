"""Label-level metrics of one method on one case: :func:`evaluate`.

A method hands in

- ``label_scores``: ``{ground_truth label id: suspicion}`` (higher = more likely wrong; a label not
  in the dict, or NaN, ranks below every scored one);
- ``candidates``: ``[(sample_id, box, score), ...]`` missing-object candidates (``box`` relative
  ``[x0, y0, x1, y1]``), on the same scale as the label scores (they share one queue).

Rules (documented here once; the runner and the README refer to them):

- Per label error type ``T``: positives = the labels of type ``T``, negatives = the clean labels.
  A ``duplicate`` is the added copy (it fits the object worse than the correct label, so the
  evidence can tell which one to delete); the correct label it duplicates leaves every pool and the
  queue (flagging it is neither a hit nor a false alarm), so random scores still give AUROC 0.5.
- A candidate matches a dropped object in the same image at IoU >= :data:`MATCH_IOU` (class-agnostic);
  candidates claim dropped objects greedily by score, one candidate per object, so a second
  candidate on the same object is a false row. ``dropped`` AUROC / AP: each dropped object scores
  its best matching candidate (any candidate at IoU >= 0.5), -inf when none; negatives = clean labels.
- One queue of all errors, missing objects included (``all``): rows = every label plus every
  candidate; positives = error labels, candidates that claimed a dropped object, and every dropped
  object no candidate claimed (ranked last, never reviewed); negatives = clean labels and the other
  candidates.
- Recall at a review budget ``b`` (:data:`BUDGETS`): the queue is reviewed top-down for
  ``ceil(b * number of labels)`` rows; recall of type ``T`` = its errors found in those rows / all
  errors of that type (dropped: objects whose claiming candidate was reviewed). Ties in the queue
  are broken by one permutation fixed by the case's seed.
- AUROC and AP are scikit-learn's ``roc_auc_score`` (ties count one half) and
  ``average_precision_score``; NaN when a pool has no positive.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.label_errors.simulate import ERROR_TYPES, box_iou_one

MATCH_IOU = 0.5
BUDGETS = (0.05, 0.10)
METRICS = ("auroc", "ap") + tuple(f"recall@{round(b * 100)}%" for b in BUDGETS)
ALL = "all"


def _finite(x: np.ndarray, floor: float) -> np.ndarray:
    return np.where(np.isfinite(x), x, floor)


def _auc_ap(score: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    if positive.all() or not positive.any():
        return float("nan"), float("nan")
    return float(roc_auc_score(positive, score)), float(average_precision_score(positive, score))


def match_candidates(candidates, dropped) -> tuple[np.ndarray, np.ndarray]:
    """``(claimed, best)``: per candidate the dropped row it claims (-1 none), per dropped object the
    best score of any candidate at IoU >= :data:`MATCH_IOU` (-inf none).

    Example:
        >>> import pandas as pd
        >>> d = pd.DataFrame({"sample_id": ["s"], "box": [np.array([.1, .1, .3, .3])]})
        >>> c = [("s", [.1, .1, .3, .31], 0.9), ("s", [.1, .1, .3, .3], 0.5), ("t", [.1, .1, .3, .3], 1.0)]
        >>> claimed, best = match_candidates(c, d)
        >>> claimed.tolist(), best.tolist()
        ([0, -1, -1], [0.9])
    """
    n = len(candidates)
    claimed = np.full(n, -1, np.int64)
    best = np.full(len(dropped), -np.inf)
    if not n or not len(dropped):
        return claimed, best
    by_sample: dict = {}
    for j, sid in enumerate(dropped["sample_id"]):
        by_sample.setdefault(sid, []).append(j)
    dboxes = np.stack(list(dropped["box"])).astype(float)
    scores = np.array([float(c[2]) for c in candidates])
    taken = np.zeros(len(dropped), bool)
    for i in np.argsort(-_finite(scores, -np.inf), kind="stable"):
        rows = by_sample.get(candidates[i][0])
        if not rows:
            continue
        ious = box_iou_one(np.asarray(candidates[i][1], float), dboxes[rows])
        ok = ious >= MATCH_IOU
        for j in np.asarray(rows)[ok]:
            best[j] = max(best[j], scores[i])
        free = ok & ~taken[rows]
        if free.any():
            j = rows[int(np.argmax(np.where(free, ious, -1)))]
            taken[j] = True
            claimed[i] = j
    return claimed, best


def evaluate(case, label_scores: dict, candidates=()) -> dict:
    """Metrics of one method on one case: ``{type: {metric: value, "n_pos": n}}`` for every type of
    :data:`ERROR_TYPES` and ``"all"`` (the one queue), with the metrics :data:`METRICS` (see the
    module docstring for the rules).

    Example:
        >>> oracle = {i: float(t != "clean") for i, t in case.truth.labels["type"].items()}   # doctest: +SKIP
        >>> evaluate(case, oracle)["swap"]["auroc"]                                          # doctest: +SKIP
        1.0
    """
    truth = getattr(case, "truth", case)
    labels, dropped = truth.labels, truth.dropped
    seed = getattr(case, "seed", 0)
    ids = labels.index.to_numpy()
    types = labels["type"].to_numpy(object)
    score = np.array([_as_float(label_scores.get(i)) for i in ids])
    # the correct label a duplicate copies is in no pool (see the module docstring)
    in_queue = ~labels.index.isin(labels["pair_id"].dropna().tolist())
    candidates = list(candidates)
    cscore = np.array([_as_float(c[2]) for c in candidates], float)
    claimed, best = match_candidates(candidates, dropped)
    finite = np.concatenate([score[np.isfinite(score)], cscore[np.isfinite(cscore)], [0.0]])
    floor = finite.min() - 1.0  # below every scored row: unscored labels, unfound dropped objects
    score, cscore, best = _finite(score, floor), _finite(cscore, floor), _finite(best, floor - 1.0)

    # the one queue: label rows, candidate rows, then unfound dropped objects (never reviewed)
    q_score = np.concatenate([score[in_queue], cscore])
    q_type = np.concatenate([types[in_queue], np.where(claimed >= 0, "dropped", "candidate")]).astype(object)
    q_pos = (q_type != "clean") & (q_type != "candidate")
    tiebreak = np.random.default_rng([seed, 101]).permutation(len(q_score))
    order = np.lexsort((tiebreak, -q_score))
    n_labels = int(in_queue.sum())
    found = {}
    for b in BUDGETS:
        top = order[:math.ceil(b * n_labels)]
        found[b] = q_type[top][q_pos[top]]
    n_unfound = int(len(dropped) - (claimed >= 0).sum())

    out = {}
    clean = (types == "clean") & in_queue
    for t in ERROR_TYPES:
        if t == "dropped":
            pos_score, n_pos = best, len(dropped)
        else:
            pos_score = score[types == t]
            n_pos = len(pos_score)
        s = np.concatenate([pos_score, score[clean]])
        y = np.r_[np.ones(len(pos_score), bool), np.zeros(int(clean.sum()), bool)]
        auc, ap = _auc_ap(s, y)
        row = {"auroc": auc, "ap": ap, "n_pos": int(n_pos)}
        for b in BUDGETS:
            row[f"recall@{round(b * 100)}%"] = float((found[b] == t).sum() / n_pos) if n_pos else float("nan")
        out[t] = row
    s = np.concatenate([q_score, np.full(n_unfound, floor - 1.0)])
    y = np.concatenate([q_pos, np.ones(n_unfound, bool)])
    auc, ap = _auc_ap(s, y)
    n_err = int(y.sum())
    out[ALL] = {"auroc": auc, "ap": ap, "n_pos": n_err,
                **{f"recall@{round(b * 100)}%": float(len(found[b]) / n_err) if n_err else float("nan")
                   for b in BUDGETS}}
    return out


def _as_float(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return -np.inf
    return x if math.isfinite(x) else -np.inf
