"""The labels-only prior's numbers: class-conditional outlier z-scores and a two-component mixture.

No model and no second annotator: a label is suspicious when it is unlike the other labels of its
class. Four features per label, each turned into a z-score that is standard normal for a typical
label:

- ``area``: log of the box's area (pixels when every image size is known, else relative);
- ``aspect``: log of width / height (pixels, or relative);
  both as robust z-scores ``(x - m_c) / s_c`` with the class median ``m_c`` and scale
  ``s_c = 1.4826 MAD_c`` shrunk toward the global median and the pooled within-class scale with
  the weight of ``shrinkage`` labels (``m_c' = (n_c m_c + k m) / (n_c + k)``, same for ``s_c^2``),
  so a class with 3 labels is not judged by its own 3 boxes;
- ``cross_overlap``: the largest IoU with a label of another class in the image;
- ``crowding``: the largest IoU with a label of the same class below the duplicate threshold
  (``iou_audit.audits.duplicates.DEFAULT_IOU_THRESH``; pairs above it are the duplicates audit's);
  both as rank-normal scores ``Phi^-1(F)`` of the class's empirical CDF (mid-ranks), the CDF
  shrunk toward the global one with the same weight.

Censored features: overlap is only suspicious when high, and a box cut by the image border can be
small and oddly shaped legitimately, so those z-scores keep only their suspicious side
(``max(z, 0)``; area and aspect of a border-touching box: area's upper side only, aspect not used).

Mixture: a typical label's z-vector is ``N(0, I)``, an erroneous label's ``N(0, diag(tau^2))``
with ``tau_d >= 1`` (errors are spread wider: a swapped class is the wrong size for its new class,
a rescaled box is too big or too small). EM on every label estimates the error share ``pi`` and
each ``tau_d``; a feature that does not separate gets ``tau_d = 1`` and drops out. A label's
likelihood ratio is ``LR = prod_d (1 / tau_d) exp(z_d^2 / 2 (1 - 1 / tau_d^2))`` (a censored
feature at its boundary has ``LR_d = 1``: both components put half their mass there); its
posterior ``pi LR / (pi LR + 1 - pi)`` is the prior's score.

Example:
    >>> z = np.array([[0.1, -0.2], [0.3, 0.0], [-0.2, 0.4], [6.0, 0.1]] * 5)
    >>> post, pi, tau, _ = scale_mixture_em(z, np.zeros(2, bool))
    >>> bool(post[3] > 0.9), bool(post[0] < 0.1)
    (True, True)
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from iou_audit.geometry.boxes import batched_self_pairs

FEATURES = ("area", "aspect", "cross_overlap", "crowding")
#: features whose only suspicious side is high values
ONE_SIDED = np.array([False, False, True, True])
#: MAD -> standard deviation of a normal distribution
MAD_TO_SD = 1.4826
#: a box edge within this (relative) distance of the image border touches it
BORDER_TOL = 1e-3
#: EM: start, bounds and stopping rule of the mixture
EM_START_PI, EM_START_TAU2 = 0.1, 4.0
EM_MAX_PI = 0.5
EM_ITERATIONS, EM_TOLERANCE = 200, 1e-7


def robust_class_z(x: np.ndarray, classes: np.ndarray, shrinkage: float) -> np.ndarray:
    """Robust z-score of ``x`` within its class, median and MAD shrunk toward the global ones.

    Args:
        x: (L,) values (NaN: no score, z = 0).
        classes: (L,) class per value.
        shrinkage: weight of the global median and pooled scale, in labels.

    Example:
        >>> x = np.array([1., 2., 3., 10., 11., 12.]); c = np.array(list("aaabbb"))
        >>> robust_class_z(x, c, shrinkage=0.0).round(3).tolist()
        [-0.674, 0.0, 0.674, -0.674, 0.0, 0.674]
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.zeros(len(x))
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return z
    names, code = np.unique(np.asarray(classes, dtype=object)[ok].astype(str), return_inverse=True)
    xv = x[ok]
    med = np.array([np.median(xv[code == k]) for k in range(len(names))])
    dev = np.abs(xv - med[code])
    mad = np.array([np.median(dev[code == k]) for k in range(len(names))])
    n = np.bincount(code, minlength=len(names)).astype(np.float64)
    g_med = np.median(xv)
    g_scale = MAD_TO_SD * np.median(dev)  # pooled within-class scale
    if not g_scale > 0:
        g_scale = MAD_TO_SD * np.median(np.abs(xv - g_med))
    if not g_scale > 0:
        g_scale = max(float(np.std(xv)), 1e-9)
    m = (n * med + shrinkage * g_med) / (n + shrinkage)
    s2 = (n * (MAD_TO_SD * mad) ** 2 + shrinkage * g_scale ** 2) / (n + shrinkage)
    s = np.sqrt(np.maximum(s2, (1e-3 * g_scale) ** 2))
    z[ok] = (xv - m[code]) / s[code]
    return z


