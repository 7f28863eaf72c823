"""Agreement core on arrays, against independent oracles: kalphacv's published unit-test values
(Madave94/kalphacv tests/test_krippendorff.py and tests/test_example_fruits.py), hand-counted
small cases, and brute-force optimal assignment."""
import itertools
from types import SimpleNamespace as T

import numpy as np
import pytest

from iou_audit.audits.agreement import compute_agreement
from iou_audit.audits.agreement.kalpha import interval_alpha, nominal_alpha_counts
from iou_audit.audits.agreement.pairs import match_blocks

EMPTY = 0  # kalphacv's EmptyEntry: one category shared by all raters


def alpha_of(matrix):
    """kalphacv reliability matrix [rater][unit] -> our (unit, value) observations."""
    unit = [u for row in matrix for u in range(len(row))]
    value = [v for row in matrix for v in row]
    return nominal_alpha_counts(np.array(unit), np.array(value))


# Category ids of kalphacv's fixtures: cat1..3 -> 1..3, right_nmatch A/B -> 5/6, category_7/8 -> 7/8.
KALPHACV_CASES = [
    ([[1], [1]], 1),
    ([[1], [EMPTY]], 0),
    ([[1], [2]], 0),
    ([[1, 2], [1, 2]], 1),
    ([[1, 2], [2, EMPTY]], -0.2),
    ([[1, 2, 3], [1, 2, 3]], 1),
    ([[1, 2, 3], [1, EMPTY, 1]], 0.1667),
    ([[1, 2, 3, 1, 2], [1, 2, 3, 1, 2]], 1),
    ([[1, EMPTY, 3, 1, 2], [1, 3, EMPTY, 2, 2]], 0.2703),
    ([[1, 2, 3, 1, 2, 1, 2, 3, 1, 2]] * 2, 1),
    ([[1, 2, EMPTY, 1, 2, 1, 6, 8, 3, EMPTY], [EMPTY, 2, 1, 2, 2, 5, 6, 7, 3, 2]], 0.3049),
    ([[1, 2, EMPTY, 1, 2, 1, 6, 8, 3, EMPTY, 1, 2, 3, 1, 2, 1, 2, 3, 1, 5],
      [EMPTY, 2, 1, 2, 2, 5, 6, 7, 3, 2, 1, 2, 6, 2, 5, 1, EMPTY, 3, 1, 5]], 0.3953),
]


@pytest.mark.parametrize("matrix,expected", KALPHACV_CASES)
def test_nominal_alpha_reproduces_kalphacv_unit_tests(matrix, expected):
    assert round(alpha_of(matrix), 4) == pytest.approx(expected, abs=1e-9)


def fruits_tables(order=(0, 1, 2)):
    """kalphacv's src/fruits.json (3 raters on one 451x384 image), boxes in COCO xywh pixels."""
    raters = [
        [(1, 2, [57, 40, 353, 217.84]), (2, 1, [228, 169, 153, 159]), (3, 1, [136, 173, 127, 147])],
        [(4, 1, [135, 176, 146, 141]), (5, 1, [229, 171, 152, 159]), (6, 2, [56, 42, 352, 253])],
        [(7, 1, [113, 163, 272, 181]), (8, 2, [138, 173, 151, 146]), (9, 1, [56, 38, 353, 246])],
    ]
    tables = []
    for r in order:
        boxes = np.array([b for _, _, b in raters[r]], dtype=float)
        xyxy = np.c_[boxes[:, 0] / 451, boxes[:, 1] / 384, (boxes[:, 0] + boxes[:, 2]) / 451, (boxes[:, 1] + boxes[:, 3]) / 384]
        tables.append(T(offsets=np.array([0, 3]), label_id=np.array([str(i) for i, _, _ in raters[r]]),
                        label=np.array([str(c) for _, c, _ in raters[r]]), box=xyxy, sample_ids=np.array(["img"])))
    return tables


