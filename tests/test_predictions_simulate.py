"""The seeded label-noise model and simulated detector do what their docstring says (IoUs by shapely)."""
import numpy as np
import pytest
from shapely.geometry import box as sbox

from iou_audit.simulate.predictions import Boxes, Detector, LabelNoise, inject_label_errors, simulate_detections


def _iou(a, b):
    A, B = sbox(*a), sbox(*b)
    return A.intersection(B).area / A.union(B).area


@pytest.fixture(scope="module")
def clean():
    rng = np.random.default_rng(5)
    per = 8
    S = 150
    wh = rng.uniform(0.05, 0.15, (S * per, 2))
    xy = 0.2 + rng.uniform(0, 0.6, (S * per, 2)) * (0.8 - wh)
    return Boxes(np.c_[xy, xy + wh], np.array(rng.choice(["a", "b", "c"], S * per), object),
                 np.arange(0, S * per + 1, per, dtype=np.int64))


def test_seeded_and_reproducible(clean):
    a = inject_label_errors(clean, ["a", "b", "c"], seed=1)
    b = inject_label_errors(clean, ["a", "b", "c"], seed=1)
    np.testing.assert_array_equal(a[0].box, b[0].box)
    assert a[1].tolist() == b[1].tolist()
    p1 = simulate_detections(clean, ["a", "b", "c"], seed=1)
    p2 = simulate_detections(clean, ["a", "b", "c"], seed=1)
    np.testing.assert_array_equal(p1.confidence, p2.confidence)


@pytest.mark.parametrize("kind", ["shift", "rescale", "swap", "duplicate", "spurious", "drop"])
def test_each_noise_kind(clean, kind):
    noisy, image_kind, dropped = inject_label_errors(clean, ["a", "b", "c"], LabelNoise(kinds=(kind,)), seed=2)
    noisy_images = np.flatnonzero(image_kind == kind)
    assert 0.35 < len(noisy_images) / len(image_kind) < 0.65
    assert set(image_kind.tolist()) <= {"", kind}
    for s in range(len(image_kind)):
        rows = range(noisy.offsets[s], noisy.offsets[s + 1])
        marked = [i for i in rows if noisy.error[i]]
        if image_kind[s] == "" or kind == "drop":
            assert not marked
            continue
        assert marked and all(noisy.error[i] == kind for i in marked)
        orig = clean.box[clean.offsets[s]:clean.offsets[s + 1]]
        for i in marked:
            best = max(_iou(noisy.box[i], o) for o in orig)
            own = i - noisy.offsets[s] + clean.offsets[s]  # shift/rescale keep the row in place
            if kind == "shift":  # IoU = (1-dx)(1-dy) / (2 - (1-dx)(1-dy)), dx, dy in [0.25, 0.45]
                assert 0.17 < _iou(noisy.box[i], clean.box[own]) < 0.4
            elif kind == "rescale":  # IoU = 1 / (fx fy) or fx fy
                assert 0.24 < _iou(noisy.box[i], clean.box[own]) < 0.45
            elif kind in ("swap", "duplicate"):
                assert best > 0.85
            elif kind == "spurious":
                assert best <= 0.1 + 1e-9
    if kind == "drop":
        assert len(dropped) >= len(noisy_images)
        assert len(noisy.box) == len(clean.box) - len(dropped)


def test_detector_rates(clean):
    d = Detector()
    p = simulate_detections(clean, ["a", "b", "c"], d, seed=4)
    assert np.all((p.confidence > 0) & (p.confidence < 1))
    # recall at IoU 0.5 of same-class predictions ~ 1 - p_miss - p_confuse - a few jitter misses
    found = 0
    for s in range(len(clean.offsets) - 1):
        P = range(p.offsets[s], p.offsets[s + 1])
        for g in range(clean.offsets[s], clean.offsets[s + 1]):
            found += any(p.label[i] == clean.label[g] and _iou(p.box[i], clean.box[g]) >= 0.5 for i in P)
    recall = found / len(clean.box)
    assert 1 - d.p_miss - d.p_confuse - 0.08 < recall < 1 - d.p_miss - d.p_confuse + 0.02
