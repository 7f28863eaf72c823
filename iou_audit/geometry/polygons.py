"""Exact area IoU of polygons and rotated boxes (filled FiftyOne Polylines), via shapely 2.

A *polygon* here is what a filled ``fo.Polyline`` stores in ``points``: a list of rings, each an
(K, 2) array-like of relative ``(x, y)``; several rings are several parts of one object and the
object's area is their union (as FiftyOne's ``compute_ious`` treats them). A ring is closed
implicitly (the first point need not be repeated).

Invalid input is repaired, never fatal, and always reported:
- a self-intersecting ring ("bow-tie") is repaired with ``shapely.make_valid(method="structure")``,
  which keeps both lobes (``buffer(0)``, which FiftyOne uses, silently drops one of them);
- overlapping parts are unioned (``make_valid`` on the multipolygon, same method);
- rings with fewer than 3 points, non-finite coordinates or zero area are dropped.
``to_geometries`` returns which polygons were changed; ``polygon_iou`` takes its output too, so a
caller can report the repairs and still compute once.

Conventions follow ``geometry.boxes``: 0/0 IoU is 0, an empty polygon has IoU 0 with everything,
crowd IoU is intersection over the area of the *first* argument for the flagged columns.
IoU is invariant to scaling x and y independently, so relative coordinates are exact.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from iou_audit.geometry.boxes import batched_pair_rows

_EMPTY = shapely.Polygon()


def _rings_of(poly: object, index: int) -> list[np.ndarray]:
    """The rings of one input polygon as float (K, 2) arrays (validated shape)."""
    if poly is None:
        return []
    if isinstance(poly, np.ndarray) and poly.dtype != object and poly.ndim == 2:
        rings = [poly]  # a single (K, 2) numeric array is one ring
    elif isinstance(poly, (list, tuple, np.ndarray)):
        rings = list(poly)
    else:
        raise ValueError(f"polygon {index}: expected a list of rings, got {type(poly).__name__}")
    out = []
    for r, ring in enumerate(rings):
        a = np.asarray(ring, dtype=np.float64)
        if a.size == 0:
            a = a.reshape(0, 2)
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(
                f"polygon {index}, ring {r}: expected (K, 2) xy points, got shape {a.shape}"
            )
        out.append(a)
    return out


def to_geometries(polys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Build valid shapely geometries from polygons, reporting which ones had to be repaired.

    Args:
        polys: sequence of polygons (list of rings, see module docstring), shapely geometries
            (used as they are when valid) or None (empty).

    Returns:
        ``(geoms, repaired)``: (N,) object array of valid Polygon/MultiPolygon (possibly empty)
        and (N,) bool, True where the input was invalid or had dropped rings.

    Example:
        >>> square = [[[0, 0], [1, 0], [1, 1], [0, 1]]]
        >>> bowtie = [[[0, 0], [1, 1], [1, 0], [0, 1]]]   # self-intersecting: two triangles
        >>> geoms, repaired = to_geometries([square, bowtie, None])
        >>> [round(g.area, 3) for g in geoms], repaired.tolist()
        ([1.0, 0.5, 0.0], [False, True, False])
    """
    n = len(polys)
    geoms = np.full(n, _EMPTY, dtype=object)
    repaired = np.zeros(n, dtype=bool)
    ring_coords, ring_owner, given = [], [], []
    for p, poly in enumerate(polys):
        if isinstance(poly, shapely.Geometry):
            given.append(p)
            geoms[p] = poly
            continue
        for ring in _rings_of(poly, p):
            if len(ring) < 3 or not np.isfinite(ring).all():
                repaired[p] = True  # cannot enclose an area: dropped
                continue
            ring_coords.append(ring)
            ring_owner.append(p)
    if given:
        idx = np.asarray(given)
        bad = idx[~shapely.is_valid(geoms[idx])]
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
        repaired[bad] = True
    if not ring_coords:
        return geoms, repaired

    # One polygon per ring, built in a single vectorized call.
    lengths = np.array([len(r) for r in ring_coords])
    rings = shapely.linearrings(
        np.concatenate(ring_coords), indices=np.repeat(np.arange(len(lengths)), lengths)
    )
    parts = shapely.polygons(rings)
    owner = np.asarray(ring_owner)
    bad = ~shapely.is_valid(parts)
    if bad.any():
        parts[bad] = shapely.make_valid(parts[bad], method="structure", keep_collapsed=False)
        repaired[owner[bad]] = True
    # Repairs may yield MultiPolygons or empties: explode to plain polygons, drop empties.
    flat, where = shapely.get_parts(parts, return_index=True)
    flat_owner = owner[where]
    keep = ~shapely.is_empty(flat)
    flat, flat_owner = flat[keep], flat_owner[keep]
    counts = np.bincount(flat_owner, minlength=n)
    single = counts[flat_owner] == 1
    geoms[flat_owner[single]] = flat[single]
    multi = ~single
    if multi.any():
        owners, group = np.unique(flat_owner[multi], return_inverse=True)
        merged = shapely.multipolygons(flat[multi], indices=group)
        overlapping = ~shapely.is_valid(merged)
        merged[overlapping] = shapely.make_valid(
            merged[overlapping], method="structure", keep_collapsed=False
        )
        repaired[owners[overlapping]] = True
        geoms[owners] = merged
    return geoms, repaired


def _as_geometries(polys: Sequence) -> np.ndarray:
    # geometries from to_geometries pass through (their validity is re-checked, not redone)
    return to_geometries(list(polys))[0]


