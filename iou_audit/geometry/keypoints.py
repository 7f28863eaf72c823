"""Object keypoint similarity (OKS), COCO's overlap measure for keypoints, and its pieces.

OKS between a prediction ``d`` and a ground truth ``g`` with K keypoints (pycocotools
``COCOeval.computeOks``, mirrored operation by operation):

    e_k = (dx_k**2 + dy_k**2) / (2 * sigma_k)**2 / (area_g + eps) / 2
    OKS = mean over the labeled keypoints of g (visibility > 0) of exp(-e_k)

with ``eps = np.spacing(1)``. When ``g`` has no labeled keypoint, COCO's rule: ``dx_k``, ``dy_k``
are the distances from the predicted point to the box that extends g's box by its own width and
height on every side (0 inside it), and the mean is over all K keypoints.

Conventions (pinned; every function here follows them):
- points are ``(x, y)`` in **pixels** (OKS is not invariant to stretching x and y differently, so
  relative coordinates must be scaled by the image's width and height first); shape (L, K, 2);
- visibility is COCO's flag per keypoint: 0 not labeled, 1 labeled but occluded, 2 visible; a
  ground-truth point counts when its flag is > 0 **and** its coordinates are finite (FiftyOne
  stores unlabeled points as NaN);
- a predicted point that is NaN (FiftyOne's "not predicted") contributes similarity 0; COCO files
  never contain one, so this only extends COCO's formula;
- areas are in pixels squared (COCO: the ground truth's segment area; for CrowdPose, which has
  none, 0.53 x the box area, :data:`CROWDPOSE_AREA_FACTOR`); boxes are ``xyxy`` pixels and are
  used only for ground truths without a labeled keypoint (without a box such a ground truth has
  OKS 0: there is nothing to compare).

Batched layout as in :mod:`iou_audit.geometry.boxes` (docs/ARCHITECTURE.md): rows of many images
flattened with ``offsets``; the result is ``(values, pair_offsets)``, image ``s``'s (n1_s, n2_s)
block being ``values[pair_offsets[s]:pair_offsets[s+1]].reshape(n1_s, n2_s)``.
"""
from __future__ import annotations

import numba
import numpy as np

#: COCO's 17 person keypoint sigmas (pycocotools ``Params.kpt_oks_sigmas``), in COCO's order:
#: nose, left/right eye, left/right ear, shoulders, elbows, wrists, hips, knees, ankles.
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0
#: COCO's left/right keypoint pairs (0-based): eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: CrowdPose's 14 sigmas (xtcocotools / faster-coco-eval), order: left/right shoulder, elbow,
#: wrist, hip, knee, ankle, then head, neck.
CROWDPOSE_SIGMAS = np.array([0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79]) / 10.0
#: CrowdPose's left/right pairs (0-based).
CROWDPOSE_FLIP_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
#: CrowdPose has no segment areas; xtcocotools (``use_area=False``) uses 0.53 x the box area.
CROWDPOSE_AREA_FACTOR = 0.53


def resolve_sigmas(sigmas, num_keypoints: int) -> np.ndarray:
    """The (K,) float64 sigmas to use: COCO's when ``sigmas`` is None, else ``sigmas`` checked.

    Example:
        >>> resolve_sigmas(None, 17)[:2].round(6).tolist()
        [0.026, 0.025]
        >>> resolve_sigmas([0.1, 0.2], 2).tolist()
        [0.1, 0.2]
    """
    k = int(num_keypoints)
    if sigmas is None:
        if k != len(COCO_SIGMAS):
            raise ValueError(
                f"keypoints have {k} points per object; COCO's default sigmas are for 17 (pass "
                f"sigmas=, e.g. geometry.keypoints.CROWDPOSE_SIGMAS for CrowdPose's 14)"
            )
        return COCO_SIGMAS.copy()
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if len(s) != k:
        raise ValueError(f"sigmas has {len(s)} values for {k} keypoints per object")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"sigmas must be finite and positive, got {s.tolist()}")
    return s