def test_fruits_matches_kalphacv_end_to_end():
    r = compute_agreement(fruits_tables(), names=["Ann1", "Ann2", "ann3"], compute_map=False)
    assert round(r.metrics["alpha_nominal"], 4) == 0.0222
    assert r.tables["alpha"].alpha.iloc[0] == r.metrics["alpha_nominal"]
    # Pair Ann1-Ann2 alone: units {1,6} (2,2), {2,5} (1,1), {3,4} (1,1) -> perfect agreement.
    # Pair Ann1-ann3: {1,9} (2,1), {2,E} (1,E), {3,8} (1,2), {E,7} (E,1): n=8, counts 1:4 2:2 E:2,
    # every unit disagrees -> Do_sum = 8, De_sum = 64 - (16+4+4) = 40 -> alpha = 1 - 7*8/40 = -0.4.
    pa = r.tables["pairs"].set_index(["annotator_a", "annotator_b"]).alpha
    assert pa[("Ann1", "Ann2")] == 1.0 and pa[("Ann1", "ann3")] == pytest.approx(-0.4)
    # Per class (units grouped by majority class), by hand with the same formula:
    # class 1 units (1,1,E) (1,1,2) (E,E,1): n=9, Do_sum=6, De_sum=81-(25+9+1)=46 -> 1-8*6/46;
    # class 2 unit (2,2,1): n=3, Do_sum=2, De_sum=9-(4+1)=4 -> 1-2*2/4 = 0.
    per_class = r.tables["per_class"].set_index("label").alpha
    assert per_class["1"] == pytest.approx(1 - 48 / 46) and per_class["2"] == pytest.approx(0.0)
    # Units as kalphacv's coincidence-matrix test lists them: {1,6,9}, {2,5}, {3,4,8}, {7}.
    ids = {frozenset(m.label_id) for _, m in r.members.groupby("cluster")}
    assert ids == {frozenset("169"), frozenset("25"), frozenset("348"), frozenset("7")}
    pair_iou = {frozenset(p): v for p, v in zip(
        [("1", "6"), ("1", "9"), ("2", "5"), ("3", "4")], [0.84, 0.8808, 0.9689, 0.8388])}
    mem = r.members.set_index("label_id")
    for pair, expected in pair_iou.items():
        a, b = sorted(pair)
        pm = next(p for p in r.pair_matches if (p.a, p.b) == (mem.annotator[a], mem.annotator[b]))
        assert round(pm.iou_a[mem.row[a]], 4) == expected


def test_clusters_and_alpha_do_not_depend_on_field_order():
    base = compute_agreement(fruits_tables(), compute_map=False)
    want = {frozenset(m.label_id) for _, m in base.members.groupby("cluster")}
    for order in itertools.permutations(range(3)):
        r = compute_agreement(fruits_tables(order), compute_map=False)
        assert {frozenset(m.label_id) for _, m in r.members.groupby("cluster")} == want
        assert r.metrics["alpha_nominal"] == pytest.approx(base.metrics["alpha_nominal"])
        assert r.metrics["alpha_interval"] == pytest.approx(base.metrics["alpha_interval"])


def test_hungarian_is_optimal_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, m = (int(x) for x in rng.integers(1, 6, size=2))
        block = rng.random((n, m)) * (rng.random((n, m)) < 0.7)
        ma, ia, mb, ib = match_blocks(block.ravel(), np.array([0, n * m]), np.array([0, n]), np.array([0, m]), 0.5)
        got = ia[ma >= 0].sum()
        best = 0.0
        for perm in itertools.permutations(range(max(n, m)), n):
            s = sum(block[i, j] for i, j in enumerate(perm) if j < m and block[i, j] >= 0.5)
            best = max(best, s)
        assert got == pytest.approx(best)
        assert np.all(ia[ma >= 0] >= 0.5)


def box_table(rows, S=1):
    """rows: (sample, id, label, xyxy)."""
    rows = sorted(rows, key=lambda r: r[0])
    counts = np.bincount([r[0] for r in rows], minlength=S)
    return T(offsets=np.r_[0, np.cumsum(counts)], label_id=np.array([r[1] for r in rows]),
             label=np.array([r[2] for r in rows]), box=np.array([r[3] for r in rows], float).reshape(-1, 4),
             sample_ids=np.array([f"s{i}" for i in range(S)]))


