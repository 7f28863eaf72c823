"""One suspicion per queue row from every source of evidence: the triage queue's combined score.

The rule (naive Bayes: sources independent given whether the label is an error):

    L_r = logit(prior_r) + sum_s w_s [logit(p_s,r) - logit(base_s)],     score_r = sigmoid(L_r)

- ``p_s,r`` is source ``s``'s probability that row ``r`` is an error, clipped to
  [``EPS``, 1 - ``EPS``]; ``logit(p) - logit(base)`` is the log of the likelihood ratio that source
  gives (its posterior odds over the prior odds it was computed under).
- *Scoring sources* score every label of a field: a predictions audit (``p = 1 - <key>_quality``)
  and the labels-only prior (``p = <key>_suspicion``, :mod:`iou_audit.audits.prior`). Their
  ``base_s`` is the mean of ``p`` over the labels they score (the base rate their scores imply);
  their findings on those labels are not counted again.
- *Flagging sources* are every other audit's findings: ``p`` = the audit's highest finding score on
  the row (several kinds of one audit come from one analysis: one source), ``base_s = base``; a
  row an audit does not flag gets no term from it (likelihood ratio 1).
- ``base`` is the mean of the scoring sources' ``base_s`` (``DEFAULT_BASE_RATE`` without one).
- ``prior_r`` is ``base``, or, for a label whose annotator is known (the label attribute
  ``annotator_attr``, or the label field of an agreement audit run on one field per annotator),
  that annotator's error rate ``rho_a``. The rates are estimated by EM with the evidence
  ``E_r = L_r - logit(prior_r)`` of the annotator's labels that a scoring source scores:
  ``q_r = sigmoid(logit(rho_a) + E_r)``, ``rho_a = (sum_{r in a} q_r + ALPHA * base) / (n_a + ALPHA)``
  (``ALPHA = ANNOTATOR_SMOOTHING`` pseudo-labels at the base rate), until the rates settle.
  Only scored labels count: a scoring source gives every label evidence for or against an error,
  while a flag only ever raises it (an unflagged label gets no term), so EM over flags alone
  drifts towards 1 on an annotator with many flags (0.96 for the demo's simulated annotators,
  whose labels are about 11 % flagged). An annotator with no scored label keeps ``base``.
- A row of a single flagging source with no annotator scores exactly that source's score (clipped); rows
  of missing objects and samples have no annotator.

Sources are counted as independent: two models that make the same mistakes, or a prior and a model
that both see a box's size, are counted twice.

Example (two flagging audits at 0.5 and 0.6 on one label, base rate 0.1, no annotator):
    >>> L = combine_log_odds(np.zeros((1, 0)), np.zeros(0), np.array([[0.5, 0.6]]), 0.1, np.array([0.1]))
    >>> round(float(sigmoid(L)[0]), 4)   # odds 1/9 * 9 * 13.5 = 13.5
    0.931
"""
from __future__ import annotations

import numpy as np

#: probabilities are clipped to [EPS, 1 - EPS] before their logit (a score of 1 is strong, not infinite, evidence)
EPS = 1e-3
#: the base rate of errors when no scoring source estimates it
DEFAULT_BASE_RATE = 0.1
#: pseudo-labels at the base rate in each annotator's error rate
ANNOTATOR_SMOOTHING = 20.0
#: label attribute naming the annotator, read when the field has it
ANNOTATOR_ATTR = "annotator"
#: w_s of the rule per audit name (1 when absent). The labels-only prior's posterior is overconfident
#: on real labels (clean boxes have heavier-tailed sizes than its normal model): on the label-error
#: benchmark's seeds 1-3 its labels with posterior >= 0.97 were 61 % errors on BCCD, 20 % on COCO;
#: 0.25 was chosen there from {0, 0.25, 0.5, 1} (bench/bench_triage_combined.py; seeds 4-6 reported apart).
SOURCE_WEIGHTS = {"label_prior": 0.25}
#: the scoring sources: audit name -> (config key of the field it scores, label attribute, is it 1 - p)
SCORING_SOURCES = {
    "predictions": ("gt_field", "quality", True),
    "label_prior": ("label_field", "suspicion", False),
}
ANNOTATOR_EM_ITERATIONS, ANNOTATOR_EM_TOLERANCE = 100, 1e-9


