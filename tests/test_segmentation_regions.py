"""Regions of disagreement and the two-map consensus against independent oracles: scipy's
8-connected ``ndimage.label`` (components, their raster order, boxes), per-region pair counting in
Python (most frequent pair, ties to the smallest), and the vote-counting majority on stacked maps."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from iou_audit.audits.segmentation.regions import disagreement_regions, majority_consensus


def _oracle_regions(a, b, min_pixels):
    labels, n = ndimage.label(a != b, structure=np.ones((3, 3), bool))
    h, w = a.shape
    out = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        crop = labels[sl] == i
        if crop.sum() < min_pixels:
            continue
        counts = Counter(zip(a[sl][crop].tolist(), b[sl][crop].tolist()))
        best = max(counts.values())
        pair = min(p for p, c in counts.items() if c == best)
        ys, xs = sl
        out.append(([xs.start / w, ys.start / h, (xs.stop - xs.start) / w, (ys.stop - ys.start) / h],
                    crop, int(crop.sum()), pair))
    return out


@pytest.mark.parametrize("case", ["blocks_uint8", "noise_uint16", "many_values_int64", "ties"])
def test_disagreement_regions_equal_scipy_components_and_pair_counts(case):
    rng = np.random.default_rng(21)
    if case == "blocks_uint8":
        a = np.kron(rng.integers(0, 6, (12, 15)), np.ones((8, 8), int)).astype(np.uint8)
        b = np.where(rng.random(a.shape) < 0.08, rng.integers(0, 6, a.shape), a).astype(np.uint8)
        b[10:40, 20:50] = 3
        min_pixels = 4
    elif case == "noise_uint16":
        a = rng.choice([0, 7, 300, 65535], (60, 70)).astype(np.uint16)
        b = np.where(rng.random(a.shape) < 0.7, a, rng.choice([0, 7, 300], a.shape)).astype(np.uint16)
        min_pixels = 2
    elif case == "many_values_int64":  # thousands of values: the sort-based pair count
        a = rng.integers(0, 3000, (80, 90)).astype(np.int64)
        b = np.where(rng.random(a.shape) < 0.3, a, rng.integers(0, 3000, a.shape))
        min_pixels = 1
    else:  # two pairs with the same count in one region: the smaller pair wins
        a = np.zeros((6, 8), np.uint8)
        b = a.copy()
        b[1, 1:3], b[2, 1:3] = 9, 4
        a[2, 1:3] = 2
        min_pixels = 1
    got = disagreement_regions(a, b, min_pixels)
    want = _oracle_regions(a, b, min_pixels)
    assert len(got) == len(want) > 0
    for g, (box, crop, pixels, pair) in zip(got, want):
        assert g["box"] == box and g["pixels"] == pixels and (g["value_a"], g["value_b"]) == pair
        assert g["mask"].dtype == bool and np.array_equal(g["mask"], crop)


def test_two_map_consensus_equals_vote_counting():
    rng = np.random.default_rng(22)
    a = rng.integers(0, 4, (30, 20)).astype(np.uint8)
    b = rng.integers(0, 4, (30, 20)).astype(np.uint16)
    voted, support = majority_consensus([a, b])
    stack = np.stack([a, b]).astype(np.uint16)
    votes = (stack[:, None] == stack[None, :]).sum(axis=1)  # votes[j]: maps agreeing with map j
    assert voted.dtype == np.uint16 and np.array_equal(voted, a)  # ties go to the first map
    assert np.array_equal(support, votes[0]) and support.dtype == np.int32