def check_flip_pairs(flip_pairs, num_keypoints: int) -> np.ndarray:
    """(P, 2) int64 left/right index pairs, checked to be distinct indices in [0, K).

    Example:
        >>> check_flip_pairs(((0, 1), (2, 3)), 4).tolist()
        [[0, 1], [2, 3]]
    """
    p = np.asarray(flip_pairs, dtype=np.int64).reshape(-1, 2)
    flat = p.reshape(-1)
    if len(flat) and ((flat < 0).any() or (flat >= num_keypoints).any() or len(np.unique(flat)) != len(flat)):
        raise ValueError(f"flip_pairs must be distinct keypoint indices in [0, {num_keypoints}), got {p.tolist()}")
    return p


_SIDES = (("left", "right"), ("l_", "r_"))


def flip_pairs_from_names(names) -> tuple[tuple[int, int], ...]:
    """Left/right pairs of a skeleton from its keypoint names (``left_knee`` <-> ``right_knee``,
    any case, ``left``/``right`` anywhere in the name, or an ``l_``/``r_`` prefix).

    Example:
        >>> flip_pairs_from_names(["nose", "left_eye", "right_eye", "Left Knee", "Right Knee", "l_ear", "r_ear"])
        ((1, 2), (3, 4), (5, 6))
    """
    lower = [str(n).lower() for n in names]
    index = {n: i for i, n in enumerate(lower)}
    pairs = []
    for i, n in enumerate(lower):
        for left, right in _SIDES:
            other = None
            if left == "l_" and n.startswith("l_"):
                other = "r_" + n[2:]
            elif left == "left" and "left" in n:
                other = n.replace("left", "right")
            if other is not None and other in index:
                pairs.append((i, index[other]))
                break
    return tuple(pairs)


def flip_order(flip_pairs, num_keypoints: int) -> np.ndarray:
    """(K,) permutation that swaps every left/right pair (the mirror image's keypoint order).

    Example:
        >>> flip_order(((0, 1),), 3).tolist()
        [1, 0, 2]
    """
    p = check_flip_pairs(flip_pairs, num_keypoints)
    order = np.arange(num_keypoints)
    order[p[:, 0]], order[p[:, 1]] = p[:, 1], p[:, 0]
    return order


