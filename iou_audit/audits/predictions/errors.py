"""Error types of model-versus-label disagreement, per prediction and per ground-truth label.

Vocabulary (TIDE, Bolya et al. ECCV 2020, with ``t`` = the matching IoU threshold and ``t_b`` = the
background threshold 0.1). Every prediction left unmatched by the (class-aware) matching is one of:

- ``duplicate``: overlaps a same-class label at IoU >= t that another prediction already took;
- ``class``: overlaps a label of another class at IoU >= t;
- ``loc``: overlaps a same-class label only at t_b <= IoU < t;
- ``both``: overlaps a label of another class only at t_b <= IoU < t;
- ``background``: overlaps no label at IoU >= t_b.

Label-error scores (each 0..1, higher = more likely wrong) read those disagreements from the label's
side. ``c_p`` is a prediction's confidence; a prediction is *free* for label ``g`` when it is not
matched to another label (a prediction that explains one label cannot also vouch for another):

- ``support[g]`` = max over free same-class predictions of ``c_p * ramp(IoU)``, ``ramp`` rising
  linearly from 0 at t_b to 1 at t; and over free other-class predictions at IoU >= t of ``c_p``
  (something is there, whatever its class);
- ``possible_spurious[g] = (1 - support[g]) * max(absence_weight, dup[g])``: nothing the model sees
  explains the label. Absence alone is weak evidence (detectors miss hard objects more often than
  annotators invent boxes), hence ``absence_weight`` (0.5); ``dup[g]`` is the IoU with a same-class
  label that *is* matched when that IoU >= ``dup_iou`` (a duplicated label: positive evidence);
- ``class_swap[g]`` = max over free other-class predictions at IoU >= t of ``c_p * (1 - c_m)``, ``c_m``
  the confidence of a same-class prediction matched to ``g`` (0 if none): a confident prediction of
  another class on the same box, not outvoted by one of the labelled class;
- ``mislocated[g] = c_p * clip((good_fit - IoU) / (good_fit - t), 0, 1)`` for the label's matched
  same-class prediction (or, if unmatched, its best free ``loc`` prediction): 0 at a good fit, 1 at or
  below the matching threshold; the edge that is off is the one whose offset (as a fraction of the
  prediction's width or height) is largest;
- ``possible_missing[p] = c_p`` for an unmatched, non-duplicate, non-degenerate prediction that
  overlaps no unmatched label at IoU >= t_b (if it did, it is that label's loc or class explanation, not a new object);
- ``duplicate_prediction[p] = c_p`` for ``duplicate`` predictions (a model error, reported for triage).

No distance term is used: cleanlab's box similarity adds ``0.1 * (1 - exp(-0.1 d))``, which *grows*
with the centre distance ``d`` (``exp(-0.1 d)`` already is a similarity), so farther boxes look more
similar; IoU alone has no such inversion.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from iou_audit.audits.predictions.pairs import Matching, PredictionPairs
from iou_audit.geometry.boxes import valid_boxes
from iou_audit.overlaps import pair_rows

PRED_KINDS = ("tp", "ignored", "duplicate", "class", "loc", "both", "background")
EDGES = np.array(["left", "top", "right", "bottom"], dtype=object)


@dataclass
class ErrorScores:
    """Per-prediction TIDE kinds and per-label error scores (see module docstring)."""

    pred_kind: np.ndarray  # (P,) int index into PRED_KINDS
    pred_target: np.ndarray  # (P,) gt row the error refers to, -1 none
    pred_target_iou: np.ndarray  # (P,)
    possible_missing: np.ndarray  # (P,)
    duplicate_prediction: np.ndarray  # (P,)
    support: np.ndarray  # (G,)
    possible_spurious: np.ndarray  # (G,)
    class_swap: np.ndarray  # (G,)
    class_swap_pred: np.ndarray  # (G,) pred row, -1 none
    mislocated: np.ndarray  # (G,)
    mislocated_pred: np.ndarray  # (G,) pred row, -1 none
    mislocated_iou: np.ndarray  # (G,)
    off_edge: np.ndarray  # (G,) object: "left"/"top"/"right"/"bottom" or ""
    off_amount: np.ndarray  # (G,) signed offset of that edge, fraction of the prediction's size
    dup_evidence: np.ndarray | None = None  # (G,) IoU with a matched same-class twin (>= dup_iou), else 0


def group_max(groups: np.ndarray, values: np.ndarray, n: int, fill: float = 0.0):
    """Max of ``values`` per group id in ``0..n-1`` and the position (index into values) holding it.

    Ties go to the last position. Empty groups get ``fill`` and -1.

    Example:
        >>> group_max(np.array([0, 2, 0]), np.array([0.3, 0.5, 0.7]), 3)
        (array([0.7, 0. , 0.5]), array([ 2, -1,  1]))
    """
    out = np.full(n, fill, dtype=np.float64)
    arg = np.full(n, -1, dtype=np.int64)
    if len(values) == 0:
        return out, arg
    order = np.lexsort((values, groups))
    g = groups[order]
    last = np.r_[g[1:] != g[:-1], True]
    out[g[last]] = values[order[last]]
    arg[g[last]] = order[last]
    return out, arg


def classify_errors(
    pairs: PredictionPairs,
    matching: Matching,
    iou_thresh: float = 0.5,
    bg_thresh: float = 0.1,
    good_fit: float = 0.75,
    absence_weight: float = 0.5,
    dup_iou: float = 0.6,
) -> ErrorScores:
    """TIDE kinds per prediction and label-error scores per label, all samples at once.

    ``matching`` comes from ``iou_audit.matching.batched_match`` (class-aware, or geometry-first:
    then a matched pair of different classes is a ``class`` error of the prediction).

    Example: one image; label 0 "cat" is matched at IoU 0.6 by a 0.9 "cat" (mislocated, score 0.9 * 0.6);
    a 0.8 "dog" sits exactly on label 1 "cat" (class swap 0.8):

        >>> off = np.array([0, 2])
        >>> pairs = PredictionPairs(np.array([0.6, 0.0, 0.0, 1.0]), np.array([0, 4]), off, off, np.array([0, 1]),
        ...     np.array([0, 0]), np.array([0.9, 0.8]), np.zeros(2, bool),
        ...     np.array([[0, 0, .5, .5], [.5, .5, 1, 1]]), np.array([[.1, 0, .6, .5], [.5, .5, 1, 1]]))
        >>> matching = Matching(np.array([0, -1]), np.array([0.6, 0.]), np.array([0, -1]), np.zeros(2, bool))
        >>> e = classify_errors(pairs, matching)
        >>> e.mislocated.round(2).tolist(), e.class_swap.round(2).tolist(), e.off_edge.tolist()
        ([0.54, 0.0], [0.0, 0.8], ['left', ''])
        >>> [PRED_KINDS[k] for k in e.pred_kind], e.possible_spurious.round(2).tolist()
        (['tp', 'class'], [0.05, 0.1])
    """
    values, pred_offsets, gt_offsets = pairs.values, pairs.pred_offsets, pairs.gt_offsets
    pred_codes, gt_codes, scores, gt_crowd = pairs.pred_codes, pairs.gt_codes, pairs.scores, pairs.gt_crowd
    pred_boxes, gt_boxes = pairs.pred_boxes, pairs.gt_boxes
    match1, iou1, match2, ignored1 = matching.match1, matching.iou1, matching.match2, matching.ignored1
    P, G = int(pred_offsets[-1]), int(gt_offsets[-1])
    c = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=1.0)
    crowd = np.asarray(gt_crowd, dtype=bool)
    r1, r2 = pair_rows(pred_offsets, gt_offsets)
    v = np.asarray(values, dtype=np.float64)
    keep = ~crowd[r2]
    r1, r2, v = r1[keep], r2[keep], v[keep]
    same = pred_codes[r1] == gt_codes[r2]
    matched = match1 >= 0
    # no ground truth at all (every sample's field None or empty): nothing can be matched
    matched_gt_code = gt_codes[np.maximum(match1, 0)] if G else np.full(P, -1)
    matched_same = matched & (pred_codes == matched_gt_code) & ~ignored1

    # --- TIDE kind per prediction ---
    ms, ams = group_max(r1[same], v[same], P)
    mo, amo = group_max(r1[~same], v[~same], P)
    gs = np.where(ams >= 0, r2[same][np.maximum(ams, 0)], -1) if same.any() else np.full(P, -1)
    go = np.where(amo >= 0, r2[~same][np.maximum(amo, 0)], -1) if (~same).any() else np.full(P, -1)
    kind = np.full(P, PRED_KINDS.index("background"), np.int64)
    target = np.full(P, -1, np.int64)
    tiou = np.zeros(P)
    un = ~matched
    rules = [
        ("duplicate", un & (ms >= iou_thresh), gs, ms),
        ("class", un & (ms < iou_thresh) & (mo >= iou_thresh), go, mo),
        ("loc", un & (ms < iou_thresh) & (mo < iou_thresh) & (ms >= bg_thresh), gs, ms),
        ("both", un & (ms < bg_thresh) & (mo < iou_thresh) & (mo >= bg_thresh), go, mo),
    ]
    for name, sel, tg, tv in rules:
        kind[sel], target[sel], tiou[sel] = PRED_KINDS.index(name), tg[sel], tv[sel]
    cross = matched & ~ignored1 & ~matched_same  # geometry-first match of another class
    kind[cross], target[cross], tiou[cross] = PRED_KINDS.index("class"), match1[cross], iou1[cross]
    kind[matched_same] = PRED_KINDS.index("tp")
    target[matched_same], tiou[matched_same] = match1[matched_same], iou1[matched_same]
    kind[matched & ignored1] = PRED_KINDS.index("ignored")

    # --- per-label scores ---
    free = (match1[r1] < 0) | (match1[r1] == r2)
    ramp = np.clip((v - bg_thresh) / max(iou_thresh - bg_thresh, 1e-12), 0.0, 1.0)
    s_same = np.where(same & free, c[r1] * ramp, 0.0)
    s_other = np.where(~same & free & (v >= iou_thresh), c[r1], 0.0)
    support, _ = group_max(r2, np.maximum(s_same, s_other), G)
    c_m = np.zeros(G)
    hit = (match2 >= 0)
    same_hit = hit & ((pred_codes[np.maximum(match2, 0)] if P else np.full(G, -1)) == gt_codes) & ~crowd
    c_m[same_hit] = c[match2[same_hit]]
    swap_pairs = ~same & free & (v >= iou_thresh)
    swap_val = np.where(swap_pairs, c[r1] * (1.0 - c_m[r2]), -1.0)
    class_swap, aswap = group_max(r2, swap_val, G)
    class_swap = np.maximum(class_swap, 0.0)
    swap_pred = np.where((aswap >= 0) & (class_swap > 0), r1[np.maximum(aswap, 0)], -1) if len(r1) else np.full(G, -1)

    # mislocated: the matched same-class prediction, else the best free same-class loc prediction
    severity = lambda u: np.clip((good_fit - u) / max(good_fit - iou_thresh, 1e-12), 0.0, 1.0)  # noqa: E731
    loc_pairs = same & (match1[r1] < 0) & (v >= bg_thresh) & (v < iou_thresh)
    loc_val = np.where(loc_pairs, c[r1] * severity(v), -1.0)
    loc_best, aloc = group_max(r2, loc_val, G, fill=-1.0)
    mis_pred = np.full(G, -1, np.int64)
    mis_iou = np.zeros(G)
    mis_pred[same_hit] = match2[same_hit]
    mis_iou[same_hit] = _pair_iou(v, r1, r2, match2[same_hit], np.flatnonzero(same_hit))
    use_loc = ~same_hit & (loc_best > 0)
    mis_pred[use_loc] = r1[aloc[use_loc]]
    mis_iou[use_loc] = v[aloc[use_loc]]
    has = mis_pred >= 0
    mislocated = np.zeros(G)
    mislocated[has] = c[mis_pred[has]] * severity(mis_iou[has])
    edge, amount = off_edges(gt_boxes, pred_boxes, mis_pred)
    edge[mislocated <= 0] = ""

    # --- per-prediction findings ---
    free_gt = (match2 < 0) & ~crowd
    near_free = np.zeros(P, bool)
    touch = free_gt[r2] & (v >= bg_thresh)
    near_free[r1[touch]] = True
    # a degenerate predicted box (zero size, NaN) is model junk, not evidence of a missing label
    unexplained = un & ~near_free & (kind != PRED_KINDS.index("duplicate")) & valid_boxes(pred_boxes)
    possible_missing = np.where(unexplained, c, 0.0)
    duplicate_prediction = np.where(kind == PRED_KINDS.index("duplicate"), c, 0.0)

    # A label nothing supports is weaker evidence than a confident conflicting prediction (detectors
    # miss hard objects far more often than annotators invent boxes): scale absence by absence_weight,
    # unless the label copies a matched same-class label (a duplicate label: positive evidence).
    dup = duplicate_label_evidence(gt_boxes, gt_offsets, gt_codes, match2, crowd, dup_iou)
    spurious = np.where(crowd, 0.0, (1.0 - support) * np.maximum(absence_weight, dup))
    class_swap[crowd] = 0.0
    mislocated[crowd] = 0.0
    return ErrorScores(
        kind, target, tiou, possible_missing, duplicate_prediction, support, spurious,
        class_swap, swap_pred, mislocated, mis_pred, mis_iou, edge, amount, dup,
    )


def duplicate_label_evidence(gt_boxes, gt_offsets, gt_codes, match2, crowd, dup_iou: float) -> np.ndarray:
    """Per label: IoU with a same-class, *matched* label of its image when >= ``dup_iou`` and the label
    itself is unmatched (the copy nobody predicts twice); else 0.

    Example:
        >>> duplicate_label_evidence(np.array([[0, 0, 1, 1], [0, 0, 1, .9]]), np.array([0, 2]),
        ...                          np.array([0, 0]), np.array([4, -1]), np.zeros(2, bool), 0.6)
        array([0. , 0.9])
    """
    from iou_audit.geometry.boxes import batched_self_pairs

    G = len(gt_codes)
    out = np.zeros(G)
    if G < 2:
        return out
    ri, rj, v = batched_self_pairs(gt_boxes, gt_offsets, labels=gt_codes, same_label_only=True)
    for a, b in ((ri, rj), (rj, ri)):
        sel = (v >= dup_iou) & (match2[a] < 0) & (match2[b] >= 0) & ~crowd[a] & ~crowd[b]
        np.maximum.at(out, a[sel], v[sel])
    return out


def _pair_iou(v, r1, r2, preds, gts) -> np.ndarray:
    """IoU of given (pred, gt) row pairs looked up in the flat pair arrays."""
    if len(preds) == 0:
        return np.zeros(0)
    key = r1.astype(np.int64) * (int(r2.max(initial=0)) + 1) + r2
    want = preds.astype(np.int64) * (int(r2.max(initial=0)) + 1) + gts
    order = np.argsort(key)
    pos = np.searchsorted(key[order], want)
    pos = np.minimum(pos, len(order) - 1)
    found = key[order][pos] == want
    return np.where(found, v[order][pos], 0.0)


def off_edges(gt_boxes: np.ndarray, pred_boxes: np.ndarray, pred_of_gt: np.ndarray):
    """Which edge of each label is farthest from its prediction's, and by how much.

    The offset is ``label edge - prediction edge`` as a fraction of the prediction's width (left,
    right) or height (top, bottom): ``left, +0.2`` means the label's left edge is 20 % of the object's
    width to the right of where the model puts it.

    Example:
        >>> off_edges(np.array([[.2, 0, .6, .5]]), np.array([[0, 0, .5, .5]]), np.array([0]))
        (array(['left'], dtype=object), array([0.4]))
    """
    G = len(pred_of_gt)
    edge = np.full(G, "", dtype=object)
    amount = np.zeros(G)
    has = pred_of_gt >= 0
    if not has.any():
        return edge, amount
    g = np.asarray(gt_boxes, float)[has]
    p = np.asarray(pred_boxes, float)[pred_of_gt[has]]
    w = np.maximum(p[:, 2] - p[:, 0], 1e-12)
    h = np.maximum(p[:, 3] - p[:, 1], 1e-12)
    rel = (g - p) / np.stack([w, h, w, h], axis=1)
    k = np.argmax(np.abs(rel), axis=1)
    edge[has] = EDGES[k]
    amount[has] = rel[np.arange(len(k)), k]
    return edge, amount


#: samples classified at a time by :func:`classify_errors_batched`
ERROR_BATCH = 2000


def classify_errors_batched(pairs: PredictionPairs, matching: Matching, iou_thresh: float = 0.5, bg_thresh: float = 0.1,
                            good_fit: float = 0.75, batch_size: int = ERROR_BATCH, **kwargs) -> ErrorScores:
    """:func:`classify_errors` ``batch_size`` samples at a time, joined: the same arrays (every
    score of a label or prediction depends on its own sample's pairs only), with the per-pair
    temporaries (a dozen arrays as long as all pairs: 25 million pairs at 100,000 samples of
    17 x 15 boxes) held for one batch.

    Example (the one-image example of :func:`classify_errors`, one sample per batch):
        >>> off = np.array([0, 2])
        >>> pairs = PredictionPairs(np.array([0.6, 0.0, 0.0, 1.0]), np.array([0, 4]), off, off, np.array([0, 1]),
        ...     np.array([0, 0]), np.array([0.9, 0.8]), np.zeros(2, bool),
        ...     np.array([[0, 0, .5, .5], [.5, .5, 1, 1]]), np.array([[.1, 0, .6, .5], [.5, .5, 1, 1]]))
        >>> matching = Matching(np.array([0, -1]), np.array([0.6, 0.]), np.array([0, -1]), np.zeros(2, bool))
        >>> classify_errors_batched(pairs, matching, batch_size=1).mislocated.round(2).tolist()
        [0.54, 0.0]
    """
    po, o1, o2 = (np.asarray(x, np.int64) for x in (pairs.pair_offsets, pairs.pred_offsets, pairs.gt_offsets))
    S = len(o1) - 1
    if S <= batch_size:
        return classify_errors(pairs, matching, iou_thresh, bg_thresh, good_fit, **kwargs)
    parts = []
    for s0 in range(0, S, batch_size):
        s1 = min(s0 + batch_size, S)
        p0, p1, g0, g1, q0, q1 = o1[s0], o1[s1], o2[s0], o2[s1], po[s0], po[s1]

        def box(b, lo, hi):
            return None if b is None else b[lo:hi]
        sub = PredictionPairs(pairs.values[q0:q1], po[s0:s1 + 1] - q0, o1[s0:s1 + 1] - p0, o2[s0:s1 + 1] - g0,
                              pairs.pred_codes[p0:p1], pairs.gt_codes[g0:g1], pairs.scores[p0:p1],
                              pairs.gt_crowd[g0:g1], box(pairs.pred_boxes, p0, p1), box(pairs.gt_boxes, g0, g1))
        m = Matching(_local(matching.match1[p0:p1], g0), matching.iou1[p0:p1], _local(matching.match2[g0:g1], p0),
                     matching.ignored1[p0:p1])
        e = classify_errors(sub, m, iou_thresh, bg_thresh, good_fit, **kwargs)
        # row indices back to the whole tables: targets are label rows, *_pred prediction rows
        e.pred_target = _global(e.pred_target, g0)
        e.class_swap_pred = _global(e.class_swap_pred, p0)
        e.mislocated_pred = _global(e.mislocated_pred, p0)
        parts.append(e)
    return ErrorScores(*(np.concatenate([getattr(e, f.name) for e in parts]) for f in dataclasses.fields(ErrorScores)))


def _local(rows: np.ndarray, start: int) -> np.ndarray:
    return np.where(rows >= 0, rows - start, rows)


def _global(rows: np.ndarray, start: int) -> np.ndarray:
    return np.where(rows >= 0, rows + start, rows)
