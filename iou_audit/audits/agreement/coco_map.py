"""Inter-annotator mAP@[.5:.95]: a human ceiling to compare models with (DocLayNet, Label Convergence).

For every ordered annotator pair, the first annotator is the reference ("ground truth") and the
second plays a detector whose every label has confidence 1; ``iou_audit.matching.coco_evaluate``
(pycocotools-exact: per-category greedy matching at IoU 0.50:0.05:0.95, 100 detections per image
and category, 101-point interpolated AP) scores it. Averaging both directions makes the number
symmetric. Ties: with all confidences equal, pycocotools' stable sort keeps detections in image
order, then in the order of the labels inside each image; ours keeps sample order, then table row
order -- identical to pycocotools when samples are ordered by image id and labels by annotation id.
Only samples covered by both annotators take part.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from iou_audit.matching import coco_evaluate
from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, precision_at_recall


@njit(cache=True)
def _transpose_kernel(values, pair_offsets, n_a, n_b, out):
    for s in range(len(n_a)):
        base = pair_offsets[s]
        for i in range(n_a[s]):
            for j in range(n_b[s]):
                out[base + j * n_a[s] + i] = values[base + i * n_b[s] + j]


def transpose_blocks(values: np.ndarray, pair_offsets: np.ndarray, n_a: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """Turn every sample's (n_a, n_b) block into its (n_b, n_a) transpose, same ``pair_offsets``.

    Example:
        >>> transpose_blocks(np.array([1., 2., 3., 4., 5., 6., 9.]), np.array([0, 6, 7]),
        ...                  np.array([2, 1]), np.array([3, 1]))
        array([1., 4., 2., 5., 3., 6., 9.])
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(values)
    _transpose_kernel(values, np.asarray(pair_offsets, np.int64), np.asarray(n_a, np.int64), np.asarray(n_b, np.int64), out)
    return out


def _subset(values, pair_offsets, off_a, off_b, keep):
    """The batched layout restricted to samples where ``keep``; returns rows kept of a and b too."""
    n_a, n_b = np.diff(off_a), np.diff(off_b)
    rows_a = np.flatnonzero(np.repeat(keep, n_a))
    rows_b = np.flatnonzero(np.repeat(keep, n_b))
    vals = values[np.repeat(keep, np.diff(pair_offsets))]
    new_a = np.concatenate([[0], np.cumsum(n_a * keep)])
    new_b = np.concatenate([[0], np.cumsum(n_b * keep)])
    new_p = np.concatenate([[0], np.cumsum(n_a * n_b * keep)])
    return vals, new_p, new_a, new_b, rows_a, rows_b


def directional_part(values, pair_offsets, off_ref, off_other, labels_ref, labels_other) -> dict:
    """Per-detection COCO outcome of ``other`` (confidence 1) against ``ref`` on one batch of samples.

    Keeps O(labels): which detections are evaluated (COCO's 100 per image and class), whether each
    is a true positive at every IoU threshold, and the labels; :func:`ap_from_parts` turns the parts
    of consecutive batches into pycocotools' AP. ``values`` are (other x ref) blocks.
    """
    labels_other = np.asarray(labels_other, dtype=object)
    labels_ref = np.asarray(labels_ref, dtype=object)
    # Integer classes for the evaluation (hashing, not string sorting); the strings are kept.
    codes = pd.factorize(np.concatenate([labels_other, labels_ref]), use_na_sentinel=False)[0]
    scores = np.ones(int(off_other[-1]))
    r = coco_evaluate(values, pair_offsets, off_other, off_ref, scores, codes[:len(labels_other)],
                      codes[len(labels_other):])
    return {"evaluated": r.evaluated, "hit": r.match >= 0, "label": labels_other, "ref_label": labels_ref}