def extent_boxes(points: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
    """(L, 4) ``xyxy`` extent of each object's points (NaN row when it has none).

    With ``visibility``, only points with a flag > 0 count; without, every finite point (what
    pycocotools' ``loadRes`` does to give a predicted skeleton its box and area).

    Example:
        >>> pts = np.array([[[1., 2.], [4., 6.], [np.nan, np.nan]]])
        >>> extent_boxes(pts).tolist()
        [[1.0, 2.0, 4.0, 6.0]]
        >>> extent_boxes(pts, np.array([[2, 0, 0]])).tolist()
        [[1.0, 2.0, 1.0, 2.0]]
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3:
        p = p.reshape(len(p), -1, 2) if p.size else np.zeros((len(p), 0, 2))
    ok = np.isfinite(p).all(axis=2)
    if visibility is not None:
        ok &= np.asarray(visibility).reshape(ok.shape) > 0
    out = np.full((len(p), 4), np.nan)
    has = ok.any(axis=1)
    if has.any():
        x = np.where(ok, p[..., 0], np.nan)[has]
        y = np.where(ok, p[..., 1], np.nan)[has]
        out[has] = np.stack([np.nanmin(x, 1), np.nanmin(y, 1), np.nanmax(x, 1), np.nanmax(y, 1)], axis=1)
    return out


def box_areas(boxes: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """(L,) ``factor`` x width x height of ``xyxy`` boxes (NaN for a NaN box).

    ``factor=CROWDPOSE_AREA_FACTOR`` gives CrowdPose's OKS area.

    Example:
        >>> box_areas(np.array([[0, 0, 10, 20]]), factor=0.53).tolist()
        [106.0]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (b[:, 3] - b[:, 1]) * (b[:, 2] - b[:, 0]) * float(factor)


@numba.njit(cache=True, nogil=True)
def _mean_exp(terms, n):  # pragma: no cover - compiled
    # numpy's pairwise sum as np.sum does it on a short contiguous array (8 accumulators from
    # n >= 8, then the remainder), so the mean matches pycocotools' np.sum(...) / n closely
    if n < 8:
        acc = 0.0
        for i in range(n):
            acc += terms[i]
        return acc / n
    r0, r1, r2, r3 = terms[0], terms[1], terms[2], terms[3]
    r4, r5, r6, r7 = terms[4], terms[5], terms[6], terms[7]
    i = 8
    while i < n - (n % 8):
        r0 += terms[i]
        r1 += terms[i + 1]
        r2 += terms[i + 2]
        r3 += terms[i + 3]
        r4 += terms[i + 4]
        r5 += terms[i + 5]
        r6 += terms[i + 6]
        r7 += terms[i + 7]
        i += 8
    acc = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        acc += terms[i]
        i += 1
    return acc / n


@numba.njit(cache=True, nogil=True)
def _oks_kernel(p1, off1, p2, labeled2, area2, box2, off2, variances, pair_offsets, out):  # pragma: no cover
    n_k = p1.shape[1]
    eps = np.spacing(1.0)
    terms = np.empty(n_k)
    for s in range(len(off1) - 1):
        n2 = off2[s + 1] - off2[s]
        base = pair_offsets[s]
        for j in range(off2[s], off2[s + 1]):
            n_lab = 0
            for k in range(n_k):
                if labeled2[j, k]:
                    n_lab += 1
            denom = area2[j] + eps
            boxed = True
            for c in range(4):
                if not np.isfinite(box2[j, c]):
                    boxed = False
            if n_lab == 0 and not boxed:  # nothing to compare with: OKS 0
                for i in range(off1[s], off1[s + 1]):
                    out[base + (i - off1[s]) * n2 + (j - off2[s])] = 0.0
                continue
            # COCO's rule without labeled keypoints: distance to the box grown by its size
            bw = box2[j, 2] - box2[j, 0]
            bh = box2[j, 3] - box2[j, 1]
            x0 = box2[j, 0] - bw
            x1 = box2[j, 2] + bw
            y0 = box2[j, 1] - bh
            y1 = box2[j, 3] + bh
            for i in range(off1[s], off1[s + 1]):
                n = 0
                for k in range(n_k):
                    xd = p1[i, k, 0]
                    yd = p1[i, k, 1]
                    if n_lab > 0 and not labeled2[j, k]:
                        continue
                    if not (xd == xd and yd == yd):  # a NaN predicted point (not predicted): 0
                        terms[n] = 0.0
                        n += 1
                        continue
                    if n_lab > 0:
                        dx = xd - p2[j, k, 0]
                        dy = yd - p2[j, k, 1]
                    else:
                        dx = max(0.0, x0 - xd) + max(0.0, xd - x1)
                        dy = max(0.0, y0 - yd) + max(0.0, yd - y1)
                    e = (dx * dx + dy * dy) / variances[k] / denom / 2.0
                    terms[n] = np.exp(-e)
                    n += 1
                out[base + (i - off1[s]) * n2 + (j - off2[s])] = _mean_exp(terms, n) if n > 0 else 0.0


def _points(points, name: str, k: int | None = None) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 2 and p.shape[0] == 0:
        p = p.reshape(0, 0 if k is None else k, 2)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"{name} must have shape (L, K, 2) (pixel x, y per keypoint), got {p.shape}")
    if k is not None and p.shape[1] != k and len(p):
        raise ValueError(f"{name} has {p.shape[1]} keypoints per object, the other side {k}")
    return np.ascontiguousarray(p)


def _offsets(offsets, n_rows: int, name: str) -> np.ndarray:
    off = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
    if len(off) == 0 or off[0] != 0 or off[-1] != n_rows or np.any(np.diff(off) < 0):
        raise ValueError(f"{name} must be non-decreasing, start at 0 and end at the number of rows ({n_rows}); "
                         f"got {off[:3].tolist()} ... {off[-3:].tolist()}")
    return off


