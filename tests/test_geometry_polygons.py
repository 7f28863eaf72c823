"""geometry.polygons against independent oracles: per-pair shapely computations (union of parts,
intersection area over union area computed as a geometry), fiftyone.utils.iou.compute_ious on
filled Polylines, and closed-form areas. No expected value here was produced by our own code."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.geometry.boxes import box_iou
from iou_audit.geometry.polygons import (
    batched_polygon_iou,
    polygon_iou,
    rotated_box_to_polygon,
    to_geometries,
)


def _star(rng, cx, cy, r, k):
    """A simple (valid, usually non-convex) star-shaped ring around (cx, cy): k >= 4 and jittered
    angles keep every angular gap below pi, which keeps the ring from crossing itself."""
    angles = (np.arange(k) + rng.uniform(0, 0.9, k)) * (2 * np.pi / k)
    radii = rng.uniform(0.3 * r, r, k)
    return np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]


def _random_polygons(rng, n, multipart_fraction=0.3):
    polys = []
    for _ in range(n):
        cx, cy = rng.uniform(0.2, 0.8, 2)
        rings = [_star(rng, cx, cy, rng.uniform(0.05, 0.2), rng.integers(4, 12))]
        if rng.random() < multipart_fraction:  # a second part, possibly overlapping the first
            rings.append(_star(rng, cx + rng.uniform(-0.2, 0.2), cy + rng.uniform(-0.2, 0.2),
                               rng.uniform(0.03, 0.1), rng.integers(4, 8)))
        polys.append(rings)
    return polys


def _shapely_oracle(polys1, polys2, crowd=None):
    """Direct per-pair shapely: object = unary_union of its ring polygons."""
    def geom(rings):
        return shapely.unary_union([shapely.Polygon(r) for r in rings])

    g1, g2 = [geom(p) for p in polys1], [geom(p) for p in polys2]
    out = np.zeros((len(g1), len(g2)))
    for i, a in enumerate(g1):
        for j, b in enumerate(g2):
            inter = a.intersection(b).area
            denom = a.area if crowd is not None and crowd[j] else a.union(b).area
            out[i, j] = inter / denom if denom > 0 else 0.0
    return out


@pytest.mark.parametrize("seed", range(3))
def test_matches_direct_shapely_on_random_polygons(seed):
    rng = np.random.default_rng(seed)
    p1, p2 = _random_polygons(rng, 40), _random_polygons(rng, 35)
    crowd = rng.random(35) < 0.3
    np.testing.assert_allclose(polygon_iou(p1, p2), _shapely_oracle(p1, p2), rtol=0, atol=1e-9)
    np.testing.assert_allclose(polygon_iou(p1, p2, crowd=crowd),
                               _shapely_oracle(p1, p2, crowd), rtol=0, atol=1e-9)
    assert (polygon_iou(p1, p2) > 0).sum() > 20  # the random sets really overlap


def test_matches_fiftyone_compute_ious_on_filled_polylines():
    import fiftyone as fo
    from fiftyone.utils.iou import compute_ious

    rng = np.random.default_rng(5)
    # valid rings only: on invalid ones FiftyOne's buffer(0) repair differs by design (see below);
    # multi-part objects (parts may overlap) are unioned by both
    p1, p2 = _random_polygons(rng, 30), _random_polygons(rng, 25)
    def lines(polys, crowd=None):
        return [fo.Polyline(label="a", points=[r.tolist() for r in p], closed=True, filled=True,
                            iscrowd=bool(crowd[k]) if crowd is not None else False)
                for k, p in enumerate(polys)]

    crowd = rng.random(25) < 0.3
    preds, gts = lines(p1), lines(p2, crowd)
    expected = compute_ious(preds, gts)
    assert (expected > 0).sum() > 20 and len({len(p) for p in p1 + p2}) == 2
    np.testing.assert_allclose(polygon_iou(p1, p2), expected, rtol=0, atol=1e-9)
    expected_crowd = compute_ious(preds, gts, iscrowd=lambda g: g["iscrowd"])
    np.testing.assert_allclose(polygon_iou(p1, p2, crowd=crowd), expected_crowd, atol=1e-9)


def test_bowtie_is_repaired_keeping_both_lobes():
    square = [[[0, 0], [1, 0], [1, 1], [0, 1]]]
    bowtie = [[[0, 0], [1, 1], [1, 0], [0, 1]]]  # two triangles of area 1/4 each
    geoms, repaired = to_geometries([square, bowtie])
    assert repaired.tolist() == [False, True]
    assert geoms[1].area == pytest.approx(0.5) and geoms[1].is_valid
    assert polygon_iou([bowtie], [square])[0, 0] == pytest.approx(0.5)
    # buffer(0) (FiftyOne's repair) keeps a single lobe: the pitfall this module avoids
    assert shapely.Polygon(bowtie[0]).buffer(0).area == pytest.approx(0.25)


def test_overlapping_parts_are_unioned_and_reported():
    two = [[[0, 0], [2, 0], [2, 2], [0, 2]], [[1, 1], [3, 1], [3, 3], [1, 3]]]
    apart = [[[0, 0], [1, 0], [1, 1], [0, 1]], [[2, 2], [3, 2], [3, 3], [2, 3]]]
    geoms, repaired = to_geometries([two, apart])
    assert geoms[0].area == pytest.approx(7.0) and repaired[0]  # 4 + 4 - 1
    assert geoms[1].area == pytest.approx(2.0) and not repaired[1]
    big = [[[0, 0], [3, 0], [3, 3], [0, 3]]]
    np.testing.assert_allclose(polygon_iou([two, apart], [big]), [[7 / 9], [2 / 9]])


def test_unusable_rings_are_dropped_and_reported():
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    polys = [[square[:2]], [[[0, 0], [np.nan, 1], [1, 1]]], [[[0, 0], [1, 1], [2, 2]]], [],
             None, [square, square[:2]]]
    geoms, repaired = to_geometries(polys)
    assert repaired.tolist() == [True, True, True, False, False, True]
    assert [g.area for g in geoms] == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    ious = polygon_iou(polys, [[square]])
    assert not np.isnan(ious).any()
    np.testing.assert_array_equal(ious[:, 0], [0, 0, 0, 0, 0, 1])


def test_bad_ring_shape_names_the_polygon():
    with pytest.raises(ValueError, match="polygon 1, ring 0"):
        to_geometries([[[[0, 0], [1, 0], [1, 1]]], [[[0, 0, 0], [1, 0, 0], [1, 1, 0]]]])
    with pytest.raises(ValueError, match="crowd"):
        polygon_iou([None], [None], crowd=[True, False])


def test_geometries_pass_through_and_numpy_rings():
    ring = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    geoms, _ = to_geometries([[ring], ring])  # list of rings, or one (K, 2) array
    assert geoms[0].equals(geoms[1])
    np.testing.assert_allclose(polygon_iou(geoms, [[ring]]), [[1.0], [1.0]])
    assert polygon_iou([], [[ring]]).shape == (0, 1)


def test_rotated_boxes_closed_form():
    # axis-aligned (theta = 0): same as box_iou
    rng = np.random.default_rng(2)
    c, wh = rng.uniform(20, 80, (10, 2)), rng.uniform(5, 30, (10, 2))
    corners = rotated_box_to_polygon(c[:, 0], c[:, 1], wh[:, 0], wh[:, 1], 0.0)
    xyxy = np.c_[c - wh / 2, c + wh / 2]
    np.testing.assert_allclose(polygon_iou([[q] for q in corners], [[q] for q in corners]),
                               box_iou(xyxy, xyxy), atol=1e-12)
    # a square and itself turned by 45 degrees overlap in a regular octagon: IoU = 1 / sqrt(2)
    sq = rotated_box_to_polygon(0, 0, 2, 2, 0.0)
    turned = rotated_box_to_polygon(0, 0, 2, 2, np.pi / 4)
    assert polygon_iou([[sq]], [[turned]])[0, 0] == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    # pixel inputs with frame_size give relative corners
    px = rotated_box_to_polygon(100, 50, 40, 20, 0.3)
    np.testing.assert_allclose(rotated_box_to_polygon(100, 50, 40, 20, 0.3, (400, 200)),
                               px / [400, 200])


angle = st.floats(-np.pi, np.pi)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), angle, st.floats(0.2, 5), st.floats(0.2, 5))
def test_properties_rotation_and_scale_invariance_symmetry(seed, theta, sx, sy):
    rng = np.random.default_rng(seed)
    p1, p2 = _random_polygons(rng, 4, 0.0), _random_polygons(rng, 3, 0.0)
    base = polygon_iou(p1, p2)
    assert ((base >= 0) & (base <= 1)).all()
    np.testing.assert_allclose(polygon_iou(p2, p1), base.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(polygon_iou(p1, p1)), 1.0, atol=1e-12)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    def move(polys, m):
        return [[r @ m.T for r in p] for p in polys]
    np.testing.assert_allclose(polygon_iou(move(p1, rot), move(p2, rot)), base, atol=1e-9)
    scale = np.diag([sx, sy])
    np.testing.assert_allclose(polygon_iou(move(p1, scale), move(p2, scale)), base, atol=1e-9)


def test_batched_equals_per_image():
    rng = np.random.default_rng(9)
    counts1, counts2 = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    counts1[:2] = 0
    o1, o2 = np.r_[0, np.cumsum(counts1)], np.r_[0, np.cumsum(counts2)]
    p1, p2 = _random_polygons(rng, o1[-1]), _random_polygons(rng, o2[-1])
    crowd = rng.random(o2[-1]) < 0.3
    values, po = batched_polygon_iou(p1, o1, p2, o2, crowd2=crowd)
    assert len(values) == po[-1] == (counts1 * counts2).sum()
    for s in range(40):
        ref = _shapely_oracle(p1[o1[s]:o1[s + 1]], p2[o2[s]:o2[s + 1]], crowd[o2[s]:o2[s + 1]])
        np.testing.assert_allclose(values[po[s]:po[s + 1]].reshape(ref.shape), ref, atol=1e-9)