def test_findings_hand_counted():
    # Three annotators on one image. Object X: all three, classes cat/cat/dog -> class_conflict for c.
    # Object Y: a and b only -> missing_in_annotator for c (2 of 3 >= majority 2).
    # Object Z: c only -> extra_in_annotator for c. Object W: a and b with IoU 0.6 -> low_agreement.
    X, Y, Z = [0, 0, .2, .2], [.5, .5, .7, .7], [.8, .0, .95, .1]
    W1, W2 = [0, .6, .3, .9], [0, .6, .3, .78]  # IoU 0.18/0.3 = 0.6
    a = box_table([(0, "a1", "cat", X), (0, "a2", "car", Y), (0, "a3", "bus", W1)])
    b = box_table([(0, "b1", "cat", X), (0, "b2", "car", Y), (0, "b3", "bus", W2)])
    c = box_table([(0, "c1", "dog", X), (0, "c2", "cup", Z)])
    r = compute_agreement([a, b, c], names=["a", "b", "c"], compute_map=False)
    f = r.findings
    got = sorted(zip(f.kind, f.label_id.fillna(""), f.field))
    assert got == sorted([
        ("class_conflict", "c1", "c"),
        ("missing_in_annotator", "", "c"), ("missing_in_annotator", "", "c"),  # Y and W
        ("extra_in_annotator", "c2", "c"),
        ("low_agreement", "a3", "a"), ("low_agreement", "b3", "b"),
    ])
    low = f[f.kind == "low_agreement"]
    assert low.iou.iloc[0] == pytest.approx(0.6) and low.score.iloc[0] == pytest.approx(0.4)
    assert f[f.kind == "class_conflict"].score.iloc[0] == 1.0
    # Pair a-b: 3 matched of 3+3 labels; pair a-c: 1 matched of 3+2.
    pairs = r.tables["pairs"].set_index(["annotator_a", "annotator_b"])
    assert pairs.loc[("a", "b"), "f1"] == 1.0
    assert pairs.loc[("a", "c"), "f1"] == pytest.approx(2 * 1 / 5)
    assert pairs.loc[("a", "c"), "f1_class"] == 0.0
    assert pairs.loc[("a", "b"), "mean_iou"] == pytest.approx((1 + 1 + 0.6) / 3)
    rel = r.tables["annotators"].set_index("annotator")
    assert rel.loc["c", "reliability"] < rel.loc["a", "reliability"]
    # c: others' consensus = X, Y, W (3); c has X (tp 1), misses Y and W (fn 2), Z is fp.
    assert (rel.loc["c", "tp"], rel.loc["c", "fn"], rel.loc["c", "fp"]) == (1, 2, 1)
    # a: the others (b, c) jointly have X, Y, W and Z -> a misses Z only; its classes agree with the
    # others' plurality (X: b says cat, c says dog -> a tie, counted as agreement). c's dog does not.
    assert (rel.loc["a", "tp"], rel.loc["a", "fn"], rel.loc["a", "fp"]) == (3, 1, 0)
    assert rel.loc["a", "class_accuracy"] == 1.0 and rel.loc["c", "class_accuracy"] == 0.0
    assert rel.loc["c", "reliability_class"] == 0.0 and rel.loc["c", "rank"] == 3


def test_coverage_excludes_unlabelled_samples():
    X = [0, 0, .2, .2]
    a = box_table([(0, "a1", "cat", X), (1, "a2", "cat", X)], S=2)
    b = box_table([(0, "b1", "cat", X), (1, "b2", "cat", X)], S=2)
    c = box_table([(0, "c1", "cat", X)], S=2)  # c never looked at sample 1
    covered = np.array([[1, 1, 1], [1, 1, 0]], bool)
    r = compute_agreement([a, b, c], names=list("abc"), coverage=covered, compute_map=False)
    assert r.findings.empty
    assert r.metrics["alpha_nominal"] == 1.0
    pairs = r.tables["pairs"].set_index(["annotator_a", "annotator_b"])
    assert pairs.loc[("a", "c"), "n_samples"] == 1 and pairs.loc[("a", "c"), "f1"] == 1.0
    # Without coverage, sample 1 counts as "c found nothing": a missing finding appears.
    r2 = compute_agreement([a, b, c], names=list("abc"), compute_map=False)
    assert r2.findings.kind.tolist() == ["missing_in_annotator"]


def test_interval_alpha_equals_nominal_when_iou_is_all_or_nothing():
    # Units with shapes identical (IoU 1) or absent: the interval distance is the nominal one
    # with one category per unit plus "empty".
    n_cov = np.array([2, 2, 3, 3])
    n_present = np.array([2, 1, 3, 2])
    iou_sum = np.array([1.0, 0.0, 3.0, 1.0])
    unit = np.repeat(np.arange(4), n_cov)
    value = np.array([1, 1, 2, EMPTY, 3, 3, 3, 4, 4, EMPTY])
    assert interval_alpha(n_cov, n_present, iou_sum) == pytest.approx(nominal_alpha_counts(unit, value))


def test_empty_annotators_do_not_crash():
    def empty(S):
        return T(offsets=np.zeros(S + 1, np.int64), label_id=np.zeros(0, str), label=np.zeros(0, str),
                 box=np.zeros((0, 4)), sample_ids=np.array([f"s{i}" for i in range(S)]))

    r = compute_agreement([empty(3), empty(3)])
    assert r.findings.empty and r.metrics["n_objects"] == 0 and np.isnan(r.metrics["alpha_nominal"])
    one = box_table([(0, "x", "cat", [0, 0, .5, .5])], S=3)
    r = compute_agreement([one, empty(3), empty(3)])
    assert r.findings[["kind", "label_id"]].values.tolist() == [["extra_in_annotator", "x"]]
    # b and c as references have no labels (AP undefined); a as reference: nothing detected, AP 0
    assert r.tables["map_pairs"]["map"].tolist()[:2] == [0.0, 0.0]