def labeled_mask(points: np.ndarray, visibility: np.ndarray | None) -> np.ndarray:
    """(L, K) bool: keypoints that count as labeled (flag > 0 and finite coordinates).

    Without ``visibility`` every finite point counts (FiftyOne keypoints without ``visible``).

    Example:
        >>> labeled_mask(np.array([[[1., 1.], [np.nan, np.nan], [2., 2.]]]), np.array([[2, 2, 0]])).tolist()
        [[True, False, False]]
    """
    p = np.asarray(points, dtype=np.float64)
    ok = np.isfinite(p).all(axis=2)
    if visibility is not None:
        v = np.asarray(visibility, dtype=np.float64)
        if v.shape != ok.shape:
            raise ValueError(f"visibility has shape {v.shape} for points of shape {p.shape}")
        with np.errstate(invalid="ignore"):
            ok &= v > 0
    return ok


def batched_oks(
    points1: np.ndarray,
    offsets1: np.ndarray,
    points2: np.ndarray,
    offsets2: np.ndarray,
    areas2: np.ndarray,
    visibility2: np.ndarray | None = None,
    boxes2: np.ndarray | None = None,
    sigmas=None,
) -> tuple[np.ndarray, np.ndarray]:
    """OKS of every same-image pair between predictions (side 1) and ground truths (side 2).

    Args:
        points1: (L1, K, 2) predicted keypoints, pixels (NaN = not predicted).
        offsets1, offsets2: (S+1,) per-image row offsets.
        points2: (L2, K, 2) ground-truth keypoints, pixels.
        areas2: (L2,) ground-truth areas, pixels squared (finite, >= 0).
        visibility2: (L2, K) COCO flags (None: every finite point is labeled).
        boxes2: (L2, 4) ``xyxy`` pixel boxes, used for ground truths without a labeled
            keypoint (COCO's rule); one with neither a labeled keypoint nor a finite box (or
            ``boxes2=None``) has OKS 0 with every prediction.
        sigmas: (K,) per-keypoint sigmas; None = :data:`COCO_SIGMAS` (K must be 17).

    Returns:
        ``(values, pair_offsets)``; values in [0, 1].

    Example: two images; in the first, a prediction 1 px off on both points of a 100 px^2 object:
        >>> p1 = np.array([[[11., 10.], [20., 21.]], [[0., 0.], [5., 5.]]])
        >>> p2 = np.array([[[10., 10.], [20., 20.]], [[0., 0.], [5., 5.]]])
        >>> v, po = batched_oks(p1, [0, 1, 2], p2, [0, 1, 2], [100., 100.], sigmas=[0.1, 0.1])
        >>> v.round(6).tolist(), po.tolist()  # exp(-1 / (0.04 * 100 * 2)) = 0.882497
        ([0.882497, 1.0], [0, 1, 2])
    """
    p2 = _points(points2, "points2")
    p1 = _points(points1, "points1", p2.shape[1] if len(p2) else None)
    k = p1.shape[1] if len(p1) else p2.shape[1]
    off1 = _offsets(offsets1, len(p1), "offsets1")
    off2 = _offsets(offsets2, len(p2), "offsets2")
    if len(off1) != len(off2):
        raise ValueError(f"offsets1 has {len(off1) - 1} images but offsets2 has {len(off2) - 1}")
    pair_offsets = np.zeros(len(off1), dtype=np.int64)
    np.cumsum(np.diff(off1) * np.diff(off2), out=pair_offsets[1:])
    values = np.zeros(pair_offsets[-1], dtype=np.float64)
    if len(p1) == 0 or len(p2) == 0:
        return values, pair_offsets
    s = resolve_sigmas(sigmas, k)
    labeled = np.ascontiguousarray(labeled_mask(p2, visibility2))
    areas = np.ascontiguousarray(areas2, dtype=np.float64).reshape(-1)
    if len(areas) != len(p2):
        raise ValueError(f"areas2 has {len(areas)} values for {len(p2)} ground truths")
    bad = np.flatnonzero(~(np.isfinite(areas) & (areas >= 0)))
    if len(bad):
        raise ValueError(f"areas2 must be finite and >= 0 (pixels squared); rows {bad[:5].tolist()} have "
                         f"{areas[bad[:5]].tolist()}")
    if boxes2 is None:
        boxes = np.full((len(p2), 4), np.nan)
    else:
        boxes = np.ascontiguousarray(boxes2, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != len(p2):
            raise ValueError(f"boxes2 has {len(boxes)} rows for {len(p2)} ground truths")
    variances = (s * 2) ** 2
    _oks_kernel(p1, off1, p2, labeled, areas, boxes, off2, variances, pair_offsets, values)
    return values, pair_offsets


def oks(
    points1: np.ndarray,
    points2: np.ndarray,
    areas2: np.ndarray,
    visibility2: np.ndarray | None = None,
    boxes2: np.ndarray | None = None,
    sigmas=None,
) -> np.ndarray:
    """(N, M) OKS between one image's predictions (rows) and ground truths (columns).

    The kernel of :func:`batched_oks` on one image (same arguments without offsets).

    Example: COCO's 17 sigmas; the prediction equals the ground truth except the nose (sigma
    0.026), 2 px off on an object of area 400: exp(-4 / 0.052**2 / 400 / 2) on the nose,
    1 on the other 16:
        >>> gt = np.tile(np.arange(17.0)[:, None], (1, 2))[None] * 10
        >>> pred = gt.copy(); pred[0, 0, 0] += 2
        >>> round(float(oks(pred, gt, [400.0])[0, 0]), 6), round(float(16 + np.exp(-4 / 0.052**2 / 800)) / 17, 6)
        (0.950434, 0.950434)

        No labeled keypoint on the ground truth: distance to its box grown by its size on each
        side, so a prediction anywhere within [-10, 20] x [-10, 20] of box [0, 0, 10, 10] has OKS 1:
        >>> oks(np.full((1, 2, 2), 15.0), np.zeros((1, 2, 2)), [100.0], np.zeros((1, 2)),
        ...     boxes2=[[0, 0, 10, 10]], sigmas=[0.1, 0.1]).tolist()
        [[1.0]]
    """
    p1 = np.asarray(points1, dtype=np.float64)
    p2 = np.asarray(points2, dtype=np.float64)
    values, _ = batched_oks(p1, [0, len(p1)], p2, [0, len(p2)], areas2, visibility2, boxes2, sigmas)
    return values.reshape(len(p1), len(p2))


def keypoint_similarity(
    points1: np.ndarray,
    points2: np.ndarray,
    areas: np.ndarray,
    labeled: np.ndarray,
    sigmas=None,
) -> np.ndarray:
    """(P, K) per-keypoint similarity ``exp(-e_k)`` of P paired objects (NaN where not labeled).

    The terms OKS averages: for a matched pair, which keypoints agree and which do not.
    ``labeled`` (P, K) marks the keypoints to compare (e.g. labeled on both sides); a NaN point
    on side 1 gives 0, as in :func:`oks`.

    Example:
        >>> keypoint_similarity(np.array([[[11., 10.], [0., 0.]]]), np.array([[[10., 10.], [0., 0.]]]),
        ...                     [100.], np.array([[True, False]]), sigmas=[0.1, 0.1]).round(6).tolist()
        [[0.882497, nan]]
    """
    p1 = np.asarray(points1, dtype=np.float64)
    p2 = np.asarray(points2, dtype=np.float64)
    if p1.shape != p2.shape or p1.ndim != 3:
        raise ValueError(f"points1 {p1.shape} and points2 {p2.shape} must both be (P, K, 2)")
    s = resolve_sigmas(sigmas, p1.shape[1])
    a = np.asarray(areas, dtype=np.float64).reshape(-1, 1)
    d2 = ((p1 - p2) ** 2).sum(axis=2)
    with np.errstate(invalid="ignore", over="ignore"):
        sim = np.exp(-(d2 / ((s * 2) ** 2) / (a + np.spacing(1)) / 2))
    sim = np.where(np.isnan(sim), 0.0, sim)
    return np.where(np.asarray(labeled, bool), sim, np.nan)
