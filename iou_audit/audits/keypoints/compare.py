"""Comparisons of paired skeletons shared by the keypoint audits: symmetric OKS between two
fields, and left/right swaps within matched pairs."""
from __future__ import annotations

import numpy as np

from iou_audit.audits.keypoints.objects import KeypointObjects
from iou_audit.geometry.boxes import batched_pair_rows
from iou_audit.geometry.keypoints import batched_oks


def directed_oks(a: KeypointObjects, b: KeypointObjects, sigmas: np.ndarray, a_points: np.ndarray | None = None):
    """COCO's OKS of ``a``'s skeletons (as predictions) against ``b``'s (as ground truth: its
    labeled points, area and box) -> ``(values, pair_offsets)`` in the (a x b) batched layout."""
    pts = a.points if a_points is None else a_points
    return batched_oks(pts, a.table.offsets, b.points, b.table.offsets, b.area, b.labeled.astype(np.float64),
                       b.box, sigmas)


def symmetric_oks(a: KeypointObjects, b: KeypointObjects, sigmas: np.ndarray):
    """Agreement OKS of two annotators: the mean of OKS(a | b) and OKS(b | a), each COCO's OKS
    with the other annotator as ground truth (so neither side's visibility or area is favoured).
    Returns ``(values, pair_offsets)`` in the (a x b) layout.

    Example (one image, one skeleton each, identical: OKS 1 both ways):
        >>> from iou_audit.table.model import LabelTable
        >>> t = LabelTable.empty("a", "keypoints", ["s"])
        >>> objs = KeypointObjects(t.take(np.zeros(0, int)), np.zeros((0, 2, 2)), np.zeros((0, 2), bool),
        ...                        np.zeros(0), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 2)))
        >>> symmetric_oks(objs, objs, np.array([0.1, 0.1]))[1].tolist()
        [0, 0]
    """
    ab, po = directed_oks(a, b, sigmas)
    ba, po_ba = directed_oks(b, a, sigmas)
    return (ab + transpose_pairs(ba, po_ba, b.table.offsets, a.table.offsets)) / 2, po


def transpose_pairs(values: np.ndarray, pair_offsets: np.ndarray, offsets1: np.ndarray, offsets2: np.ndarray):
    """The (2 x 1) batched layout of a (1 x 2) one: every sample's block transposed.

    Example (sample 0: a 2 x 2 block [[a, b], [c, d]] becomes [[a, c], [b, d]]; sample 1: 1 x 2):
        >>> transpose_pairs(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 4, 6]), np.array([0, 2, 3]),
        ...                 np.array([0, 2, 4])).tolist()
        [1, 3, 2, 4, 5, 6]
    """
    n1, n2 = int(offsets1[-1]), int(offsets2[-1])
    po_t, r2, r1 = batched_pair_rows(offsets2, n2, offsets1, n1)  # the transposed layout's rows
    s = np.repeat(np.arange(len(offsets1) - 1), np.diff(po_t))
    width = np.diff(offsets2)[s]
    return values[pair_offsets[s] + (r1 - offsets1[s]) * width + (r2 - offsets2[s])]


def pair_index(pair_offsets, offsets1, offsets2, sample_index1, rows1, rows2) -> np.ndarray:
    """Positions in a batched ``values`` array of the pairs (rows1[i], rows2[i]) (same samples)."""
    s = sample_index1[rows1]
    return pair_offsets[s] + (rows1 - offsets1[s]) * np.diff(offsets2)[s] + (rows2 - offsets2[s])


def left_right_swaps(sim: np.ndarray, crossed: np.ndarray, both: np.ndarray, pairs: np.ndarray, threshold: float):
    """Left/right pairs of P matched skeletons that fit crossed and not straight.

    ``sim`` (P, K): similarity of keypoint k to keypoint k; ``crossed`` (P, K): of the other side's
    mirrored keypoint to keypoint k; ``both`` (P, K): the keypoint is there on both sides. A pair
    (a, b) is swapped when both its keypoints are there, the mean crossed similarity is >=
    ``threshold`` and the straight one < it.

    Returns ``(swapped (P, K) bool, rows, pair numbers, crossed - straight, crossed, straight)``.

    Example: one skeleton of 2 points, the pair fits only crossed:
        >>> out = left_right_swaps(np.array([[0.1, 0.2]]), np.array([[0.9, 0.95]]), np.ones((1, 2), bool),
        ...                        np.array([[0, 1]]), 0.5)
        >>> out[0].tolist(), out[1].tolist(), round(float(out[3][0]), 3)
        ([[True, True]], [0], 0.775)
    """
    swapped = np.zeros(sim.shape, bool)
    rows, numbers, gain, cross_v, straight_v = [], [], [], [], []
    for n, (a, b) in enumerate(np.asarray(pairs, dtype=np.int64).reshape(-1, 2)):
        ok = both[:, a] & both[:, b]
        straight = (np.nan_to_num(sim[:, a]) + np.nan_to_num(sim[:, b])) / 2
        cross = (np.nan_to_num(crossed[:, a]) + np.nan_to_num(crossed[:, b])) / 2
        hit = np.flatnonzero(ok & (cross >= threshold) & (straight < threshold))
        swapped[hit, a] = swapped[hit, b] = True
        rows.append(hit)
        numbers.append(np.full(len(hit), n))
        gain.append(cross[hit] - straight[hit])
        cross_v.append(cross[hit])
        straight_v.append(straight[hit])
    cat = (lambda x, dt: np.concatenate(x).astype(dt) if x else np.zeros(0, dt))  # noqa: E731
    return (swapped, cat(rows, np.int64), cat(numbers, np.int64), cat(gain, float), cat(cross_v, float),
            cat(straight_v, float))