def test_threshold_curve_counts_pairs_at_each_threshold():
    # One sample, two annotators, three objects with IoUs 0.4, 0.6 and 0.9 (boxes shifted in x).
    def shifted(iou):  # unit-height boxes [0, 1] and [d, 1 + d]: IoU = (1 - d) / (1 + d)
        d = (1 - iou) / (1 + iou)
        return [0, 0, 1, 1], [d, 0, 1 + d, 1]

    rows_a, rows_b = [], []
    for k, iou in enumerate([0.4, 0.6, 0.9]):
        a, b = shifted(iou)
        off = 3 * k
        rows_a.append((0, f"a{k}", "cat", [(a[0] + off) / 10, a[1], (a[2] + off) / 10, a[3]]))
        rows_b.append((0, f"b{k}", "cat", [(b[0] + off) / 10, b[1], (b[2] + off) / 10, b[3]]))
    r = compute_agreement([box_table(rows_a), box_table(rows_b)], compute_map=False,
                          curve_thresholds=(0.3, 0.5, 0.7, 0.95))
    curve = r.tables["threshold_curve"].set_index("iou_thresh").f1
    assert curve.to_dict() == pytest.approx({0.3: 1.0, 0.5: 2 / 3, 0.7: 1 / 3, 0.95: 0.0})


def test_resampled_alpha_equals_duplicated_units():
    # Weights must act exactly like repeating a sample's units (an independent recount).
    from iou_audit.audits.agreement.kalpha import nominal_alpha_ci, nominal_alpha_resampled

    rng = np.random.default_rng(5)
    unit = np.repeat(np.arange(30), 3)
    value = rng.integers(0, 4, len(unit))
    sample = unit // 5  # 6 samples of 5 units
    w = rng.integers(0, 3, 6).astype(float)
    got = nominal_alpha_resampled(unit, value, sample, w[None, :])[0]
    units, values = [], []
    for s in range(6):
        for copy in range(int(w[s])):
            sel = sample == s
            units.append(unit[sel] + 1000 * (copy + 1)), values.append(value[sel])
    assert got == pytest.approx(nominal_alpha_counts(np.concatenate(units), np.concatenate(values)))
    assert nominal_alpha_resampled(unit, value, sample, np.ones((1, 6)))[0] == pytest.approx(nominal_alpha_counts(unit, value))
    lo, hi = nominal_alpha_ci(unit, value, sample, 6)
    assert lo <= nominal_alpha_counts(unit, value) <= hi


def test_clusters_are_order_independent_on_random_crowded_images():
    rng = np.random.default_rng(11)
    S, K = 20, 4
    base = rng.uniform(0, 0.8, (S, 6, 2))
    tables = []
    for k in range(K):
        rows = []
        for s in range(S):
            for o in range(6):
                if rng.random() < 0.8:  # each annotator draws most objects, jittered
                    x, y = base[s, o] + rng.normal(0, 0.02, 2)
                    rows.append((s, f"k{k}s{s}o{o}", str(rng.choice(["p", "q"])), [x, y, x + .15, y + .15]))
        tables.append(box_table(rows, S=S))
    sets = None
    for order in itertools.permutations(range(K)):
        r = compute_agreement([tables[i] for i in order], compute_map=False)
        got = {frozenset(m.label_id) for _, m in r.members.groupby("cluster")}
        assert all(len({lid[:2] for lid in c}) == len(c) for c in got)  # one label per annotator
        sets = got if sets is None else sets
        assert got == sets


def test_threshold_curve_alpha_equals_alpha_of_clusters_rebuilt_at_each_threshold():
    # The curve's fast path (filtered union-find roots) against the full path: clusters rebuilt
    # from the matches above t, observations from their member table, the formula checked above.
    from iou_audit.audits.agreement.clusters import build_clusters
    from iou_audit.audits.agreement.core import _alpha_observations, class_codes

    tables = fruits_tables()
    r = compute_agreement(tables, compute_map=False, curve_thresholds=(0.5, 0.85, 0.9, 0.95))
    covered = np.ones((1, 3), bool)
    for t, got in r.tables["threshold_curve"].set_index("iou_thresh").alpha_nominal.items():
        cl = build_clusters(tables, r.pair_matches, min_iou=t)
        u, v, _ = _alpha_observations(tables, cl, covered, class_codes(tables))
        assert got == pytest.approx(nominal_alpha_counts(u, v))
    assert r.tables["threshold_curve"].alpha_nominal.iloc[0] == pytest.approx(r.metrics["alpha_nominal"])