def _pair_values(g1, g2, i, j, crowd_pairs):
    """IoU (or crowd IoU where ``crowd_pairs``) of the listed pairs, bounds prefiltered."""
    out = np.zeros(len(i), dtype=np.float64)
    b1, b2 = shapely.bounds(g1[i]), shapely.bounds(g2[j])
    # empty geometries have NaN bounds, so the comparison is False and they are skipped
    with np.errstate(invalid="ignore"):
        touch = (
            (np.minimum(b1[:, 2], b2[:, 2]) > np.maximum(b1[:, 0], b2[:, 0]))
            & (np.minimum(b1[:, 3], b2[:, 3]) > np.maximum(b1[:, 1], b2[:, 1]))
        )
    k = np.flatnonzero(touch)
    if len(k) == 0:
        return out
    a, b = g1[i[k]], g2[j[k]]
    inter = shapely.area(shapely.intersection(a, b))
    a1, a2 = shapely.area(a), shapely.area(b)
    denom = np.where(crowd_pairs[k], a1, a1 + a2 - inter)
    vals = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
    out[k] = np.clip(vals, 0.0, 1.0)  # float noise can push inter a hair above the area
    return out


def polygon_iou(
    polys1: Sequence, polys2: Sequence, crowd: np.ndarray | None = None
) -> np.ndarray:
    """Exact area IoU between two lists of polygons (or geometries from ``to_geometries``).

    Args:
        polys1: N polygons (predictions when ``crowd`` is used).
        polys2: M polygons.
        crowd: optional (M,) bool; for those columns the value is ``inter / area(polys1[i])``.

    Returns:
        (N, M) float64 in [0, 1].

    Example:
        >>> a = [[[0, 0], [2, 0], [2, 2], [0, 2]]]
        >>> b = [[[1, 0], [3, 0], [3, 2], [1, 2]]]
        >>> tri = [[[0, 0], [2, 0], [0, 2]]]
        >>> polygon_iou([a], [b, tri]).round(6)
        array([[0.333333, 0.5     ]])
    """
    g1, g2 = _as_geometries(polys1), _as_geometries(polys2)
    n, m = len(g1), len(g2)
    crowd_cols = np.zeros(m, dtype=bool) if crowd is None else np.asarray(crowd, bool).ravel()
    if len(crowd_cols) != m:
        raise ValueError(f"crowd has {len(crowd_cols)} entries for {m} polys2")
    out = np.zeros((n, m), dtype=np.float64)
    if n == 0 or m == 0:
        return out
    # STRtree finds the pairs whose bounds intersect without looping over all N x M pairs
    i, j = shapely.STRtree(g2).query(g1)
    out[i, j] = _pair_values(g1, g2, i, j, crowd_cols[j])
    return out


def batched_polygon_iou(
    polys1: Sequence,
    offsets1: np.ndarray,
    polys2: Sequence,
    offsets2: np.ndarray,
    crowd2: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polygon IoU of every same-image pair, in the batched layout of ``batched_box_iou``.

    Example:
        >>> sq = lambda x: [[[x, 0], [x + 2, 0], [x + 2, 2], [x, 2]]]
        >>> values, pair_offsets = batched_polygon_iou([sq(0), sq(0)], [0, 1, 2],
        ...                                            [sq(1), sq(0), sq(5)], [0, 1, 3])
        >>> values.round(6), pair_offsets
        (array([0.333333, 1.      , 0.      ]), array([0, 1, 3]))
    """
    g1, g2 = _as_geometries(polys1), _as_geometries(polys2)
    pair_offsets, i, j = batched_pair_rows(offsets1, len(g1), offsets2, len(g2))
    crowd_cols = np.zeros(len(g2), dtype=bool) if crowd2 is None else np.asarray(crowd2, bool)
    if len(crowd_cols) != len(g2):
        raise ValueError(f"crowd2 has {len(crowd_cols)} entries for {len(g2)} polys2")
    return _pair_values(g1, g2, i, j, crowd_cols[j]), pair_offsets


def rotated_box_to_polygon(
    cx: np.ndarray | float,
    cy: np.ndarray | float,
    w: np.ndarray | float,
    h: np.ndarray | float,
    theta: np.ndarray | float,
    frame_size: tuple[float, float] | None = None,
) -> np.ndarray:
    """Corners of rotated boxes, so they go through the exact polygon path.

    The box of size ``w x h`` centred at ``(cx, cy)`` is rotated by ``theta`` radians:
    ``x = cx + dx cos(theta) - dy sin(theta)``, ``y = cy + dx sin(theta) + dy cos(theta)``;
    with image y pointing down, positive ``theta`` turns clockwise on screen. Rotate in pixels
    (a rotation in relative coordinates of a non-square image shears the box): give pixel inputs
    and ``frame_size=(width, height)`` to get relative corners back.

    Returns:
        (N, 4, 2) corners (or (4, 2) for scalar inputs); ``[corners]`` is a one-ring polygon.

    Example:
        >>> rotated_box_to_polygon(5, 5, 4, 2, np.pi / 2).round(6)   # 4 wide, turned upright
        array([[6., 3.],
               [6., 7.],
               [4., 7.],
               [4., 3.]])
    """
    arrays = (np.asarray(v, dtype=np.float64) for v in (cx, cy, w, h, theta))
    cx, cy, w, h, theta = np.broadcast_arrays(*arrays)
    scalar = cx.ndim == 0
    cx, cy, w, h, theta = (v.reshape(-1) for v in (cx, cy, w, h, theta))
    dx = np.array([-0.5, 0.5, 0.5, -0.5]) * w[:, None]
    dy = np.array([-0.5, -0.5, 0.5, 0.5]) * h[:, None]
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    corners = np.stack([cx[:, None] + dx * c - dy * s, cy[:, None] + dx * s + dy * c], axis=-1)
    if frame_size is not None:
        corners = corners / np.asarray(frame_size, dtype=np.float64)
    return corners[0] if scalar else corners
