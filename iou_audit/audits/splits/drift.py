"""Drift between splits: does each split contain the same kind of data?

For every pair of splits (a, b):
- class frequencies: chi-square test of the 2 x C contingency table of label counts, effect size
  Cramer's V = sqrt(chi2 / n) (2 rows), and the Jensen-Shannon divergence (base 2, in [0, 1]) of the
  two class distributions;
- box area (fraction of the image), box aspect ratio (log of width/height, in pixels when image
  sizes are known) and objects per image: two-sample Kolmogorov-Smirnov tests (scipy.stats.ks_2samp);
  the KS statistic D (largest gap between the two CDFs, in [0, 1]) is the effect size;
- classes present in one split and absent from the other, with the chance of that happening when
  labels fall into splits at random in proportion to their sizes, and the class's share of labels.
p-values are Bonferroni-adjusted over all tests of the run. A test becomes a ``split_drift`` finding
when its adjusted p-value is below ``alpha`` *and* its effect size reaches ``min_effect``: with
thousands of labels a tiny, harmless difference is "significant", so significance alone is not
reported.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

DEFAULT_ALPHA = 0.01
# Cohen's "small" effect for Cramer's V (0.1); for KS D and JSD 0.1 likewise means a visible
# difference between the two distributions (10 % of the mass moved).
DEFAULT_MIN_EFFECT = 0.1

TEST_COLUMNS = ["split_a", "split_b", "quantity", "test", "statistic", "p_value", "p_adjusted",
                "effect", "effect_size", "n_a", "n_b", "detail", "class"]


def class_counts(label: np.ndarray, label_split: np.ndarray, split_names: list[str]) -> pd.DataFrame:
    """Label counts per class (rows) and split (columns), with a ``total`` column.

    >>> class_counts(np.array(["a", "b", "a"]), np.array([0, 0, 1]), ["train", "test"]).to_dict("index")
    {'a': {'train': 1, 'test': 1, 'total': 2}, 'b': {'train': 1, 'test': 0, 'total': 1}}
    """
    frame = pd.crosstab(pd.Series(np.asarray(label, dtype=str), name="class"),
                        pd.Categorical.from_codes(label_split, split_names, validate=False))
    frame = frame.reindex(columns=split_names, fill_value=0).astype(np.int64)
    frame.columns = list(split_names)
    frame.index.name = "class"
    frame["total"] = frame.sum(axis=1)
    return frame


def _ks(x: np.ndarray, y: np.ndarray):
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        return np.nan, np.nan, len(x), len(y)
    res = stats.ks_2samp(x, y)
    return float(res.statistic), float(res.pvalue), len(x), len(y)


def drift_tests(
    split: np.ndarray,
    offsets: np.ndarray,
    label: np.ndarray,
    box: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    split_names: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All drift tests between every pair of splits.

    Args:
        split: (S,) int split code per sample (-1 = none, ignored).
        offsets: (S+1,) label offsets; label, box: (L,) classes and (L, 4) relative xyxy boxes.
        width, height: (S,) image size in pixels (NaN unknown: aspect ratios stay relative).
        split_names: name of each split code.

    Returns:
        ``(tests, counts)``: one row per (split pair, quantity) with ``TEST_COLUMNS``, and
        :func:`class_counts`.

    Example:
        >>> t, c = drift_tests(np.array([0, 1]), np.array([0, 1, 2]), np.array(["a", "b"]),
        ...                    np.array([[0, 0, .5, .5], [0, 0, .5, .5]]), np.full(2, 100.), np.full(2, 100.),
        ...                    ["train", "test"])
        >>> t[t.quantity == "classes"][["test", "detail"]].values.tolist()[-2:]
        [['absent class', "'a' in train (1 labels, 100.00%), absent from test; chance of that split by luck 0.5"], ['absent class', "'b' in test (1 labels, 100.00%), absent from train; chance of that split by luck 0.5"]]
    """
    split = np.asarray(split, np.int64)
    offsets = np.asarray(offsets, np.int64)
    n_labels = np.diff(offsets)
    sample_index = np.repeat(np.arange(len(n_labels)), n_labels)
    label = np.asarray(label, dtype=str)
    label_split = split[sample_index]
    in_split = label_split >= 0
    b = np.asarray(box, np.float64).reshape(-1, 4)
    w_rel, h_rel = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.where((w_rel > 0) & (h_rel > 0), w_rel * h_rel, np.nan)
        px_w = np.where(np.isfinite(width), width, 1.0)[sample_index]
        px_h = np.where(np.isfinite(height), height, 1.0)[sample_index]
        log_aspect = np.where((w_rel > 0) & (h_rel > 0), np.log((w_rel * px_w) / (h_rel * px_h)), np.nan)
    counts = class_counts(label[in_split], label_split[in_split], split_names)
    rows, class_of_row = [], {}  # class_of_row: row number -> class, for "absent class" rows
    for a, b_ in combinations(range(len(split_names)), 2):
        name_a, name_b = split_names[a], split_names[b_]
        ca, cb = counts[name_a].to_numpy(), counts[name_b].to_numpy()
        used = (ca + cb) > 0
        if ca.sum() and cb.sum() and used.sum() >= 2:
            table = np.stack([ca[used], cb[used]])
            chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
            v = float(np.sqrt(chi2 / table.sum()))
            jsd = float(jensenshannon(ca / ca.sum(), cb / cb.sum(), base=2) ** 2)
            rows.append((name_a, name_b, "classes", "chi-square", chi2, p, "cramers_v", v, ca.sum(), cb.sum(),
                         f"chi2={chi2:.1f}, dof={dof}, Cramer's V={v:.3f}"))
            rows.append((name_a, name_b, "classes", "jensen-shannon", jsd, np.nan, "jsd", jsd, ca.sum(), cb.sum(),
                         f"JSD={jsd:.4f} (base 2)"))
        for cls, na, nb in zip(counts.index, ca, cb):
            for here, there, n_here, total_here in ((name_a, name_b, na, ca.sum()), (name_b, name_a, nb, cb.sum())):
                if n_here > 0 and n_here == na + nb:
                    # chance that all n labels of the class land in this split under a random
                    # assignment of labels in proportion to the split sizes
                    chance = float((total_here / (ca.sum() + cb.sum())) ** n_here)
                    share = n_here / total_here
                    rows.append((name_a, name_b, "classes", "absent class", float(n_here), chance, "class_share",
                                 share, na, nb, f"{cls!r} in {here} ({n_here} labels, {share:.2%}), absent from "
                                 f"{there}; chance of that split by luck {chance:.2g}"))
                    class_of_row[len(rows) - 1] = cls
        la, lb = label_split == a, label_split == b_
        for quantity, values in (("box_area", area), ("box_log_aspect", log_aspect)):
            d, p, n1, n2 = _ks(values[la], values[lb])
            rows.append((name_a, name_b, quantity, "ks", d, p, "ks_d", d, n1, n2,
                         f"KS D={d:.3f}; median {np.nanmedian(values[la]) if n1 else np.nan:.4g} vs "
                         f"{np.nanmedian(values[lb]) if n2 else np.nan:.4g}"))
        oa, ob = n_labels[split == a].astype(np.float64), n_labels[split == b_].astype(np.float64)
        d, p, n1, n2 = _ks(oa, ob)
        rows.append((name_a, name_b, "objects_per_image", "ks", d, p, "ks_d", d, n1, n2,
                     f"KS D={d:.3f}; mean {oa.mean() if n1 else np.nan:.2f} vs {ob.mean() if n2 else np.nan:.2f}"))
    tests = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if c not in ("p_adjusted", "class")])
    tests["class"] = pd.Series([class_of_row.get(k, "") for k in range(len(rows))], dtype=object)
    n_tests = int(tests["p_value"].notna().sum())
    tests.insert(6, "p_adjusted", np.minimum(1.0, tests["p_value"] * max(n_tests, 1)))
    for col in ("statistic", "p_value", "p_adjusted", "effect_size"):
        tests[col] = tests[col].astype(np.float64)
    tests["n_a"] = tests["n_a"].astype(np.int64)
    tests["n_b"] = tests["n_b"].astype(np.int64)
    return tests, counts


def drifted(tests: pd.DataFrame, alpha: float = DEFAULT_ALPHA, min_effect: float = DEFAULT_MIN_EFFECT) -> pd.Series:
    """Which test rows are drift findings: absent classes, and tests with a Bonferroni-adjusted
    p-value below ``alpha`` and an effect size of at least ``min_effect``. The JSD row has no
    p-value of its own: it counts when the chi-square test of the same split pair is significant."""
    chi = tests[tests["test"] == "chi-square"].set_index(["split_a", "split_b"])["p_adjusted"]
    p = tests["p_adjusted"].copy()
    is_jsd = tests["test"] == "jensen-shannon"
    p[is_jsd] = [chi.get((a, b), np.nan) for a, b in zip(tests.loc[is_jsd, "split_a"], tests.loc[is_jsd, "split_b"])]
    significant = (p < alpha) & (tests["effect_size"] >= min_effect)
    return (tests["test"] == "absent class") | significant