def ap_from_parts(parts: list[dict]) -> dict:
    """mAP@[.5:.95], @.5, @.75 of concatenated :func:`directional_part` outputs (batches in order).

    Mirrors ``coco_evaluate``'s accumulation: with every confidence 1, pycocotools' stable sort keeps
    detections in sample order then table order, i.e. batch order; a class without reference labels
    is left out (-1), and no reference label at all gives NaN.
    """
    evaluated = np.concatenate([p["evaluated"] for p in parts])
    hit = np.concatenate([p["hit"] for p in parts], axis=1)
    label = np.concatenate([p["label"] for p in parts])
    ref = np.concatenate([p["ref_label"] for p in parts])
    # Classes compared as strings, in sorted order (as coco_evaluate's np.unique); hashing first,
    # so only the distinct labels are converted and sorted.
    codes, uniq = pd.factorize(np.concatenate([label, ref]), use_na_sentinel=False)
    cats, as_cat = np.unique(np.asarray(uniq, dtype=object).astype(str), return_inverse=True)
    ref_code = as_cat[codes]
    num_gt = np.bincount(ref_code[len(label):], minlength=len(cats))
    code = ref_code[:len(label)]
    T, R = len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS)
    precision = -np.ones((T, R, len(cats)))
    ones, no = np.ones(len(label)), np.zeros(len(label), bool)
    for k in np.flatnonzero(num_gt):
        rows = np.flatnonzero(evaluated & (code == k))
        for t in range(T):
            precision[t, :, k], _ = precision_at_recall(hit[t, rows], ones[rows], int(num_gt[k]), ignored=no[rows])

    def mean(p):
        valid = p[p > -1]
        return float(np.mean(valid)) if len(valid) else float("nan")

    t50 = np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, 0.5))
    t75 = np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, 0.75))
    return {"map": mean(precision), "map50": mean(precision[t50]), "map75": mean(precision[t75])}


def map_parts(tables, pair_matches, covered: np.ndarray) -> list:
    """Per annotator pair, the two directions' :func:`directional_part` on this batch (a, then b as reference)."""
    out = []
    for pm in pair_matches:
        ta, tb = tables[pm.a], tables[pm.b]
        off_a, off_b = np.asarray(ta.offsets, np.int64), np.asarray(tb.offsets, np.int64)
        keep = covered[:, pm.a] & covered[:, pm.b]
        v, po, oa, ob, ra, rb = _subset(pm.values, pm.pair_offsets, off_a, off_b, keep)
        la, lb = np.asarray(ta.label)[ra], np.asarray(tb.label)[rb]
        # a as reference: detections are b's rows, so blocks must be (b x a).
        vt = transpose_blocks(v, po, np.diff(oa), np.diff(ob))
        out.append((directional_part(vt, po, oa, ob, la, lb), directional_part(v, po, ob, oa, lb, la)))
    return out


def _mean2(x: float, y: float) -> float:
    vals = [v for v in (x, y) if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def map_table(parts_by_batch: list[list], pair_matches, names) -> pd.DataFrame:
    """One row per annotator pair: mAP@[.5:.95], mAP@.5, mAP@.75 averaged over both directions.

    ``parts_by_batch[i]`` is :func:`map_parts` of batch ``i``. Columns ``map_a_ref`` / ``map_b_ref``
    keep each direction (reference annotator a, resp. b).
    """
    rows = []
    for j, pm in enumerate(pair_matches):
        a_ref = ap_from_parts([p[j][0] for p in parts_by_batch])
        b_ref = ap_from_parts([p[j][1] for p in parts_by_batch])
        rows.append({
            "annotator_a": names[pm.a], "annotator_b": names[pm.b],
            # mean of the defined directions (a direction whose reference has no label is undefined)
            **{k: _mean2(a_ref[k], b_ref[k]) for k in ("map", "map50", "map75")},
            "map_a_ref": a_ref["map"], "map_b_ref": b_ref["map"],
        })
    return pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "map", "map50", "map75", "map_a_ref", "map_b_ref"])


def inter_annotator_map(tables, pair_matches, covered: np.ndarray, names) -> pd.DataFrame:
    """:func:`map_table` of one batch holding every sample."""
    return map_table([map_parts(tables, pair_matches, covered)], pair_matches, names)
