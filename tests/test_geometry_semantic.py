"""iou_audit.geometry.semantic against independent oracles:

- confusion matrices: per-pixel python counting on random batches;
- per-class IoU, mIoU, pixel accuracy, FWIoU: scikit-learn's ``jaccard_score`` / ``accuracy_score``
  and the FCN definitions written out per class;
- Krippendorff's alpha: the definition (pairable values per unit, all pairs of values for the
  expected disagreement), for two and three coders;
- FiftyOne's own ``evaluate_segmentations``: its per-image confusion matrices (rebuilt from the
  per-image ``matches`` its results hold: ytrue, ypred, weights, ytrue_ids) equal ours, masks both in the database and as mask_path PNGs on disk.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, jaccard_score

from iou_audit.geometry.semantic import (
    class_indices,
    class_iou,
    coincidence_matrix,
    confusion_matrices,
    frequency_weighted_iou,
    mean_iou,
    nominal_alpha,
    pixel_accuracy,
    pixel_alpha,
    value_confusion_matrix,
)


def _random_maps(rng, n, h, w, k):
    a = rng.integers(0, k, size=(n, h, w))
    b = np.where(rng.random((n, h, w)) < 0.6, a, rng.integers(0, k, size=(n, h, w)))
    return a, b


def test_confusion_matrices_equal_pixel_counting():
    rng = np.random.default_rng(0)
    a, b = _random_maps(rng, 7, 9, 11, 5)
    got = confusion_matrices(a, b, 5)
    assert got.shape == (7, 5, 5)
    for n in range(7):
        want = np.zeros((5, 5), int)
        for x, y in zip(a[n].ravel().tolist(), b[n].ravel().tolist()):
            want[x, y] += 1
        assert (got[n] == want).all()
        assert (confusion_matrices(a[n], b[n], 5) == want).all()


def test_scores_equal_sklearn_and_the_definitions():
    rng = np.random.default_rng(1)
    a, b = _random_maps(rng, 20, 16, 12, 6)
    a[3] = np.where(a[3] == 5, 0, a[3])  # class 5 absent from image 3 in both maps
    b[3] = np.where(b[3] == 5, 0, b[3])
    conf = confusion_matrices(a, b, 6)
    iou, miou, fw, acc = class_iou(conf), mean_iou(conf), frequency_weighted_iou(conf), pixel_accuracy(conf)
    for n in range(20):
        present = sorted(set(a[n].ravel()) | set(b[n].ravel()))
        want = jaccard_score(a[n].ravel(), b[n].ravel(), labels=present, average=None)
        assert np.allclose(iou[n][present], want)
        assert np.isnan(iou[n][[c for c in range(6) if c not in present]]).all()
        assert miou[n] == pytest.approx(want.mean())
        assert acc[n] == pytest.approx(accuracy_score(a[n].ravel(), b[n].ravel()))
        freq = np.array([(a[n] == c).mean() for c in present])
        assert fw[n] == pytest.approx(float((freq * want).sum()))
    assert 5 not in set(a[3].ravel()) | set(b[3].ravel()) and np.isnan(iou[3, 5])
    assert np.isnan(mean_iou(np.zeros((3, 3)))) and np.isnan(pixel_accuracy(np.zeros((3, 3))))


def _alpha_by_definition(coders: list[np.ndarray]) -> float:
    """Krippendorff's nominal alpha from its definition: units = pixels, every coder values every unit."""
    values = np.stack([c.ravel() for c in coders], axis=1)  # (units, m)
    m = values.shape[1]
    observed = 0.0
    for unit in values.tolist():
        observed += sum(unit[i] != unit[j] for i in range(m) for j in range(m) if i != j) / (m - 1)
    pooled = values.ravel().tolist()
    n = len(pooled)
    counts = {}
    for v in pooled:
        counts[v] = counts.get(v, 0) + 1
    expected = sum(counts[c] * counts[k] for c in counts for k in counts if c != k)
    return 1.0 - (n - 1) * observed / expected


@pytest.mark.parametrize("m", [2, 3])
def test_alpha_equals_definition(m):
    rng = np.random.default_rng(2 + m)
    base = rng.integers(0, 4, size=(6, 7))
    coders = [np.where(rng.random(base.shape) < 0.7, base, rng.integers(0, 4, size=base.shape)) for _ in range(m)]
    pairs = [confusion_matrices(coders[i], coders[j], 4) for i, j in combinations(range(m), 2)]
    got = nominal_alpha(coincidence_matrix(pairs, m))
    assert got == pytest.approx(_alpha_by_definition(coders), abs=1e-12)
    if m == 2:
        assert pixel_alpha(pairs[0]) == pytest.approx(got)
        assert pixel_alpha(np.stack([pairs[0], 0 * pairs[0]])) == pytest.approx(got)


