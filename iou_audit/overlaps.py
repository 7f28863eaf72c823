"""One entry point for the overlap of two label tables, for every audit: :func:`overlaps`.

Both tables cover the same samples in the same order (``offsets`` of length S+1, as
``iou_audit.table.read_label_table`` returns them for one view); the result is every same-sample
pair's value in the batched layout (docs/ARCHITECTURE.md): sample ``s``'s (n_a x n_b) block is
``values[pair_offsets[s]:pair_offsets[s + 1]].reshape(n_a, n_b)``. A new overlap variant is added
here (and in ``iou_audit.geometry``), and every audit gets it. Names come from
``iou_audit.vocabulary`` (geometry ``boxes|masks|polygons``, metric ``iou|giou|diou|ciou|ios``).

Example:
    >>> from types import SimpleNamespace as T
    >>> a = T(offsets=np.array([0, 1]), box=np.array([[0, 0, .5, .5]]))
    >>> b = T(offsets=np.array([0, 2]), box=np.array([[0, 0, .5, .5], [.25, 0, .75, .5]]))
    >>> overlaps(a, b, "boxes", "iou")
    (array([1.        , 0.33333333]), array([0, 2]))
"""
from __future__ import annotations

import numpy as np

from iou_audit.geometry.boxes import batched_box_iou, batched_pair_rows
from iou_audit.vocabulary import canonical_geometry, canonical_metric

#: what a label without a mask is compared by, under geometry "masks"
MISSING_MASK_RULES = ("box", "empty")


def frame_sizes(table, why: str = "mask IoU") -> np.ndarray:
    """(S, 2) ``(width, height)`` in pixels of a table's samples; a ValueError naming a sample that
    has labels but no image size. Samples without labels get 1 x 1 (nothing is placed on them).

    Example:
        >>> from types import SimpleNamespace as T
        >>> t = T(width=np.array([640., np.nan]), height=np.array([480., np.nan]), offsets=np.array([0, 1, 1]))
        >>> frame_sizes(t).tolist()
        [[640.0, 480.0], [1.0, 1.0]]
    """
    sizes = np.stack([np.asarray(table.width, dtype=float), np.asarray(table.height, dtype=float)], axis=1)
    known = np.isfinite(sizes).all(axis=1) & (sizes > 0).all(axis=1)
    has_labels = np.diff(np.asarray(table.offsets, dtype=np.int64)) > 0
    bad = np.flatnonzero(~known & has_labels)
    if len(bad):
        ids = np.asarray(getattr(table, "sample_ids", np.arange(len(sizes))), dtype=object)[bad]
        shown = ", ".join(map(str, ids[:5])) + (" ..." if len(ids) > 5 else "")
        raise ValueError(f"{why} needs image sizes, but {len(ids)} sample(s) of field "
                         f"{getattr(table, 'field', '?')!r} have no metadata.width/height: {shown}. Run "
                         f"dataset.compute_metadata() with the media present, or set metadata manually.")
    sizes[~known] = 1.0
    return sizes