def rank_normal_z(x: np.ndarray, classes: np.ndarray, shrinkage: float) -> np.ndarray:
    """``Phi^-1`` of the mid-rank empirical CDF of ``x`` in its class, shrunk toward the global CDF.

    Example:
        >>> rank_normal_z(np.array([0., 0., 0., 1.]), np.array(list("aaaa")), 0.0).round(3).tolist()
        [-0.319, -0.319, -0.319, 1.15]
    """
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=np.float64)
    n_all = len(x)
    if n_all == 0:
        return np.zeros(0)
    f_global = (rankdata(x) - 0.5) / n_all
    names, code = np.unique(np.asarray(classes, dtype=object).astype(str), return_inverse=True)
    f = np.empty(n_all)
    n = np.bincount(code, minlength=len(names)).astype(np.float64)
    for k in range(len(names)):
        rows = np.flatnonzero(code == k)
        f_class = (rankdata(x[rows]) - 0.5) / len(rows)
        f[rows] = (n[k] * f_class + shrinkage * f_global[rows]) / (n[k] + shrinkage)
    return ndtri(np.clip(f, 0.5 / n_all, 1 - 0.5 / n_all))


def overlap_features(box: np.ndarray, offsets: np.ndarray, labels: np.ndarray, dup_iou: float):
    """``(cross, same)``: per label the largest IoU with another-class label of its image, and with a
    same-class label below ``dup_iou`` (0 when none).

    Example:
        >>> b = np.array([[0, 0, .2, .2], [0, 0, .2, .1], [.5, .5, .6, .6]])
        >>> overlap_features(b, np.array([0, 3]), np.array(["a", "b", "a"]), 0.75)
        (array([0.5, 0.5, 0. ]), array([0., 0., 0.]))
    """
    L = len(box)
    cross, same = np.zeros(L), np.zeros(L)
    ri, rj, iou = batched_self_pairs(np.asarray(box, dtype=np.float64), np.asarray(offsets), "iou")
    if len(ri):
        is_same = labels[ri] == labels[rj]
        for out, sel in ((cross, ~is_same), (same, is_same & (iou < dup_iou))):
            np.maximum.at(out, ri[sel], iou[sel])
            np.maximum.at(out, rj[sel], iou[sel])
    return cross, same


def touches_border(box: np.ndarray) -> np.ndarray:
    """(L,) bool: a box edge lies within ``BORDER_TOL`` of the image border (the object may be cut).

    >>> touches_border(np.array([[0., .2, .3, .4], [.1, .1, .2, .2]])).tolist()
    [True, False]
    """
    b = np.asarray(box, dtype=np.float64)
    return (b[:, :2] <= BORDER_TOL).any(axis=1) | (b[:, 2:] >= 1 - BORDER_TOL).any(axis=1)


