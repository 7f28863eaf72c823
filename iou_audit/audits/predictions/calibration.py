"""Calibrated label-error scores: the raw evidence of :mod:`.errors` measured against the detector's own
behaviour on this data, each score a probability that the label (or the missing object) is an error,
so label rows and missing-object rows rank in one queue.

Everything is estimated from the audited data itself. A group's estimate is shrunk to its parent's,
``est = (n * group + k * parent) / (n + k)`` (``k`` = :data:`SHRINK`, 20 pseudo-labels), from a
prior a tiny dataset falls back to (the model's confidence, :data:`EDGE_NOISE`, :data:`MISS_RATE`).
``size`` = octave of a box's sqrt area in pixels (< 16, 16-32, ..., >= 256; relative sizes x 512 when
image sizes are unknown). ``posterior(LR) = prior * LR / (prior * LR + 1 - prior)``, ``prior`` =
:data:`ERROR_PRIOR` (0.05, the assumed share of wrong labels).

- **precision** ``r(p)`` of prediction ``p``: the share of predictions of its class and confidence
  decile matched to a label (duplicates of a taken label and crowd matches left out), shrunk class ->
  all classes -> the confidence itself, made non-decreasing in confidence per class.
- **mislocated**: per edge ``e`` the offset ``d_e = (label edge - prediction edge) / prediction size`` to
  the label's matched (else best overlapping free) same-class prediction. The detector's noise per
  class x size: median of ``d_e`` per edge and 1.4826 x MAD per axis over the matched labels (shrunk
  to :data:`EDGE_NOISE`), times a factor per confidence quartile (looser boxes at low confidence);
  ``z_e = (d_e - median) / scale``. Per edge ``LR_e = f1(z_e) / f0(z_e)``: ``f0`` a Student t fitted
  to the tails of the matched labels' ``|z|`` (:func:`tail_index`), ``f1`` a Cauchy whose scale is
  the error size :data:`ERROR_SIZE` (0.1 of the box) over the noise. ``LR_geom`` = half "one edge
  wrong" (mean of the four) + half "all edges wrong" (their product); weighted by the prediction's
  precision: ``LR = r * LR_geom + (1 - r)``; ``mislocated = posterior(LR)``. The prediction compared
  may be a stray box by a real object the detector missed (a background box, a neighbour's looser
  second box; prior ``w = m * rho / (1 - m + m * rho)``, ``m`` the miss rate below, ``rho`` the
  detector's loc-kind predictions per label of the class, :func:`stray_weight`), whose edges fall
  anywhere within about a box size (:data:`STRAY_OFFSET`): ``LR_geom`` is divided by ``1 - w + w *
  LR_stray`` (:func:`stray_log_lr`), so a box far from the label reads as a stray, not as a label
  drawn a whole box off.
- **possible_spurious**: ``support`` from :mod:`.errors` (the best free prediction's confidence x
  overlap ramp); the detector's miss rate ``m`` of the label's class x size = share of its labels
  with support < :data:`SUPPORTED` (shrunk with :data:`MISS_SHRINK` = 100: a group's own spurious
  labels inflate it); ``possible_spurious = clip(1 - support / 0.5, 0, 1) * posterior(LR)`` with
  ``LR = 1 / m`` (x ``1 / T_dup`` for a copy of a matched same-class label at IoU >= 0.6, ``T_dup``
  the share of labels with such a twin at least as close): where the detector misses 30 % of the
  objects an unsupported label is weaker evidence than where it misses 2 %.
- **class_swap** = ``r(q) * (1 - r(m))``: the free other-class prediction ``q`` on the label's box is
  right and the same-class matched prediction ``m`` (if any) wrong.
- **possible_missing** of an unexplained prediction (:mod:`.errors`) = ``prior / (1 - prior) * n_tp /
  n_unexplained`` (clipped to 1), the counts' ratio from the share ``n_tp / (n_tp + n_unexplained)``
  of its class and confidence decile (shrunk and made non-decreasing as the precision is): of the real
  objects the detector finds at that confidence, a share ``prior`` is unlabelled and shows up
  unexplained; every other unexplained prediction is a false positive (:func:`excess_posterior`).
  Not ``r(p)`` itself: a confident prediction is usually right, but one that falls on no label is
  usually a false positive unless the detector rarely puts such boxes there at that confidence.
  A prediction by an unmatched label (loc, class or both kind) is that label's detection or a new
  object next to it: it scores the same times ``1 - `` the highest ``mislocated`` / ``class_swap`` of
  the labels it explains.
"""
from __future__ import annotations