def pair_rows(offsets_a: np.ndarray, offsets_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global row in table a and in table b of every flat same-sample pair, in ``values`` order.

    Example:
        >>> pair_rows(np.array([0, 2, 3]), np.array([0, 1, 3]))
        (array([0, 1, 2, 2]), array([0, 0, 1, 2]))
    """
    off_a, off_b = np.asarray(offsets_a, np.int64), np.asarray(offsets_b, np.int64)
    _, rows_a, rows_b = batched_pair_rows(off_a, int(off_a[-1]), off_b, int(off_b[-1]))
    return rows_a, rows_b


def overlaps(table_a, table_b, geometry: str = "boxes", metric: str = "iou", crowd_b: np.ndarray | None = None,
             missing_mask: str = "box") -> tuple[np.ndarray, np.ndarray]:
    """Overlap of every same-sample (label of a, label of b) pair, as ``(values, pair_offsets)``.

    Args:
        table_a, table_b: label tables of the same samples (``offsets``, ``box``; ``masks`` and
            ``width``/``height`` for masks; ``polygons`` for polygons).
        geometry: ``"boxes"``, ``"masks"`` (FiftyOne's cropped instance masks, placed in pixels)
            or ``"polygons"`` (filled polylines, shapely).
        metric: ``"iou"`` for every geometry; ``"giou"``, ``"diou"``, ``"ciou"``, ``"ios"`` for boxes
            (DIoU/CIoU in pixels when the tables carry image sizes).
        crowd_b: (L_b,) bool: those labels of b are crowd regions, compared by intersection over the
            area of a's label (pycocotools' rule), only where given.
        missing_mask: under ``"masks"``, a label without a mask is compared by its box (``"box"``)
            or as an empty mask with IoU 0 (``"empty"``, COCO's view of a missing segmentation).
    """
    geometry, metric = canonical_geometry(geometry), canonical_metric(metric)
    off_a = np.asarray(table_a.offsets, dtype=np.int64)
    off_b = np.asarray(table_b.offsets, dtype=np.int64)
    if len(off_a) != len(off_b):
        raise ValueError(f"the two tables cover different sample counts: {len(off_a) - 1} vs {len(off_b) - 1}")
    if metric != "iou" and geometry != "boxes":
        raise ValueError(f"metric {metric!r} is defined for boxes only, not for geometry {geometry!r}")
    crowd = None if crowd_b is None else np.asarray(crowd_b, dtype=bool)
    if geometry in ("boxes", "auto"):
        sizes = None
        if metric in ("diou", "ciou") and hasattr(table_a, "width"):
            sizes = frame_sizes(table_a, f"{metric.upper()}")
        values, pair_offsets = batched_box_iou(table_a.box, off_a, table_b.box, off_b, metric=metric, crowd2=crowd,
                                               sizes=sizes)
    elif geometry == "masks":
        values, pair_offsets = _mask_overlaps(table_a, table_b, off_a, off_b, crowd, missing_mask)
    else:
        from iou_audit.geometry.polygons import batched_polygon_iou

        for t in (table_a, table_b):
            if getattr(t, "polygons", None) is None:
                raise ValueError(f"geometry 'polygons' needs a Polylines field; {getattr(t, 'field', '?')!r} has none")
        values, pair_offsets = batched_polygon_iou(table_a.polygons, off_a, table_b.polygons, off_b, crowd2=crowd)
    return np.asarray(values, dtype=np.float64), np.asarray(pair_offsets, dtype=np.int64)


def _mask_overlaps(ta, tb, off_a, off_b, crowd, missing_mask: str):
    from iou_audit.geometry.masks import batched_cropped_mask_iou

    if missing_mask not in MISSING_MASK_RULES:
        raise ValueError(f"missing_mask must be one of {list(MISSING_MASK_RULES)}, got {missing_mask!r}")
    for t in (ta, tb):
        if getattr(t, "masks", None) is None:
            raise ValueError(f"geometry 'masks' needs instance masks in field {getattr(t, 'field', '?')!r}")
    try:
        values, pair_offsets = batched_cropped_mask_iou(ta.masks, ta.box, off_a, tb.masks, tb.box, off_b,
                                                        frame_sizes(tb), crowd2=crowd)
    except ValueError as e:
        raise_for_bad_mask(ta, e)
        raise_for_bad_mask(tb, e)
        raise
    if missing_mask == "box":
        no_a = np.array([m is None for m in ta.masks], dtype=bool)
        no_b = np.array([m is None for m in tb.masks], dtype=bool)
        if no_a.any() or no_b.any():
            i, j = pair_rows(off_a, off_b)
            boxes, _ = batched_box_iou(ta.box, off_a, tb.box, off_b, metric="iou", crowd2=crowd)
            values = np.where(no_a[i] | no_b[j], boxes, values)
    return values, pair_offsets


def raise_for_bad_mask(table, error: Exception) -> None:
    """Re-raise a kernel's "masks1[i] must be a 2-D mask" naming the field, sample and label
    (looked up only after the failure, so the common path pays nothing)."""
    for row, m in enumerate(table.masks):
        if m is None:
            continue
        shape = getattr(m, "shape", None)
        if shape is None or not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)):
            sid = table.sample_ids[table.sample_index[row]]
            raise ValueError(f"field {table.field!r}, sample {sid}, label {table.label_id[row]}: the instance mask must "
                             f"be a 2-D array, got {type(m).__name__} of shape {shape}") from error


def concat_pairs(values: list, pair_offsets: list) -> tuple[np.ndarray, np.ndarray]:
    """Join the IoU blocks ``(values, pair_offsets)`` of consecutive samples (read batches or shards)
    into one batched layout.

    Example:
        >>> v, o = concat_pairs([np.array([.5]), np.array([.1, .2])], [np.array([0, 1]), np.array([0, 0, 2])])
        >>> v.tolist(), o.tolist()
        ([0.5, 0.1, 0.2], [0, 1, 1, 3])
    """
    start = np.cumsum([0] + [len(v) for v in values])
    offsets = np.concatenate([[0]] + [np.asarray(o[1:]) + start[i] for i, o in enumerate(pair_offsets)])
    return np.concatenate(values), offsets.astype(np.asarray(pair_offsets[0]).dtype)
