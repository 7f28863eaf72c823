"""Inter-annotator mAP@[.5:.95]: a human ceiling to compare models with (DocLayNet, Label Convergence).

For every ordered annotator pair, the first annotator is the reference ("ground truth") and the
second plays a detector whose every label has confidence 1, scored as pycocotools scores it
(per-category greedy matching at IoU 0.50:0.05:0.95, 100 detections per image and category,
101-point interpolated AP): :func:`directional_hits` is ``iou_audit.matching.coco_evaluate``'s
matching specialised to equal confidences, both directions and all thresholds in one compiled pass
(tested against ``coco_evaluate``), and ``matching.ap.category_precision`` accumulates the AP. Averaging both directions makes the number
symmetric. Ties: with all confidences equal, pycocotools' stable sort keeps detections in image
order, then in the order of the labels inside each image; ours keeps sample order, then table row
order -- identical to pycocotools when samples are ordered by image id and labels by annotation id.
Only samples covered by both annotators take part.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from iou_audit.matching.ap import COCO_IOU_THRESHOLDS, category_precision
from iou_audit.matching.greedy import coco_threshold


@njit(cache=True)
def _greedy_all_thresholds(values, base, det_stride, ref_stride, det_lo, n_det, ref_lo, n_ref, det_code, ref_code,
                           thresholds, max_dets, hit, evaluated, taken, cand_start, cand_ref, cand_iou):
    # One sample, one direction. IoU(det d, ref r) = values[base + d * det_stride + r * ref_stride], so
    # both directions read the same (a x b) block without transposing it. pycocotools with every
    # score 1: detections visited in row order (its stable sort), the first max_dets of each class
    # evaluated; each takes the untaken same-class reference with the highest IoU >= threshold,
    # the later one on ties (pycocotools' ``iou >= best``); no crowd, nothing ignored.
    for d in range(n_det):
        rank = 0
        if n_det > max_dets:  # else every detection is among the first max_dets of its class
            for e in range(d):
                if det_code[det_lo + e] == det_code[det_lo + d]:
                    rank += 1
        evaluated[det_lo + d] = rank < max_dets
    # A reference below the lowest threshold (or NaN: "not >=") can never be taken, so each
    # detection's same-class candidates at or above it are listed once, in scan order; every
    # threshold then scans only those (about one per detection instead of n_ref; 0.11 s -> 0.02 s).
    lowest = thresholds.min()
    n = 0
    for d in range(n_det):
        cand_start[d] = n
        if not evaluated[det_lo + d]:
            continue
        c = det_code[det_lo + d]
        for r in range(n_ref):
            if ref_code[ref_lo + r] != c:
                continue
            v = values[base + d * det_stride + r * ref_stride]
            if v >= lowest:
                cand_ref[n] = r
                cand_iou[n] = v
                n += 1
    cand_start[n_det] = n
    # Usual case: each detection has at most one candidate and no reference is the candidate of two
    # detections. Nothing then competes, so the greedy takes a candidate exactly when its IoU
    # reaches the threshold (saves the per-threshold scans: 45 -> 30 ms on the benchmark).
    for r in range(n_ref):
        taken[r] = False
    simple = True
    for d in range(n_det):
        k = cand_start[d + 1] - cand_start[d]
        if k > 1 or (k == 1 and taken[cand_ref[cand_start[d]]]):
            simple = False
            break
        if k == 1:
            taken[cand_ref[cand_start[d]]] = True
    if simple:
        for d in range(n_det):
            if cand_start[d + 1] > cand_start[d]:
                v = cand_iou[cand_start[d]]
                for t in range(len(thresholds)):
                    if v >= thresholds[t]:
                        hit[t, det_lo + d] = True
        return
    for t in range(len(thresholds)):
        for r in range(n_ref):
            taken[r] = False
        for d in range(n_det):
            best = thresholds[t]
            m = -1
            for q in range(cand_start[d], cand_start[d + 1]):
                r = cand_ref[q]
                if taken[r]:
                    continue
                v = cand_iou[q]
                if not (v >= best):
                    continue
                best = v
                m = r
            if m >= 0:
                taken[m] = True
                hit[t, det_lo + d] = True


@njit(cache=True)
def _both_directions_kernel(values, pair_offsets, off_a, off_b, code_a, code_b, keep, thresholds, max_dets,
                            hit_a, evaluated_a, hit_b, evaluated_b):
    taken = np.zeros(max(len(code_a), len(code_b), 1), np.bool_)
    cand_start = np.zeros(max(len(code_a), len(code_b)) + 1, np.int64)
    longest = 0
    for s in range(len(pair_offsets) - 1):
        longest = max(longest, pair_offsets[s + 1] - pair_offsets[s])
    cand_ref = np.zeros(longest, np.int64)
    cand_iou = np.zeros(longest)
    for s in range(len(off_a) - 1):
        if not keep[s]:
            continue
        la, na = off_a[s], off_a[s + 1] - off_a[s]
        lb, nb = off_b[s], off_b[s + 1] - off_b[s]
        base = pair_offsets[s]
        # b's labels as detections against a (block rows are a: IoU(b_j, a_i) = values[base + i * nb + j])
        _greedy_all_thresholds(values, base, 1, nb, lb, nb, la, na, code_b, code_a, thresholds, max_dets,
                               hit_b, evaluated_b, taken, cand_start, cand_ref, cand_iou)
        # a's labels as detections against b
        _greedy_all_thresholds(values, base, nb, 1, la, na, lb, nb, code_a, code_b, thresholds, max_dets,
                               hit_a, evaluated_a, taken, cand_start, cand_ref, cand_iou)


def directional_hits(values: np.ndarray, pair_offsets: np.ndarray, off_a: np.ndarray, off_b: np.ndarray,
                     code_a: np.ndarray, code_b: np.ndarray, keep: np.ndarray, max_dets: int = 100):
    """COCO outcome of every label of a pair, in both directions, at the 10 COCO IoU thresholds.

    ``values`` are the pair's (a x b) IoU blocks; ``code_a``/``code_b`` integer classes (equal codes
    = same class); only samples where ``keep`` take part. Returns ``(hit_a, evaluated_a, hit_b,
    evaluated_b)``: ``hit_a`` (T, La) a's label is a true positive with b as reference, and
    ``evaluated_a`` (La,) it is among the first ``max_dets`` of its class in its sample -- what
    ``coco_evaluate(...).match >= 0`` and ``.evaluated`` give with every score 1 (no crowd, no
    areas), for all thresholds and both directions in one compiled pass over the block (the 6
    ``coco_evaluate`` calls per batch and their block transposes took 0.36 s of 1.34 s on the
    3 x 5,000 x 15 benchmark; this takes about 0.02 s).

    Example: one sample, a has one cat, b a cat overlapping it at IoU 0.7 and a dog:
        >>> h_a, e_a, h_b, e_b = directional_hits(np.array([0.7, 0.9]), np.array([0, 2]), np.array([0, 1]),
        ...     np.array([0, 2]), np.array([0]), np.array([0, 1]), np.array([True]))
        >>> h_a[:, 0].tolist() == [True] * 5 + [False] * 5, h_b[:, 1].any(), e_b.tolist()
        (True, np.False_, [True, True])
    """
    off_a = np.asarray(off_a, np.int64)
    off_b = np.asarray(off_b, np.int64)
    thresholds = np.array([coco_threshold(t) for t in COCO_IOU_THRESHOLDS])
    la, lb = int(off_a[-1]), int(off_b[-1])
    hit_a, hit_b = np.zeros((len(thresholds), la), np.bool_), np.zeros((len(thresholds), lb), np.bool_)
    evaluated_a, evaluated_b = np.zeros(la, np.bool_), np.zeros(lb, np.bool_)
    _both_directions_kernel(np.ascontiguousarray(values, np.float64), np.asarray(pair_offsets, np.int64), off_a, off_b,
                            np.asarray(code_a, np.int64), np.asarray(code_b, np.int64), np.asarray(keep, np.bool_),
                            thresholds, int(max_dets), hit_a, evaluated_a, hit_b, evaluated_b)
    return hit_a, evaluated_a, hit_b, evaluated_b


def ap_from_parts(parts: list[dict]) -> dict:
    """mAP@[.5:.95], @.5, @.75 of one direction's :func:`map_parts` outputs, concatenated (batches in order).

    Mirrors ``coco_evaluate``'s accumulation: with every confidence 1, pycocotools' stable sort keeps
    detections in sample order then table order, i.e. batch order; a class without reference labels
    is left out (-1), and no reference label at all gives NaN.
    """
    evaluated = np.concatenate([p["evaluated"] for p in parts])
    hit = np.concatenate([part_hits(p) for p in parts], axis=1)
    # Classes compared as strings, in sorted order (as coco_evaluate's np.unique): each batch's
    # class names mapped into the sorted union of all batches' names.
    cats = np.unique(np.concatenate([p["names"] for p in parts]))
    code = np.concatenate([np.searchsorted(cats, p["names"])[p["class"]] for p in parts]).astype(np.int64)
    ref_code = np.concatenate([np.searchsorted(cats, p["names"])[p["ref_class"]] for p in parts]).astype(np.int64)
    num_gt = np.bincount(ref_code, minlength=len(cats))
    # Evaluated detections class by class, each class in concatenation order (= pycocotools' stable
    # sort of equal scores); category_precision is precision_at_recall's arithmetic for all classes
    # in one compiled pass (0.08 s -> 0.01 s for the 6 directions of the benchmark).
    rows = np.flatnonzero(evaluated)
    rows = rows[np.argsort(code[rows], kind="stable")]
    bounds = np.searchsorted(code[rows], np.arange(len(cats) + 1))
    no = np.zeros(len(code), bool)
    precision = np.stack([category_precision(hit[t], no, rows, bounds, num_gt)[0] for t in range(len(hit))])

    def mean(p):
        valid = p[p > -1]
        return float(np.mean(valid)) if len(valid) else float("nan")

    t50 = np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, 0.5))
    t75 = np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, 0.75))
    return {"map": mean(precision), "map50": mean(precision[t50]), "map75": mean(precision[t75])}


def part_hits(part: dict) -> np.ndarray:
    """A direction's (T, D) ``hit`` flags: as given, or unpacked from the bits :func:`map_parts` keeps.

    >>> hit = np.array([[True, False, True], [False, False, True]])
    >>> bool((part_hits({"hit_bits": np.packbits(hit, axis=1), "n": 3}) == hit).all())
    True
    """
    if "hit" in part:
        return part["hit"]
    return np.unpackbits(part["hit_bits"], axis=1, count=int(part["n"])).astype(bool)


def _small_codes(codes: np.ndarray, n: int) -> np.ndarray:
    """Class codes in the narrowest integer type holding ``0..n-1`` (kept per detection: memory)."""
    return codes.astype(np.min_scalar_type(max(n - 1, 0)))


def map_parts(tables, pair_matches, covered: np.ndarray) -> list:
    """Per annotator pair, the two directions' outcomes on this batch (a, then b as reference): per
    detection ``evaluated``, ``hit`` (T, D; kept packed as ``hit_bits`` of ``n`` detections, read
    with :func:`part_hits`) and ``class``, and the references' ``ref_class``, for
    the labels of the samples both annotators covered (see :func:`directional_hits`); classes are
    indices into ``names``, the batch's sorted label strings."""
    # One factorize for all annotators of the batch (hashing, not string sorting): object codes
    # for the matching, and the labels as strings for the AP classes -- instead of factorizing
    # every pair's and every direction's label arrays (45 ms of the benchmark).
    labels = [np.asarray(t.label, dtype=object) for t in tables]
    obj_code, uniq = pd.factorize(np.concatenate(labels), use_na_sentinel=False)
    names, str_code = np.unique(np.asarray(uniq, dtype=object).astype(str), return_inverse=True)
    str_code = str_code.reshape(-1)[obj_code]
    start = np.cumsum([0] + [len(x) for x in labels])
    out = []
    for pm in pair_matches:
        ta, tb = tables[pm.a], tables[pm.b]
        oa, ob = obj_code[start[pm.a]:start[pm.a + 1]], obj_code[start[pm.b]:start[pm.b + 1]]
        sa, sb = str_code[start[pm.a]:start[pm.a + 1]], str_code[start[pm.b]:start[pm.b + 1]]
        keep = covered[:, pm.a] & covered[:, pm.b]
        hit_a, ev_a, hit_b, ev_b = directional_hits(pm.values, pm.pair_offsets, ta.offsets, tb.offsets, oa, ob, keep)
        # every sample covered by both (no coverage field): keep whole arrays, no row gathers
        ra = slice(None) if keep.all() else np.flatnonzero(np.repeat(keep, np.diff(ta.offsets)))
        rb = slice(None) if keep.all() else np.flatnonzero(np.repeat(keep, np.diff(tb.offsets)))
        # kept until the joined batches' AP: hits as bits (10 thresholds in 1.25 bytes), classes narrow
        ca, cb = _small_codes(sa[ra], len(names)), _small_codes(sb[rb], len(names))
        out.append(({"evaluated": ev_b[rb], "hit_bits": np.packbits(hit_b[:, rb], axis=1), "n": len(cb), "class": cb,
                     "ref_class": ca, "names": names},
                    {"evaluated": ev_a[ra], "hit_bits": np.packbits(hit_a[:, ra], axis=1), "n": len(ca), "class": ca,
                     "ref_class": cb, "names": names}))
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
