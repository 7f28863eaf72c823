"""Array-level leak and drift functions against plain-Python / scipy-free oracles."""
import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from iou_audit.audits.splits.drift import drift_tests, drifted
from iou_audit.audits.splits.index import equal_pairs
from iou_audit.audits.splits.leaks import (
    annotation_candidates,
    annotation_leaks,
    embedding_leaks,
    exact_leaks,
    group_leaks,
    near_leaks,
)


def _iou(a, b):
    """Box IoU written out for one pair (xyxy)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _oracle_annotation_pairs(offsets, label, box, split, t):
    """Every cross-split pair, Hungarian on a Python-built class-wise IoU matrix."""
    out = []
    n = len(offsets) - 1
    for a, b in itertools.combinations(range(n), 2):
        if split[a] < 0 or split[b] < 0 or split[a] == split[b]:
            continue
        ra, rb = range(offsets[a], offsets[a + 1]), range(offsets[b], offsets[b + 1])
        if len(ra) == 0 or len(ra) != len(rb):
            continue
        m = np.array([[_iou(box[x], box[y]) if label[x] == label[y] else 0.0 for y in rb] for x in ra])
        r, c = linear_sum_assignment(-m)
        if (m[r, c] >= t).all():
            out.append((a, b))
    return out


def _random_label_sets(rng, n_samples, n_copies, jitter):
    classes = np.array(["a", "b", "c"])
    sets = []
    for _ in range(n_samples):
        k = rng.integers(0, 5)
        xy = rng.uniform(0, 0.8, (k, 2))
        wh = rng.uniform(0.05, 0.2, (k, 2))
        sets.append((rng.choice(classes, k), np.c_[xy, xy + wh]))
    for _ in range(n_copies):  # copies with jittered boxes, shuffled order
        lab, bx = sets[rng.integers(0, n_samples)]
        perm = rng.permutation(len(lab))
        noise = rng.uniform(-jitter, jitter, bx.shape)
        sets.append((lab[perm], (bx + noise)[perm]))
    offsets = np.r_[0, np.cumsum([len(s[0]) for s in sets])]
    label = np.concatenate([s[0] for s in sets]) if offsets[-1] else np.zeros(0, str)
    box = np.concatenate([s[1] for s in sets]).reshape(-1, 4)
    split = rng.integers(-1, 3, len(sets))
    return offsets, label.astype(object), box, split


@pytest.mark.parametrize("seed,t,jitter", [(0, 0.85, 0.004), (1, 0.9, 0.002), (2, 0.7, 0.01), (3, 0.5, 0.02)])
def test_annotation_leaks_equal_all_pairs_oracle(seed, t, jitter):
    rng = np.random.default_rng(seed)
    offsets, label, box, split = _random_label_sets(rng, 120, 60, jitter)
    expected = _oracle_annotation_pairs(offsets, label, box, split, t)
    got = annotation_leaks(offsets, label, box, split, t)
    assert sorted(zip(got.i.tolist(), got.j.tolist())) == expected
    assert len(expected) > 5  # the planted copies are there
    # every reported smallest IoU really is >= t
    assert (got.iou >= t).all() and (got.score >= got.iou).all()


def test_annotation_candidates_are_far_fewer_than_pairs():
    rng = np.random.default_rng(5)
    offsets, label, box, split = _random_label_sets(rng, 2000, 50, 0.003)
    ci, _ = annotation_candidates(offsets, label, box, split, 0.85)
    assert len(ci) < 0.02 * 2050 * 2049 / 2


def test_annotation_bad_threshold():
    with pytest.raises(ValueError, match="annotation_iou"):
        annotation_leaks(np.array([0, 0]), np.zeros(0, object), np.zeros((0, 4)), np.array([0]), 1.5)


def test_exact_and_near_and_group():
    split = np.array([0, 1, 1, 0, 2, -1])
    sha = np.array(["x", "x", "y", "z", "z", "x"], dtype=object)
    path = np.array(["1", "2", "3", "4", "5", "2"], dtype=object)
    ex = exact_leaks(sha, path, split)
    # 0-1 identical bytes; 3-4 identical bytes; 5 has no split
    assert sorted(zip(ex.i.tolist(), ex.j.tolist())) == [(0, 1), (3, 4)]
    ph = np.array([0, 0, 0xFFFF << 48, 1, 3, 0], np.uint64)
    near = near_leaks(ph, split, 2, exclude=ex)
    # 0-1 excluded (exact), (1,3): distance 1 cross-split; (1,4): 2; (0,4): 2 cross
    assert sorted(zip(near.i.tolist(), near.j.tolist())) == [(0, 4), (1, 3), (1, 4)]
    g = group_leaks(np.array(["v", "w", "v", "w", None, "v"], dtype=object), split)
    assert sorted(g.i.tolist()) == [0, 1, 2, 3]  # v: splits 0, 1 (5 has none); w: splits 1, 0
    g2 = group_leaks(np.array(["v", "w", "v", "w", "w", "v"], dtype=object), split)
    assert sorted(g2.i.tolist()) == [0, 1, 2, 3, 4]
    assert all(split[a] != split[b] for a, b in zip(g2.i, g2.j))


def test_embedding_leaks_against_loop():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(50, 8))
    e[40:] = e[:10] + rng.normal(scale=0.01, size=(10, 8))
    e[3] = 0.0  # zero vector never matches
    split = rng.integers(0, 2, 50)
    got = embedding_leaks(e, split, 0.01, chunk_rows=7)
    expected = []
    for a, b in itertools.combinations(range(50), 2):
        na, nb = np.linalg.norm(e[a]), np.linalg.norm(e[b])
        if na == 0 or nb == 0 or split[a] == split[b]:
            continue
        if 1 - e[a] @ e[b] / (na * nb) <= 0.01:
            expected.append((a, b))
    assert sorted(zip(got.i.tolist(), got.j.tolist())) == expected and expected


def test_equal_pairs_against_loop():
    v = np.array([3, 1, 3, 3, 2, 1])
    assert list(zip(*(a.tolist() for a in equal_pairs(v)))) == [
        (a, b) for a, b in itertools.combinations(range(len(v)), 2) if v[a] == v[b]]


def _ks_d(x, y):
    grid = np.sort(np.r_[x, y])
    fx = np.searchsorted(np.sort(x), grid, "right") / len(x)
    fy = np.searchsorted(np.sort(y), grid, "right") / len(y)
    return np.abs(fx - fy).max()


def test_drift_statistics_against_formulas():
    rng = np.random.default_rng(0)
    n = 300
    split = rng.integers(0, 2, n)
    counts = np.where(split == 0, rng.poisson(3, n), rng.poisson(6, n))
    offsets = np.r_[0, np.cumsum(counts)]
    sample_of = np.repeat(np.arange(n), counts)
    label = np.where(split[sample_of] == 0, rng.choice(["a", "b"], len(sample_of), p=[0.8, 0.2]),
                     rng.choice(["a", "b", "c"], len(sample_of), p=[0.4, 0.4, 0.2])).astype(object)
    xy = rng.uniform(0, 0.5, (len(label), 2))
    wh = rng.uniform(0.05, 0.3, (len(label), 2)) * np.where(split[sample_of] == 1, 1.5, 1.0)[:, None]
    box = np.c_[xy, xy + wh]
    width, height = np.full(n, 640.0), np.full(n, 480.0)
    tests, table = drift_tests(split, offsets, label, box, width, height, ["train", "test"])
    row = lambda q, t: tests[(tests.quantity == q) & (tests.test == t)].iloc[0]
    # Cramer's V and JSD from their definitions
    ca = np.array([(label[split[sample_of] == 0] == c).sum() for c in "abc"], float)
    cb = np.array([(label[split[sample_of] == 1] == c).sum() for c in "abc"], float)
    tab = np.stack([ca, cb])
    expected_counts = tab.sum(1, keepdims=True) * tab.sum(0, keepdims=True) / tab.sum()
    chi2 = ((tab - expected_counts) ** 2 / expected_counts).sum()
    assert row("classes", "chi-square").statistic == pytest.approx(chi2)
    assert row("classes", "chi-square").effect_size == pytest.approx(np.sqrt(chi2 / tab.sum()))
    p, q = ca / ca.sum(), cb / cb.sum()
    m = (p + q) / 2
    kl = lambda u, v: np.sum(np.where(u > 0, u * np.log2(np.where(u > 0, u, 1) / v), 0))
    assert row("classes", "jensen-shannon").effect_size == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    # KS D from the empirical CDFs
    a0, a1 = split[sample_of] == 0, split[sample_of] == 1
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    assert row("box_area", "ks").effect_size == pytest.approx(_ks_d(area[a0], area[a1]))
    aspect = np.log((box[:, 2] - box[:, 0]) * 640 / ((box[:, 3] - box[:, 1]) * 480))
    assert row("box_log_aspect", "ks").effect_size == pytest.approx(_ks_d(aspect[a0], aspect[a1]))
    assert row("objects_per_image", "ks").effect_size == pytest.approx(
        _ks_d(counts[split == 0].astype(float), counts[split == 1].astype(float)))
    absent = tests[tests.test == "absent class"]
    assert absent.detail.str.startswith("'c' in test").all() and len(absent) == 1
    # chance that all c labels land in test at random: (n_test / n_total) ** n_c
    assert absent.p_value.iloc[0] == pytest.approx((cb.sum() / (ca.sum() + cb.sum())) ** cb[2])
    flagged = tests[drifted(tests)]
    assert {"classes", "box_area", "objects_per_image"} <= set(flagged.quantity)
    assert table.loc["c", "train"] == 0 and table.loc["c", "test"] == cb[2]


def test_no_drift_between_identical_distributions():
    rng = np.random.default_rng(1)
    n = 400
    split = np.arange(n) % 2
    counts = rng.poisson(4, n)
    offsets = np.r_[0, np.cumsum(counts)]
    label = rng.choice(["a", "b"], offsets[-1]).astype(object)
    xy = rng.uniform(0, 0.5, (offsets[-1], 2))
    box = np.c_[xy, xy + rng.uniform(0.05, 0.3, (offsets[-1], 2))]
    tests, _ = drift_tests(split, offsets, label, box, np.full(n, np.nan), np.full(n, np.nan), ["x", "y"])
    assert not drifted(tests).any()


@pytest.mark.parametrize("name", ["hashing", "index", "leaks", "drift", "audit", "copies", "sources"])
def test_docstring_examples(name):
    import doctest
    import importlib

    import fiftyone  # noqa: F401  imported before the doctests (they can leave an ndarray in builtins._)

    module = importlib.import_module(f"iou_audit.audits.splits.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