def raw_features(box: np.ndarray, offsets: np.ndarray, labels: np.ndarray, sample_index: np.ndarray,
                 width: np.ndarray, height: np.ndarray, dup_iou: float) -> dict:
    """Per-label raw features of one batch of images (overlaps need only the label's own image).

    Returns ``{"log_area", "log_aspect", "cross_overlap", "crowding": (L,) float, "border",
    "valid": (L,) bool}``; pixel sizes when every image size is known, else relative.

    Example:
        >>> f = raw_features(np.array([[.1, .1, .3, .2]]), np.array([0, 1]), np.array(["a"]),
        ...                  np.zeros(1, int), np.array([100.]), np.array([50.]), 0.75)
        >>> round(float(np.exp(f["log_area"][0])), 6), round(float(np.exp(f["log_aspect"][0])), 6)
        (100.0, 4.0)
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    w_img, h_img = np.asarray(width, np.float64), np.asarray(height, np.float64)
    pixels = len(w_img) > 0 and np.isfinite(w_img).all() and np.isfinite(h_img).all()
    sx = w_img[sample_index] if pixels else np.ones(len(b))
    sy = h_img[sample_index] if pixels else np.ones(len(b))
    w, h = (b[:, 2] - b[:, 0]) * sx, (b[:, 3] - b[:, 1]) * sy
    valid = np.isfinite(b).all(axis=1) & (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_area = np.where(valid, np.log(w * h), np.nan)
        log_aspect = np.where(valid, np.log(w / h), np.nan)
    cross, same = overlap_features(np.where(valid[:, None], b, 0.0), offsets, np.asarray(labels, dtype=object),
                                   dup_iou)
    return {"log_area": log_area, "log_aspect": log_aspect, "cross_overlap": cross, "crowding": same,
            "border": touches_border(np.where(valid[:, None], b, 0.5)), "valid": valid}


def feature_z(raw: dict, labels: np.ndarray, shrinkage: float):
    """``(z, censored)``: the (L, 4) z-scores of :data:`FEATURES` over all labels (class statistics
    are global) and the (L, 4) mask of z-scores kept only on their suspicious side.

    Example:
        >>> side = np.array([.1, .11, .12, .1, .4]); x0 = np.arange(5) * 0.18 + 0.05
        >>> b = np.c_[x0, np.full(5, .3), x0 + side * 0.4, .3 + side]
        >>> raw = raw_features(b, np.array([0, 5]), np.array(["a"] * 5), np.zeros(5, int),
        ...                    np.array([100.]), np.array([100.]), 0.75)
        >>> z, cens = feature_z(raw, np.array(["a"] * 5), 0.0)
        >>> z[:, 0].round(2).tolist()   # the big box stands out in area
        [-0.67, 0.0, 0.62, -0.67, 9.14]
    """
    labels = np.asarray(labels, dtype=object)
    z = np.stack([robust_class_z(raw["log_area"], labels, shrinkage),
                  robust_class_z(raw["log_aspect"], labels, shrinkage),
                  rank_normal_z(raw["cross_overlap"], labels, shrinkage),
                  rank_normal_z(raw["crowding"], labels, shrinkage)], axis=1)
    censored = np.broadcast_to(ONE_SIDED, z.shape).copy()
    border = np.asarray(raw["border"], bool)
    censored[border, 0] = True
    z[border, 1] = 0.0
    z = np.where(censored, np.maximum(z, 0.0), z)
    z[~np.asarray(raw["valid"], bool)] = 0.0  # degenerate boxes: the duplicates audit's degenerate_box
    return z, censored


def log_likelihood_ratio(z: np.ndarray, censored: np.ndarray, tau2: np.ndarray) -> np.ndarray:
    """(L, D) per-feature ``log LR`` of the error component ``N(0, tau^2)`` vs ``N(0, 1)``; 0 for a
    censored feature at its boundary (z = 0).

    >>> log_likelihood_ratio(np.array([[0., 2.]]), np.array([[True, False]]), np.array([4., 4.])).round(3)
    array([[0.   , 0.807]])
    """
    tau2 = np.asarray(tau2, dtype=np.float64)
    out = 0.5 * z ** 2 * (1.0 - 1.0 / tau2) - 0.5 * np.log(tau2)
    return np.where(censored & (z <= 0), 0.0, out)


def scale_mixture_em(z: np.ndarray, censored: np.ndarray):
    """EM for the error share ``pi`` and the error spreads ``tau_d^2 >= 1`` (module docstring).

    ``censored`` is (D,) or (L, D). Returns ``(posterior (L,), pi, tau2 (D,), log_lr (L, D))``.
    """
    z = np.asarray(z, dtype=np.float64)
    L, D = z.shape
    cens = np.broadcast_to(np.asarray(censored, bool), z.shape)
    seen = ~(cens & (z <= 0))  # features observed above their boundary (censored ones at 0 carry no density)
    pi, tau2 = EM_START_PI, np.full(D, EM_START_TAU2)
    if L == 0:
        return np.zeros(0), pi, tau2, np.zeros((0, D))
    z2 = z ** 2
    prev = -np.inf
    for _ in range(EM_ITERATIONS):
        llr = log_likelihood_ratio(z, cens, tau2)
        s = llr.sum(axis=1)
        log_num = np.log(pi) + s
        log_den = np.logaddexp(log_num, np.log1p(-pi))
        post = np.exp(log_num - log_den)
        # observed-data log-likelihood (up to the N(0, 1) part): the stopping rule
        ll = float(log_den.sum())
        pi = float(np.clip(post.mean(), 1.0 / (L + 1), EM_MAX_PI))
        wsum = (post[:, None] * seen).sum(axis=0)
        tau2 = np.where(wsum > 0, (post[:, None] * z2 * seen).sum(axis=0) / np.maximum(wsum, 1e-300), 1.0)
        tau2 = np.maximum(tau2, 1.0)
        if ll - prev < EM_TOLERANCE * max(1.0, abs(ll)):
            break
        prev = ll
    llr = log_likelihood_ratio(z, cens, tau2)
    log_num = np.log(pi) + llr.sum(axis=1)
    post = np.exp(log_num - np.logaddexp(log_num, np.log1p(-pi)))
    return post, pi, tau2, llr