import numpy as np

#: assumed share of wrong labels (and of unlabelled objects): sets the findings' scale, not the ranking
ERROR_PRIOR = 0.05
#: pseudo-count of the shrinkage of a group's estimate to its parent group's
SHRINK = 20.0
#: size octaves' lower edges, sqrt area in pixels
SIZE_EDGES = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
#: nominal image side used for relative boxes when the image size is unknown
NOMINAL_SIDE = 512.0
#: priors a small dataset falls back to (shrunk to, with SHRINK pseudo-labels): the detector's edge
#: noise (sigma, in units of the box size) and its miss rate (an unsupported label then scores 0.5)
EDGE_NOISE = 0.05
MISS_RATE = 0.05
#: a label is supported (the detector found it) when its support is >= this
SUPPORTED = 0.5
#: pseudo-count of the miss rate's shrinkage: larger than SHRINK because a group's unsupported share
#: includes its own spurious labels, which gather in odd groups (a "WBC" the size of a red cell)
MISS_SHRINK = 100.0
#: size of a stray box's edge offsets from a label, in units of the box
STRAY_OFFSET = 1.0
#: confidence bins of the precision calibration
CONF_BINS = 10
MAD_TO_SIGMA = 1.4826


def posterior(lr: np.ndarray, prior: float = ERROR_PRIOR) -> np.ndarray:
    """``prior * lr / (prior * lr + 1 - prior)``.

    >>> posterior(np.array([1.0, 19.0, np.inf]), 0.05).round(3).tolist()
    [0.05, 0.5, 1.0]
    """
    lr = np.asarray(lr, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = prior * lr / (prior * lr + 1.0 - prior)
    return np.where(np.isinf(lr), 1.0, np.nan_to_num(out, nan=0.0))


#: typical size of a label's edge error, in units of the box size (the alternative's scale)
ERROR_SIZE = 0.1
NU_GRID = np.array([1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0])


def tail_index(abs_z: np.ndarray) -> float:
    """Degrees of freedom of the Student t (from :data:`NU_GRID`, at most 10: a detector's box noise is
    never trusted to be lighter-tailed than that) whose 90 % / 50 % quantile ratio of ``|z|`` is
    closest to the data's (Gaussian: 2.44; heavier tails, larger ratio).

    >>> rng = np.random.default_rng(0)
    >>> tail_index(np.abs(rng.standard_normal(20000))), tail_index(np.abs(rng.standard_t(2, 20000)))
    (10.0, 2.0)
    """
    from scipy.stats import t as student_t

    a = np.asarray(abs_z, np.float64)
    a = a[np.isfinite(a)]
    if len(a) < 20:
        return 5.0
    ratio = np.quantile(a, 0.9) / max(np.quantile(a, 0.5), 1e-12)
    ref = student_t.ppf(0.95, NU_GRID) / student_t.ppf(0.75, NU_GRID)
    return float(NU_GRID[np.argmin(np.abs(np.log(ref / ratio)))])


def edge_likelihood_ratios(z: np.ndarray, rel_noise: np.ndarray, nu: float) -> np.ndarray:
    """Per edge, density of ``z`` if the label's edge is wrong over its density if only the detector's
    noise moves it: numerator a Cauchy of scale ``1 / rel_noise`` (error size over noise size), wide
    enough for subtle and gross errors alike, plus the noise; denominator a Student t with ``nu``
    degrees of freedom scaled to ``|z|``'s median 0.6745 (the data's own MAD scale).

    >>> edge_likelihood_ratios(np.array([[0., 6.]]), np.array([[0.5, 0.5]]), 10.0).round(2).tolist()
    [[0.35, 261.5]]
    """
    from scipy.stats import cauchy
    from scipy.stats import t as student_t

    z = np.asarray(z, np.float64)
    s0 = 0.6745 / student_t.ppf(0.75, nu)
    f0 = student_t.pdf(z / s0, nu) / s0
    s1 = np.sqrt(1.0 + 1.0 / np.maximum(rel_noise, 1e-6) ** 2)
    f1 = cauchy.pdf(z / s1) / s1
    return f1 / np.maximum(f0, 1e-300)



def size_octave(boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Size bin (0..5) of relative ``xyxy`` boxes from their sqrt area in pixels (:data:`SIZE_EDGES`).

    >>> size_octave(np.array([[0, 0, .1, .1], [0, 0, .5, .5]]), np.array([100., np.nan]), np.array([100., np.nan]))
    array([0, 5])
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = np.where(np.isfinite(width), width, NOMINAL_SIDE)
    h = np.where(np.isfinite(height), height, NOMINAL_SIDE)
    px = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * w * np.clip(b[:, 3] - b[:, 1], 0, None) * h)
    return np.searchsorted(SIZE_EDGES, np.nan_to_num(px), side="right").astype(np.int64)


def _group_ids(*cols: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids of the row-wise combinations of non-negative integer columns, and their number.

    >>> _group_ids(np.array([0, 1, 0]), np.array([2, 2, 2]))
    (array([0, 1, 0]), 2)
    """
    if len(cols[0]) == 0:
        return np.zeros(0, np.int64), 0
    key = np.zeros(len(cols[0]), np.int64)
    for c in cols:  # mixed-radix key: one 1-D unique instead of a row-wise one
        c = np.asarray(c, np.int64)
        _, c = np.unique(c, return_inverse=True)
        key = key * (int(c.max()) + 1) + c.reshape(-1)
        _, key = np.unique(key, return_inverse=True)
        key = key.reshape(-1).astype(np.int64)
    return key, int(key.max()) + 1


def shrunk_rate(hits: np.ndarray, weights: np.ndarray, levels: list[np.ndarray], k: float = SHRINK,
                top: np.ndarray | float | None = None) -> np.ndarray:
    """Per row, the weighted mean of ``hits`` in the row's finest group, shrunk level by level to the
    coarser groups' (``levels``: coarse to fine lists of columns defining the groups, or ``(ids, n)``
    tuples already computed by ``_group_ids``; the first level
    is shrunk to ``top``, a per-row prior, or to the mean of all rows).

    >>> shrunk_rate(np.array([1., 1, 0, 0]), np.ones(4), [[np.array([0, 0, 1, 1])]], k=2).tolist()
    [0.75, 0.75, 0.25, 0.25]
    """
    hits = np.asarray(hits, np.float64)
    w = np.asarray(weights, np.float64)
    if top is None:
        est = np.full(len(hits), (hits * w).sum() / max(w.sum(), 1e-12))
    else:
        est = np.broadcast_to(np.asarray(top, np.float64), hits.shape).copy()
    for cols in levels:
        gid, n = cols if isinstance(cols, tuple) else _group_ids(*cols)
        s = np.bincount(gid, hits * w, n)
        c = np.bincount(gid, w, n)
        est = (s[gid] + k * est) / (c[gid] + k)
    return est


def _rank01(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` scaled into [0, 1) with ties sharing their highest rank."""
    from scipy.stats import rankdata

    if len(values) == 0:
        return np.zeros(0)
    return (rankdata(values, method="max") - 1) / len(values)


def shrunk_ecdf(values: np.ndarray, levels: list[np.ndarray], k: float = SHRINK, upper: bool = False,
                top: np.ndarray | None = None) -> np.ndarray:
    """Per row, the share of rows of its finest group with a value <= its own (``upper``: >=), shrunk
    level by level to the coarser groups' shares (``levels`` as in :func:`shrunk_rate`); the share
    over all rows is itself shrunk to ``top`` (a per-row prior) when given.

    >>> shrunk_ecdf(np.array([0., 0, .5, 1]), [], k=2).tolist()
    [0.5, 0.5, 0.75, 1.0]
    >>> shrunk_ecdf(np.array([0., 0, .5, 1]), [], k=4, top=np.full(4, 0.1)).tolist()
    [0.3, 0.3, 0.425, 0.55]
    """
    v = np.asarray(values, np.float64)
    if upper:
        v = -v
    n_all = len(v)
    if n_all == 0:
        return np.zeros(0)
    r = _rank01(v)  # ties share their highest rank, so "<=" counts them all
    est = r + 1.0 / n_all
    if top is not None:
        est = (n_all * est + k * np.asarray(top, np.float64)) / (n_all + k)
    for cols in levels:
        gid, n = cols if isinstance(cols, tuple) else _group_ids(*cols)
        key = gid * 2.0 + r
        sk = np.sort(key)
        start = np.searchsorted(sk, gid * 2.0, side="left")
        cnt = np.searchsorted(sk, key, side="right") - start
        size = np.bincount(gid, minlength=n)[gid]
        est = (cnt + k * est) / (size + k)
    return est


def group_median(groups: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(median, count)`` of ``values`` per group id ``0..n-1`` (NaN, 0 for empty groups).

    >>> group_median(np.array([0, 0, 0, 1]), np.array([3., 1, 2, 5]), 3)
    (array([ 2.,  5., nan]), array([3, 1, 0]))
    """
    med = np.full(n, np.nan)
    cnt = np.bincount(groups, minlength=n) if len(groups) else np.zeros(n, np.int64)
    if len(values) == 0:
        return med, cnt
    order = np.lexsort((values, groups))
    sv = np.asarray(values)[order]
    start = np.r_[0, np.cumsum(cnt)[:-1]]
    has = cnt > 0
    lo = start + (cnt - 1) // 2
    hi = start + cnt // 2
    med[has] = 0.5 * (sv[lo[has]] + sv[hi[has]])
    return med, cnt


def shrunk_median(values: np.ndarray, ref: np.ndarray, levels: list[list[np.ndarray]], k: float = SHRINK,
                  top: float | None = None) -> np.ndarray:
    """Per row, the median of ``values`` over the reference rows (``ref``) of its finest group, shrunk
    level by level (``levels`` as in :func:`shrunk_rate`); rows outside ``ref`` get their groups' too.
    The median of all reference rows is shrunk to ``top`` when given.

    >>> shrunk_median(np.array([1., 1, 5, 0]), np.array([1, 1, 1, 0], bool), [[np.array([0, 0, 1, 1])]], k=1).tolist()
    [1.0, 1.0, 3.0, 3.0]
    """
    v = np.asarray(values, np.float64)
    ref = np.asarray(ref, bool) & np.isfinite(v)
    n_ref = int(ref.sum())
    g0 = np.median(v[ref]) if n_ref else (0.0 if top is None else top)
    if top is not None:
        g0 = (n_ref * g0 + k * top) / (n_ref + k)
    est = np.full(len(v), g0)
    for cols in levels:
        gid, n = cols if isinstance(cols, tuple) else _group_ids(*cols)
        med, cnt = group_median(gid[ref], v[ref], n)
        c = cnt[gid]
        est = np.where(c > 0, (c * np.nan_to_num(med[gid]) + k * est) / (c + k), est)
    return est


def calibrated_precision(conf: np.ndarray, classes: np.ndarray, is_tp: np.ndarray, use: np.ndarray,
                         k: float = SHRINK) -> np.ndarray:
    """Per prediction, the share of predictions of its class and confidence decile that match a label
    (over the rows in ``use``), shrunk to all classes' share at that decile, then made non-decreasing
    in confidence within each class (a more confident prediction is never less precise).

    >>> c = np.array([.1, .2, .9, .95]); cls = np.zeros(4, int)
    >>> calibrated_precision(c, cls, np.array([0, 0, 1, 1], bool), np.ones(4, bool), k=0).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    conf = np.clip(np.nan_to_num(np.asarray(conf, np.float64), nan=1.0), 0.0, 1.0)
    cb = np.minimum((conf * CONF_BINS).astype(np.int64), CONF_BINS - 1)
    cls = np.asarray(classes, np.int64)
    w = np.asarray(use, np.float64)
    # the model's own confidence is the prior a small dataset falls back to
    prec = shrunk_rate(np.asarray(is_tp, np.float64), w, [[cb], [cb, cls]], k, top=conf)
    # non-decreasing along confidence within each class: a running max over the class's bins
    if len(prec):
        nc = int(cls.max()) + 1
        table = np.zeros((nc, CONF_BINS))
        np.maximum.at(table, (cls, cb), prec)
        seen = np.zeros((nc, CONF_BINS), bool)
        seen[cls, cb] = True
        # unseen bins take the value just below them (a max over nothing below is 0)
        table = np.maximum.accumulate(np.where(seen, table, 0.0), axis=1)
        prec = table[cls, cb]
    return prec


def edge_offsets(gt_boxes: np.ndarray, pred_boxes: np.ndarray, pred_of_gt: np.ndarray) -> np.ndarray:
    """``(G, 4)`` offsets ``(label edge - prediction edge) / prediction size`` (NaN without a prediction).

    >>> edge_offsets(np.array([[.2, 0, .6, .5]]), np.array([[0, 0, .5, .5]]), np.array([0])).round(2).tolist()
    [[0.4, 0.0, 0.2, 0.0]]
    """
    G = len(pred_of_gt)
    out = np.full((G, 4), np.nan)
    has = pred_of_gt >= 0
    if not has.any():
        return out
    g = np.asarray(gt_boxes, float)[has]
    p = np.asarray(pred_boxes, float)[pred_of_gt[has]]
    w = np.maximum(p[:, 2] - p[:, 0], 1e-12)
    h = np.maximum(p[:, 3] - p[:, 1], 1e-12)
    out[has] = (g - p) / np.stack([w, h, w, h], axis=1)
    return out



def stray_log_lr(z: np.ndarray, scale: np.ndarray, nu: float) -> np.ndarray:
    """Per label, ``log`` of the density of its four noise-scaled offsets ``z`` if the compared
    prediction is a stray box (each edge a Cauchy of :data:`STRAY_OFFSET` box sizes, i.e. ``STRAY_OFFSET
    / scale`` in ``z`` units) over their density under the detector's noise (the Student t of
    :func:`edge_likelihood_ratios`).

    >>> stray_log_lr(np.array([[0., 0, 0, 0], [20, 20, 20, 20]]), np.full((2, 4), .05), 10.0).round(1).tolist()
    [-12.9, 67.6]
    """
    from scipy.stats import cauchy
    from scipy.stats import t as student_t

    z = np.asarray(z, np.float64)
    s0 = 0.6745 / student_t.ppf(0.75, nu)
    log_f0 = student_t.logpdf(z / s0, nu) - np.log(s0)
    ss = STRAY_OFFSET / np.maximum(np.asarray(scale, np.float64), 1e-6)
    log_fs = cauchy.logpdf(z / ss) - np.log(ss)
    return (log_fs - log_f0).sum(axis=1)


def stray_weight(miss: np.ndarray, kind: np.ndarray, gt_codes: np.ndarray, pred_codes: np.ndarray,
                 k: float = SHRINK) -> np.ndarray:
    """Per label, the prior chance that the prediction it is compared with is a stray, not its object's
    detection: ``w = m * rho / (1 - m + m * rho)``, ``m`` = ``miss``, the detector's miss rate of the
    label's class and size (as for ``possible_spurious``), ``rho`` = the detector's loc-kind predictions (a
    same-class box overlapping a label at 0.1-0.5 that matches nothing) per label of the class, shrunk
    to all classes' rate with ``k`` pseudo-labels.

    >>> from iou_audit.audits.predictions.errors import PRED_KINDS
    >>> kind = np.array([PRED_KINDS.index("tp"), PRED_KINDS.index("loc")])
    >>> stray_weight(np.full(2, 0.2), kind, np.zeros(2, int), np.zeros(2, int), k=0).round(3).tolist()
    [0.111, 0.111]
    """
    from iou_audit.audits.predictions.errors import PRED_KINDS

    G = len(gt_codes)
    if G == 0:
        return np.zeros(0)
    n_cls = int(max(np.max(gt_codes, initial=-1), np.max(pred_codes, initial=-1))) + 1
    is_loc = (np.asarray(kind) == PRED_KINDS.index("loc")).astype(np.float64)
    n_loc = np.bincount(pred_codes, is_loc, n_cls) if len(pred_codes) else np.zeros(n_cls)
    n_gt = np.bincount(gt_codes, minlength=n_cls).astype(np.float64)
    rho = ((n_loc + k * n_loc.sum() / n_gt.sum()) / (n_gt + k))[gt_codes]
    return miss * rho / (1.0 - miss + miss * rho)


def excess_posterior(conf: np.ndarray, classes: np.ndarray, is_tp: np.ndarray, odd: np.ndarray,
                     prior: float = ERROR_PRIOR, k: float = SHRINK) -> np.ndarray:
    """Per prediction, the probability that an *odd* prediction (``odd``: one no label explains) is a
    real object whose label is missing, from counts of its class and confidence decile: of the real
    objects the detector finds there, a share ``prior`` has no label and shows up as odd, while every
    other odd one is the detector's mistake; so ``P = prior / (1 - prior) * n_tp / n_odd`` (clipped to 1), with ``n_tp / (n_tp +
    n_odd)`` estimated by :func:`calibrated_precision` (shrunk, non-decreasing in confidence).

    >>> c = np.array([.9, .9, .9, .9, .2, .2]); tp = np.array([1, 1, 1, 0, 0, 0], bool)
    >>> excess_posterior(c, np.zeros(6, int), tp, ~tp, 0.05, k=0).round(3).tolist()
    [0.158, 0.158, 0.158, 0.158, 0.0, 0.0]
    """
    share = calibrated_precision(conf, classes, is_tp, np.asarray(is_tp, bool) | np.asarray(odd, bool), k)
    share = np.clip(share, 0.0, 1.0 - 1e-6)
    return np.clip(prior / (1.0 - prior) * share / (1.0 - share), 0.0, 1.0)


EDGE_NAMES = np.array(["left", "top", "right", "bottom"], dtype=object)


def calibrate_scores(errors, pred, gt, pred_codes: np.ndarray, gt_codes: np.ndarray, iou_thresh: float = 0.5,
                     prior: float = ERROR_PRIOR, k: float = SHRINK):
    """The :class:`~.errors.ErrorScores` of :func:`~.errors.classify_errors` with ``possible_spurious``,
    ``class_swap``, ``mislocated`` and ``possible_missing`` replaced by the calibrated posteriors of the
    module docstring (``off_edge``/``off_amount``: the edge with the largest noise-scaled offset).

    Example:
        >>> from iou_audit.audits.predictions.core import compute_prediction_audit  # doctest: +SKIP
        >>> compute_prediction_audit(pred, gt).errors.mislocated                    # doctest: +SKIP
    """
    import dataclasses

    from iou_audit.audits.predictions.errors import PRED_KINDS

    e = errors
    G, P = len(gt_codes), len(pred_codes)
    gt_size = size_octave(gt.box, gt.width[gt.sample_index], gt.height[gt.sample_index]) if G else np.zeros(0, int)
    conf = np.nan_to_num(np.asarray(pred.confidence, np.float64), nan=1.0)
    kind = np.asarray(e.pred_kind)
    crowd = np.asarray(gt.iscrowd, bool)

    # precision of the detector per class and confidence (predictions not on an already-taken label)
    use = (kind != PRED_KINDS.index("duplicate")) & (kind != PRED_KINDS.index("ignored"))
    prec = calibrated_precision(conf, pred_codes, kind == PRED_KINDS.index("tp"), use, k)
    prec = np.clip(prec, 0.0, 1.0 - 1e-3)

    # the detector's miss rate per class x size: share of labels it leaves unsupported (spurious, strays)
    support = np.asarray(e.support, np.float64)
    missed = (support < SUPPORTED).astype(np.float64)
    levels = [_group_ids(gt_codes), _group_ids(gt_codes, gt_size)]
    miss = shrunk_rate(missed, np.ones(G), levels, MISS_SHRINK, top=MISS_RATE)

    # --- localization: noise-scaled edge offsets to the matched (else best loc) prediction ---
    mp = np.asarray(e.mislocated_pred, np.int64)
    d = edge_offsets(gt.box, pred.box, mp)
    ref = (mp >= 0) & (np.asarray(e.mislocated_iou) >= iou_thresh) & np.isfinite(d).all(axis=1) & ~crowd
    # group ids computed once (above): (ids, count) tuples stand for a level's columns
    med = np.stack([shrunk_median(d[:, j], ref, levels, k) for j in range(4)], axis=1)
    dev = np.abs(d - med)
    scale = np.empty((G, 4))
    for axis in (0, 1):  # x edges (left, right) and y edges (top, bottom) share a scale
        pooled = np.concatenate([dev[:, axis], dev[:, axis + 2]])
        lv = [(np.r_[gid, gid], n) for gid, n in levels]
        s = MAD_TO_SIGMA * shrunk_median(pooled, np.r_[ref, ref], lv, k, top=EDGE_NOISE / MAD_TO_SIGMA)[:G]
        scale[:, axis] = scale[:, axis + 2] = np.maximum(s, 1e-6)
    z = (d - med) / scale
    # looser boxes at lower confidence: one factor per confidence quartile of the matched predictions
    c_loc = np.where(mp >= 0, conf[np.maximum(mp, 0)] if P else 0.0, np.nan)
    if ref.sum() >= 8:
        edges = np.quantile(c_loc[ref], [0.25, 0.5, 0.75])
        qb = np.searchsorted(edges, np.nan_to_num(c_loc), side="right")
        for q in range(4):
            sel = ref & (qb == q)
            if sel.sum() >= 4:
                f = MAD_TO_SIGMA * np.median(np.abs(z[sel]))
                z[qb == q] /= max(f, 1e-6)
    has = (mp >= 0) & np.isfinite(z).all(axis=1)
    nu = tail_index(np.abs(z[ref]).ravel()) if ref.any() else 5.0
    lr_edges = edge_likelihood_ratios(np.where(has[:, None], z, 0.0), scale / ERROR_SIZE, nu)
    # one edge wrong (any of four, equally likely) or all four wrong, equally likely
    log_e = np.log(np.maximum(lr_edges, 1e-300))
    log_one = np.logaddexp.reduce(log_e, axis=1) - np.log(4.0) if G else np.zeros(0)
    log_geom = np.logaddexp(log_one, log_e.sum(axis=1)) + np.log(0.5)
    # the compared prediction may be a stray box (background, a neighbour's looser second box) by
    # a real object the detector missed: the label is right and the offsets say nothing about it
    w = stray_weight(miss, kind, gt_codes, pred_codes, k)
    log_ls = stray_log_lr(np.where(has[:, None], z, 0.0), scale, nu)
    log_geom = log_geom - np.logaddexp(np.log1p(-w), np.log(np.maximum(w, 1e-300)) + log_ls)
    lr_geom = np.exp(np.minimum(log_geom, 700.0))  # in logs until here: four large ratios overflow
    rel = np.where(mp >= 0, prec[np.maximum(mp, 0)] if P else 0.0, 0.0)
    lr_loc = np.where(has, rel * lr_geom + (1.0 - rel), 1.0)
    mislocated = np.where(crowd, 0.0, posterior(lr_loc, prior))
    worst = np.argmax(np.abs(np.nan_to_num(z)), axis=1) if G else np.zeros(0, int)
    off_edge = np.where(mp >= 0, EDGE_NAMES[worst], "").astype(object)
    off_amount = np.where(mp >= 0, np.nan_to_num(d[np.arange(G), worst]), 0.0)

    # --- spurious: no support, against the detector's miss rate for this class, size and crowding ---
    dup = np.asarray(e.dup_evidence if e.dup_evidence is not None else np.zeros(G), np.float64)
    T_dup = shrunk_ecdf(dup, [], k, upper=True)
    lr_absent = np.where(dup > 0, 1.0 / np.maximum(T_dup, 1e-12), 1.0) / np.maximum(miss, 1e-6)
    unsupported = np.clip(1.0 - support / SUPPORTED, 0.0, 1.0)
    spurious = np.where(crowd, 0.0, unsupported * posterior(lr_absent, prior))

    # --- class swap: the other-class prediction is right and the same-class one (if any) wrong ---
    sp = np.asarray(e.class_swap_pred, np.int64)
    same_m = np.asarray(e.mislocated_pred, np.int64)
    matched_same = (same_m >= 0) & (np.asarray(e.mislocated_iou) >= iou_thresh)
    r_other = np.where(sp >= 0, prec[np.maximum(sp, 0)] if P else 0.0, 0.0)
    r_same = np.where(matched_same, prec[np.maximum(same_m, 0)] if P else 0.0, 0.0)
    class_swap = np.where(crowd | (sp < 0), 0.0, r_other * (1.0 - r_same))

    # --- missing objects: unlabelled real objects against the detector's unexplained false positives ---
    unexplained = np.asarray(e.possible_missing) > 0
    p_new = excess_posterior(conf, pred_codes, kind == PRED_KINDS.index("tp"), unexplained, prior, k)
    if P:
        # a prediction by an unmatched label is that label's detection (mislocated or swapped label) or a
        # new object next to it: a candidate too, unless the label's error explains it
        from iou_audit.geometry.boxes import valid_boxes

        near = np.isin(kind, [PRED_KINDS.index(x) for x in ("class", "loc", "both")]) & ~unexplained \
            & valid_boxes(pred.box)
        explained = np.zeros(P)
        uses_mis = (mp >= 0) & ~matched_same
        np.maximum.at(explained, mp[uses_mis], mislocated[uses_mis])
        np.maximum.at(explained, sp[sp >= 0], class_swap[sp >= 0])
        missing = np.where(unexplained, p_new, np.where(near, p_new * (1.0 - explained), 0.0))
    else:
        missing = np.where(unexplained, p_new, 0.0)
    return dataclasses.replace(e, possible_spurious=spurious, class_swap=class_swap, mislocated=mislocated,
                               possible_missing=missing, off_edge=off_edge, off_amount=off_amount)