def test_alpha_perfect_and_degenerate():
    a = np.array([[0, 1], [2, 1]])
    assert pixel_alpha(confusion_matrices(a, a, 3)) == pytest.approx(1.0)
    assert np.isnan(pixel_alpha(confusion_matrices(np.zeros((2, 2), int), np.zeros((2, 2), int), 3)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrices(np.zeros((2, 3), int), np.zeros((3, 2), int), 2)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        confusion_matrices(np.array([[0, 2]]), np.array([[0, 1]]), 2)
    with pytest.raises(ValueError, match=r"seg_b has pixel values not among the 2 class values: \[9\]"):
        class_indices(np.array([[0, 9]]), [0, 1], name="seg_b")
    with pytest.raises(ValueError, match="integer"):
        confusion_matrices(np.zeros((2, 2)), np.zeros((2, 2)), 2)


def test_fiftyone_evaluate_segmentations_per_image_confusion(dataset, tmp_path):
    import cv2
    import fiftyone as fo

    rng = np.random.default_rng(4)
    values = [0, 3, 7, 12]
    samples, pairs = [], []
    for i in range(6):
        a = rng.choice(values, size=(24, 32)).astype(np.uint8)
        b = np.where(rng.random(a.shape) < 0.5, a, rng.choice(values[:3], size=a.shape)).astype(np.uint8)
        if i % 2:  # every other prediction as a PNG on disk
            path = str(tmp_path / f"pred{i}.png")
            cv2.imwrite(path, b)
            pred = fo.Segmentation(mask_path=path)
        else:
            pred = fo.Segmentation(mask=b)
        samples.append(fo.Sample(filepath=str(tmp_path / f"img{i}.png"), gt=fo.Segmentation(mask=a), pred=pred))
        pairs.append((a, b))
    dataset.add_samples(samples)
    res = dataset.evaluate_segmentations("pred", gt_field="gt", mask_targets={v: str(v) for v in values})
    gt_ids = [s.gt.id for s in dataset.select_fields("gt")]
    fo_conf = {gid: np.zeros((4, 4), int) for gid in gt_ids}
    for gt_label, pred_label, count, gid in zip(res.ytrue, res.ypred, res.weights, res.ytrue_ids):
        fo_conf[gid][values.index(int(gt_label)), values.index(int(pred_label))] += count
    a = np.stack([class_indices(p[0], values) for p in pairs])
    b = np.stack([class_indices(p[1], values) for p in pairs])
    ours = confusion_matrices(a, b, 4)
    for n, gid in enumerate(gt_ids):
        assert (ours[n] == fo_conf[gid]).all()
    assert (ours.sum(axis=0) == res.pixel_confusion_matrix).all()


def test_semantic_geometry_does_not_import_fiftyone():
    import subprocess
    import sys

    code = ("import sys, iou_audit; iou_audit.confusion_matrices; iou_audit.pixel_alpha; "
            "import iou_audit.geometry.semantic; bad = [m for m in ('fiftyone', 'pandas') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64, bool])
def test_value_confusion_matrix_equals_pixel_counting(dtype):
    rng = np.random.default_rng(11)
    pool = {np.uint8: [0, 3, 200, 255], np.uint16: [0, 7, 1203, 65535], np.int64: [0, 0xff6d04, 5], bool: [0, 1]}[dtype]
    a = rng.choice(pool, size=(13, 17)).astype(dtype)
    b = np.where(rng.random(a.shape) < 0.5, a, rng.choice(pool[:-1], size=a.shape)).astype(dtype)
    values, got = value_confusion_matrix(a, b)
    assert values.tolist() == sorted(set(a.ravel().tolist()) | set(b.ravel().tolist()))
    want = np.zeros_like(got)
    pos = {v: i for i, v in enumerate(values.tolist())}
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        want[pos[x], pos[y]] += 1
    assert (got == want).all()


@pytest.mark.parametrize("pool_a, pool_b, dtypes", [
    ([0, 7, 120, 300], [0, 7, 120], (np.uint16, np.uint16)),   # small uint16: the direct table
    ([1, 4], [0, 2, 9, 250], (np.uint8, np.uint8)),            # second map's maximum larger
    ([3, 5], [3, 5, 40000], (np.uint8, np.uint16)),            # mixed dtypes, lookup-table path
    ([2], [2], (np.uint8, np.uint8)),                          # one value
])
def test_value_confusion_matrix_paths_equal_pixel_counting(pool_a, pool_b, dtypes):
    rng = np.random.default_rng(12)
    a = rng.choice(pool_a, size=(19, 23)).astype(dtypes[0])
    b = rng.choice(pool_b, size=(19, 23)).astype(dtypes[1])
    values, got = value_confusion_matrix(a, b)
    assert values.tolist() == sorted(set(a.ravel().tolist()) | set(b.ravel().tolist()))
    pos = {v: i for i, v in enumerate(values.tolist())}
    want = np.zeros((len(values), len(values)), np.int64)
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        want[pos[x], pos[y]] += 1
    assert got.dtype == np.int64 and (got == want).all()


def test_value_confusion_matrix_of_empty_maps():
    values, got = value_confusion_matrix(np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8))
    assert values.tolist() == [] and got.shape == (0, 0)


@pytest.mark.parametrize("shape", [(40, 64), (37, 67), (5, 3)])
def test_value_confusion_matrix_of_blocky_uint8_maps_equals_pixel_counting(shape):
    # runs of one value (whole 8-pixel words), block edges inside words, noise, and a ragged tail
    rng = np.random.default_rng(13)
    a = np.kron(rng.integers(0, 6, (8, 12)), np.ones((8, 8), int))[:shape[0], :shape[1]].astype(np.uint8)
    b = np.where(rng.random(a.shape) < 0.05, rng.integers(0, 9, a.shape), a).astype(np.uint8)
    b[:, 3:5] = 7  # edges that cut words
    for x, y in ((a, b), (a[:, 1:], b[:, 1:])):  # the maps, and views that are not contiguous
        values, got = value_confusion_matrix(x, y)
        assert values.tolist() == sorted(set(x.ravel().tolist()) | set(y.ravel().tolist()))
        pos = {v: i for i, v in enumerate(values.tolist())}
        want = np.zeros_like(got)
        for u, v in zip(x.ravel().tolist(), y.ravel().tolist()):
            want[pos[u], pos[v]] += 1
        assert (got == want).all()