def logit(p) -> np.ndarray:
    """``log(p / (1 - p))`` of ``p`` clipped to [EPS, 1 - EPS].

    >>> logit(np.array([0.5, 0.9, 1.0])).round(3).tolist()
    [0.0, 2.197, 6.907]
    """
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))``.

    >>> sigmoid(np.array([0.0, np.log(9)])).round(3).tolist()
    [0.5, 0.9]
    """
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def base_rates(scoring_p: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """``(base_s, base)``: each scoring source's mean probability over the labels it scores, and
    their mean (``DEFAULT_BASE_RATE`` without any).

    >>> base_rates([np.array([0.1, 0.3]), np.array([0.2])])
    (array([0.2, 0.2]), 0.2)
    """
    per = np.array([float(np.clip(np.nanmean(p), EPS, 1 - EPS)) if np.isfinite(p).any() else DEFAULT_BASE_RATE
                    for p in scoring_p], dtype=np.float64)
    return per, float(per.mean()) if len(per) else DEFAULT_BASE_RATE


def combine_log_odds(scoring_p: np.ndarray, scoring_base: np.ndarray, flag_p: np.ndarray, base: float,
                     prior: np.ndarray, scoring_weight: np.ndarray | None = None) -> np.ndarray:
    """The rule of the module docstring on arrays: ``L = logit(prior) + sum of the sources' log LRs``.

    Args:
        scoring_p: (N, S) scoring sources' probabilities, NaN where a source does not score the row.
        scoring_base: (S,) their base rates.
        flag_p: (N, A) flagging sources' scores, NaN (or <= 0) where the audit does not flag the row.
        base: the base rate the flagging sources' scores are read against.
        prior: (N,) each row's prior probability (its annotator's rate, or ``base``).
        scoring_weight: (S,) ``w_s`` of the scoring sources (default 1).

    Example:
        >>> combine_log_odds(np.array([[0.5], [np.nan]]), np.array([0.2]), np.array([[np.nan], [0.9]]),
        ...                  0.1, np.array([0.1, 0.1])).round(3).tolist()   # logit(.1)+logit(.5)-logit(.2); logit(.9)
        [-0.811, 2.197]
    """
    n = len(prior)
    sp = np.asarray(scoring_p, dtype=np.float64).reshape(n, np.shape(scoring_p)[-1] if np.ndim(scoring_p) == 2 else -1)
    fp = np.asarray(flag_p, dtype=np.float64).reshape(n, np.shape(flag_p)[-1] if np.ndim(flag_p) == 2 else -1)
    w = np.ones(sp.shape[1]) if scoring_weight is None else np.asarray(scoring_weight, dtype=np.float64)
    lr_s = np.where(np.isfinite(sp), w * (logit(np.nan_to_num(sp, nan=0.5)) - logit(np.asarray(scoring_base))), 0.0)
    flagged = np.isfinite(fp) & (np.nan_to_num(fp, nan=0.0) > 0)
    lr_f = np.where(flagged, logit(np.nan_to_num(fp, nan=0.5)) - logit(base), 0.0)
    return logit(prior) + lr_s.sum(axis=1) + lr_f.sum(axis=1)


def annotator_rates(evidence: np.ndarray, annotator: np.ndarray, n_annotators: int, base: float,
                    smoothing: float = ANNOTATOR_SMOOTHING) -> np.ndarray:
    """Each annotator's error rate by EM (module docstring) from the evidence log-odds of their labels.

    Args:
        evidence: (N,) ``E_r`` per label (sum of the sources' log LRs; 0 for a label nothing flagged).
        annotator: (N,) annotator index in ``0..n_annotators-1``.
        base: the base rate (the rates' prior mean). smoothing: its weight in pseudo-labels.

    Example (annotator 1's labels carry strong evidence, annotator 0's none):
        >>> r = annotator_rates(np.r_[np.zeros(50), np.full(10, 4.0), np.zeros(40)],
        ...                     np.r_[np.zeros(50, int), np.ones(50, int)], 2, 0.1)
        >>> bool(r[1] > 2 * r[0]), bool(r[0] < 0.1)
        (True, True)
    """
    e = np.asarray(evidence, dtype=np.float64)
    a = np.asarray(annotator, dtype=np.int64)
    n = np.bincount(a, minlength=n_annotators).astype(np.float64)
    rate = np.full(n_annotators, float(base))
    for _ in range(ANNOTATOR_EM_ITERATIONS):
        q = sigmoid(logit(rate[a]) + e)
        new = (np.bincount(a, q, minlength=n_annotators) + smoothing * base) / (n + smoothing)
        done = np.max(np.abs(new - rate), initial=0.0) < ANNOTATOR_EM_TOLERANCE
        rate = new
        if done:
            break
    return rate


def row_suspicion(row_type, label_id, audit_scores, sources, keys, audits=None) -> tuple[np.ndarray, dict]:
    """The combined score of each queue row and the annotators' error rates (module docstring).

    Args:
        row_type, label_id, audit_scores: per row (sequences): ``"label"``/``"missing"``/...,
            its label id (None for other rows), ``{audit_key: highest finding score}``.
        sources: :class:`iou_audit.review.sources.LabelSources` (scoring values, annotators, labels).
        keys: the audit keys merged. audits: ``{audit_key: audit name}`` (for ``SOURCE_WEIGHTS``).

    Returns:
        ``(score (N,), {annotator: error rate})``.
    """
    n = len(row_type)
    score_keys = [k for k in keys if k in sources.scoring]
    flag_keys = list(keys)
    scoring_vals = [np.fromiter(sources.scoring[k].values(), np.float64, len(sources.scoring[k])) for k in score_keys]
    base_s, base = base_rates(scoring_vals)
    # the universe of labels: every label read (for the annotators' counts) and every label row
    universe: dict[str, int] = {}
    for ids, _ in sources.labels.values():
        for i in ids:
            universe.setdefault(i, len(universe))
    row_pos = np.full(n, -1, dtype=np.int64)
    for r, (t, lid) in enumerate(zip(row_type, label_id)):
        if t == "label" and lid:
            row_pos[r] = universe.setdefault(lid, len(universe))
    ids = list(universe)
    U = len(ids)
    sp = np.full((U, len(score_keys)), np.nan)
    for j, k in enumerate(score_keys):
        vals = sources.scoring[k]
        sp[:, j] = [vals.get(i, np.nan) for i in ids]
    fp_label = np.full((U, len(flag_keys)), np.nan)
    fp_rows = np.full((n, len(flag_keys)), np.nan)
    for r, scores in enumerate(audit_scores):
        for j, k in enumerate(flag_keys):
            s = scores.get(k)
            if s is None:
                continue
            u = row_pos[r]
            if u >= 0:
                if k in sources.scoring and np.isfinite(sp[u, score_keys.index(k)]):
                    continue  # a scoring source's own findings on a label it scores: counted once
                fp_label[u, j] = s
            else:
                fp_rows[r, j] = s
    audits = audits or {}
    weight = np.array([SOURCE_WEIGHTS.get(audits.get(k), 1.0) for k in score_keys])
    evidence = combine_log_odds(sp, base_s, fp_label, base, np.full(U, 0.5), weight)  # logit(0.5) = 0
    names = sorted({sources.annotator[i] for i in ids if i in sources.annotator})
    code = {a: c for c, a in enumerate(names)}
    ann = np.array([code.get(sources.annotator.get(i), -1) for i in ids], dtype=np.int64)
    prior = np.full(U, base)
    rates = {}
    if names:
        has = ann >= 0
        scored = has & np.isfinite(sp).any(axis=1)  # see the module docstring: flags alone are one-sided
        rate = annotator_rates(evidence[scored], ann[scored], len(names), base)
        prior[has] = rate[ann[has]]
        estimated = np.bincount(ann[scored], minlength=len(names)) > 0
        rates = {a: r for a, r, e in zip(names, rate.tolist(), estimated) if e}
    label_score = sigmoid(logit(prior) + evidence)
    out = sigmoid(combine_log_odds(np.zeros((n, 0)), np.zeros(0), fp_rows, base, np.full(n, base)))
    lab = row_pos >= 0
    out[lab] = label_score[row_pos[lab]]
    return np.round(out, 12), rates
