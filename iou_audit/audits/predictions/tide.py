"""TIDE-style attribution of the AP lost to each error type (Bolya et al., "TIDE", ECCV 2020).

At one IoU threshold ``t`` (COCO 101-point AP per class, mean over classes with ground truth), each
error type is fixed alone by an oracle and the AP recomputed; ``dAP[type] = AP(fixed) - AP``:

- ``class``: the prediction takes the class of the label it overlaps at IoU >= t, then all are re-matched
  (if that label is already taken it becomes a duplicate, i.e. still a false positive);
- ``loc``: the prediction's IoU with its same-class label becomes 1, then all are re-matched;
- ``both``, ``duplicate``, ``background``: those predictions are removed;
- ``missed``: labels left unmatched and not the target of a ``class`` or ``loc`` prediction are
  removed from the ground truth (fewer positives to recall).

Kinds come from :func:`iou_audit.audits.predictions.errors.classify_errors` run on class-aware greedy
matching at ``t``. Re-matching uses the COCO-exact kernel of ``iou_audit.matching``.
"""
from __future__ import annotations

import numpy as np

from iou_audit.audits.predictions.errors import PRED_KINDS
from iou_audit.audits.predictions.pairs import PredictionPairs
from iou_audit.matching.ap import category_precision
from iou_audit.matching.greedy import run_greedy
from iou_audit.overlaps import pair_rows

TIDE_TYPES = ("class", "loc", "both", "duplicate", "background", "missed")


def mean_ap_at(match1, ignored1, codes, scores, npig, active) -> float:
    """Mean over classes with ground truth of the 101-point AP, from one matching (COCO's accumulation,
    :func:`iou_audit.matching.ap.category_precision`, on the ``active`` predictions).

    Example:
        >>> mean_ap_at(np.array([0, -1]), np.zeros(2, bool), np.array([0, 0]), np.array([.9, .8]),
        ...            np.array([1]), np.ones(2, bool)).__round__(6)
        1.0
    """
    rows = np.flatnonzero(active)
    # by class, then descending score; ties keep the row (image, then input) order, as COCO's
    rows = rows[np.lexsort((-scores[rows], codes[rows]))]
    bounds = np.searchsorted(codes[rows], np.arange(len(npig) + 1))
    precision, _ = category_precision(np.asarray(match1) >= 0, ignored1, rows, bounds, npig)
    # AP per class, then the mean over classes (TIDE's order of the two means)
    per_class = np.ascontiguousarray(precision.T)
    aps = [per_class[k].mean() for k in np.flatnonzero(npig > 0)]
    return float(np.mean(aps)) if aps else -1.0


def tide_missed(pred_kind: np.ndarray, pred_target: np.ndarray, gt_match: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """TIDE's ``missed`` labels: unmatched, not crowd, and no ``class``/``loc`` prediction points at them.

    Example:
        >>> k = [PRED_KINDS.index("class"), PRED_KINDS.index("background")]
        >>> tide_missed(np.array(k), np.array([0, -1]), np.array([-1, -1]), np.zeros(2, bool)).tolist()
        [False, True]
    """
    kind = np.asarray(pred_kind)
    explained = np.zeros(len(gt_match), bool)
    points = (kind == PRED_KINDS.index("class")) | (kind == PRED_KINDS.index("loc"))
    explained[pred_target[points & (pred_target >= 0)]] = True
    return (np.asarray(gt_match) < 0) & ~np.asarray(gt_crowd, bool) & ~explained


def tide_attribution(
    pairs: PredictionPairs,
    pred_kind: np.ndarray,
    pred_target: np.ndarray,
    gt_match: np.ndarray,
    iou_thresh: float = 0.5,
) -> tuple[dict[str, float], dict[str, int]]:
    """``({"AP": base AP@t, "class": dAP, "loc": dAP, ...}, {type: number of errors})`` (see module docstring).

    Example: two "cat" labels; by score: a TP (IoU 0.9), a duplicate on the same label, a TP on
    the other. AP is (51 * 1 + 50 * 2/3) / 101; without the duplicate it would be 1:

        >>> pairs = PredictionPairs(np.array([0.9, 0.0, 0.7, 0.0, 0.0, 0.8]), np.array([0, 6]), np.array([0, 3]),
        ...     np.array([0, 2]), np.zeros(3, int), np.zeros(2, int), np.array([0.9, 0.8, 0.7]), np.zeros(2, bool))
        >>> d, n = tide_attribution(pairs, np.array([0, 2, 0]), np.array([0, 0, 1]), np.array([0, 2]))
        >>> round(d["AP"], 4), round(d["duplicate"], 4), round(d["missed"], 4), n["duplicate"]
        (0.835, 0.165, 0.0, 1)
    """
    values, pair_offsets, pred_offsets, gt_offsets = pairs.values, pairs.pair_offsets, pairs.pred_offsets, pairs.gt_offsets
    pred_codes, gt_codes = pairs.pred_codes, pairs.gt_codes
    scores = np.nan_to_num(np.asarray(pairs.scores, float), nan=1.0)
    crowd = np.asarray(pairs.gt_crowd, bool)
    K = int(max(pred_codes.max(initial=-1), gt_codes.max(initial=-1))) + 1
    P = len(pred_codes)
    active = np.ones(P, bool)

    def run(v=values, codes=pred_codes, act=active, npig=None):
        m1, _, ig1 = run_greedy(v, pair_offsets, pred_offsets, gt_offsets, scores, iou_thresh,
                                crowd, crowd, codes, gt_codes, True, active1=act)
        if npig is None:
            npig = np.bincount(gt_codes[~crowd], minlength=K)
        return mean_ap_at(m1, ig1, codes, scores, npig, act)

    base = run()
    out = {"AP": base}
    kind = np.asarray(pred_kind)
    is_ = {name: kind == PRED_KINDS.index(name) for name in ("class", "loc", "both", "duplicate", "background")}
    # class: relabel to the overlapped label's class
    codes = pred_codes.copy()
    sel = is_["class"] & (pred_target >= 0)
    codes[sel] = gt_codes[pred_target[sel]]
    out["class"] = run(codes=codes) - base
    # loc: perfect box on its same-class label
    v = np.array(values, dtype=np.float64, copy=True)
    sel = is_["loc"] & (pred_target >= 0)
    if sel.any():
        r1, r2 = pair_rows(pred_offsets, gt_offsets)
        key = r1 * (len(gt_codes) + 1) + r2
        want = np.flatnonzero(sel) * (len(gt_codes) + 1) + pred_target[sel]
        v[np.isin(key, want)] = 1.0
    out["loc"] = run(v=v) - base
    for name in ("both", "duplicate", "background"):
        out[name] = run(act=active & ~is_[name]) - base
    missed = tide_missed(pred_kind, pred_target, gt_match, crowd)
    npig = np.bincount(gt_codes[~crowd & ~missed], minlength=K)
    out["missed"] = run(npig=npig) - base
    counts = {name: int(is_[name].sum()) for name in is_}
    counts["missed"] = int(missed.sum())
    return out, counts
