"""What the keypoint audits need from a Keypoints label table, in pixels: points, which points are
labeled, the OKS area and box of every object, its score, and the skeleton (names, sigmas,
left/right pairs).

Area of an object (OKS's scale), first that applies:
1. ``area_attribute``: a numeric label attribute in pixels squared (COCO's ``area``);
2. ``box_attribute``: a label attribute holding the object's box as FiftyOne's relative
   ``[x, y, w, h]``: its pixel area x ``area_factor`` (CrowdPose: 0.53);
3. the box spanning the object's labeled points x ``area_factor`` (what pycocotools' ``loadRes``
   gives a keypoint result; smaller than a person's segment area, so OKS is stricter).
The box (for COCO's rule on objects without labeled points) is ``box_attribute`` when given, else
that extent.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from iou_audit.geometry.keypoints import (
    COCO_FLIP_PAIRS,
    COCO_SIGMAS,
    box_areas,
    check_flip_pairs,
    extent_boxes,
    flip_pairs_from_names,
    labeled_mask,
    resolve_sigmas,
)
from iou_audit.table.model import LabelTable, require_frame_sizes

#: Samples read per batch by the keypoint audits (memory is bounded by one batch's documents and
#: geometry; the results do not depend on it).
KEYPOINT_READ_BATCH = 2000


@dataclass
class KeypointObjects:
    """One Keypoints table in pixels (L objects, K keypoints each)."""

    table: LabelTable
    points: np.ndarray  # (L, K, 2) pixels, NaN where a point is absent
    labeled: np.ndarray  # (L, K) bool: flag > 0 (or no flags) and finite
    area: np.ndarray  # (L,) pixels squared
    box: np.ndarray  # (L, 4) xyxy pixels, NaN when unknown
    score: np.ndarray  # (L,) instance score (score_attribute, else mean point confidence, else 1)
    point_confidence: np.ndarray  # (L, K) NaN where not given
    flags: np.ndarray | None = None  # (L, K) COCO flags (0, 1 occluded, 2 visible), NaN where not given

    def __len__(self) -> int:
        return len(self.table)


def read_keypoint_table(samples, field: str, attributes=()) -> LabelTable:
    """A Keypoints field of ``samples`` as a label table (see ``iou_audit.table.keypoints``)."""
    from iou_audit.table import read_label_table

    return read_label_table(samples, field, attributes=tuple(a for a in dict.fromkeys(attributes) if a),
                            label_types=("keypoints",))


def num_keypoints(*tables: LabelTable, expected: int | None = None) -> int:
    """The one K of all labels of the tables (``expected`` when given, e.g. K of earlier
    batches); ValueError naming a label with another count.

    Example:
        >>> num_keypoints(LabelTable.empty("kp", "keypoints", ["s"]))
        0
    """
    k = 0 if expected is None else int(expected)
    for t in tables:
        if expected is None and t.num_points is not None and len(t):
            k = max(k, int(t.num_points.max()))
    for t in tables:
        if t.num_points is None or not len(t):
            continue
        bad = np.flatnonzero(t.num_points != k)
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"every keypoint label must have the same number of points; field {t.field!r} label "
                f"{t.label_id[i]} of sample {t.sample_ids[t.sample_index[i]]} has {t.num_points[i]}, others {k} "
                f"({len(bad)} such labels): audit one skeleton at a time (filter the view by label)")
    return k


def iter_keypoint_batches(samples, fields: Sequence[str], attributes: Sequence = (),
                          batch_size: int = KEYPOINT_READ_BATCH) -> Iterator[tuple[int, list[LabelTable]]]:
    """Keypoints fields of ``samples`` read together ``batch_size`` samples at a time:
    ``(K, [one table per field])`` per batch, the tables of a batch covering the same samples.

    ``K`` is the one number of points of every label of every batch (a label with another count
    is a ValueError naming it, as :func:`num_keypoints` over one read of everything); batches
    before the first with labels of K > 0 points are held back until K is known (they hold no
    points). ``attributes[i]``: the label attributes to read of ``fields[i]``.

    Example:
        >>> [len(t) for _, ts in iter_keypoint_batches(ds, ["gt"], batch_size=100) for t in ts]  # doctest: +SKIP
        [412, 397]
    """
    from iou_audit.table import iter_label_tables

    attributes = list(attributes) or [()] * len(fields)
    readers = [iter_label_tables(samples, f, batch_size=batch_size, label_types=("keypoints",),
                                 attributes=tuple(a for a in dict.fromkeys(attrs) if a))
               for f, attrs in zip(fields, attributes)]
    k, held, any_batch = None, [], False
    for tables in zip(*readers):
        tables, any_batch = list(tables), True
        if k is not None:
            num_keypoints(*tables, expected=k)
            yield k, tables
            continue
        k_batch = num_keypoints(*tables)
        if not k_batch:
            held.append(tables)
            continue
        k = k_batch
        for earlier in held:
            num_keypoints(*earlier, expected=k)
        for earlier in held:
            yield k, earlier
        held.clear()
        yield k, tables
    for earlier in held:  # no label has points: K = 0, as one read gives
        yield 0, earlier
    if not any_batch:  # an empty view: the (empty) tables of one read
        yield 0, [read_keypoint_table(samples, f, attrs) for f, attrs in zip(fields, attributes)]


def check_unique_label_ids(layout, n_rows: dict) -> None:
    """Label ids unique over all batches (each batch's read checks its own): ``layout`` (a
    ``ReadLayout`` of every batch) holds each field's ids once, ``n_rows[field]`` labels were read.

    Example:
        >>> from iou_audit.table import ReadLayout
        >>> layout = ReadLayout(); layout.add("kp", ["a" * 24], ["s" * 24])
        >>> check_unique_label_ids(layout, {"kp": 1})
    """
    for field, n in n_rows.items():
        unique = len(layout.labels.get(field, {}))
        if unique != n:
            raise ValueError(f"field {field!r}: {n - unique} label ids occur in more than one sample "
                             f"({n} labels read); every label needs its own id")


def keypoint_objects(table: LabelTable, k: int, area_attribute: str | None = None, box_attribute: str | None = None,
                     area_factor: float = 1.0, score_attribute: str | None = None) -> KeypointObjects:
    """Pixel geometry of a Keypoints table (image sizes required: OKS is not scale-free)."""
    require_frame_sizes(table, "OKS (keypoint similarity)")
    n = len(table)
    pts = np.full((n, k, 2), np.nan) if table.points is None or table.points.shape[1] != k else table.points
    vis = None if table.visibility is None or table.visibility.shape[1] != k else table.visibility
    size = np.stack([table.width, table.height], axis=1)[table.sample_index] if n else np.zeros((0, 2))
    points = pts * size[:, None, :]
    # without flags a finite point is labeled; a NaN flag (label without ``visible``) likewise
    flags = None if vis is None else np.where(np.isnan(vis), 2.0, vis)
    labeled = labeled_mask(points, flags)
    box = extent_boxes(points, labeled)
    if box_attribute:
        given = _box_attribute(table, box_attribute) * np.concatenate([size, size], axis=1)
        has = np.isfinite(given).all(axis=1)
        box[has] = given[has]
        box[has, 2:] += box[has, :2]
    area = np.nan_to_num(box_areas(box, area_factor), nan=0.0)
    if area_attribute:
        given = _numeric_attribute(table, area_attribute)
        area = np.where(np.isfinite(given), given, area)
    score = np.where(np.isfinite(table.confidence), table.confidence, 1.0)
    if score_attribute:
        given = _numeric_attribute(table, score_attribute)
        score = np.where(np.isfinite(given), given, score)
    conf = np.full((n, k), np.nan) if table.point_confidence is None or table.point_confidence.shape[1] != k \
        else table.point_confidence
    given_flags = np.full((n, k), np.nan) if vis is None else vis
    return KeypointObjects(table, points, labeled, area, box, score, conf, given_flags)


def _numeric_attribute(table: LabelTable, name: str) -> np.ndarray:
    values = table.attributes[name]
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        i = next(i for i, v in enumerate(values) if not isinstance(v, (int, float, type(None))))
        raise ValueError(f"attribute {name!r} of field {table.field!r} must be a number; label {table.label_id[i]} "
                         f"of sample {table.sample_ids[table.sample_index[i]]} has {values[i]!r:.80}") from None


def _box_attribute(table: LabelTable, name: str) -> np.ndarray:
    out = np.full((len(table), 4), np.nan)
    for i, v in enumerate(table.attributes[name]):
        if v is None or (isinstance(v, float) and np.isnan(v)):  # a label without the attribute
            continue
        try:
            out[i] = np.asarray(v, dtype=np.float64).reshape(4)
        except (TypeError, ValueError):
            raise ValueError(f"attribute {name!r} of field {table.field!r} must be a relative [x, y, w, h] box; "
                             f"label {table.label_id[i]} of sample {table.sample_ids[table.sample_index[i]]} "
                             f"has {v!r:.80}") from None
    return out


def skeleton(samples, field: str, k: int, sigmas=None, flip_pairs=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, sigmas, flip_pairs)`` of a field's K-point skeleton.

    Names: the field's FiftyOne skeleton (``dataset.skeletons[field]`` or the default), else
    ``kp0``... Sigmas: given, else COCO's for K = 17. Flip pairs: given; else from the names
    (``left_*``/``right_*``); else COCO's for K = 17 without a skeleton; else none (no swap check).
    """
    names = None
    sk = samples.get_skeleton(field) if hasattr(samples, "get_skeleton") else None
    if sk is not None and sk.labels and len(sk.labels) == k:
        names = [str(n) for n in sk.labels]
    sig = resolve_sigmas(sigmas, k) if k else np.asarray(COCO_SIGMAS[:0])
    if flip_pairs is not None:
        pairs = check_flip_pairs(flip_pairs, k)
    elif names is not None:
        pairs = check_flip_pairs(flip_pairs_from_names(names), k)
    elif k == len(COCO_FLIP_PAIRS) * 2 + 1:
        pairs = check_flip_pairs(COCO_FLIP_PAIRS, k)
    else:
        pairs = np.zeros((0, 2), np.int64)
    return names or [f"kp{i}" for i in range(k)], sig, pairs
