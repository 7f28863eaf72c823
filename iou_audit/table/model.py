"""The columnar label table: one label field of a view, flattened into per-label arrays.

Sample ``s`` owns rows ``offsets[s]:offsets[s + 1]``; boxes are relative ``xyxy`` (see
docs/ARCHITECTURE.md). This module holds the data model and pure-array helpers; reading from and
writing to FiftyOne live in ``read.py`` and ``write.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Any

import numpy as np
import pandas as pd

#: Problem kinds reported by :func:`validate_table` (one row per problem).
PROBLEM_COLUMNS = ["sample_id", "field", "label_id", "problem", "value"]

# Boxes may poke out of the image by rounding noise from annotation tools; beyond this
# (relative) margin a box is reported as out of bounds.
BOUNDS_TOLERANCE = 1e-3
# A mask cropped to its box may differ from the box's pixel size by rounding; beyond this many
# pixels (plus 5 %) the mask is reported as not fitting its box.
MASK_SIZE_TOLERANCE_PX = 2.0


@dataclass
class LabelTable:
    """One Detections/Polylines/Keypoints field over a view, flattened (S samples, L labels).

    Example:
        >>> t = LabelTable.empty("gt", sample_ids=["a", "b"])
        >>> t.offsets.tolist(), len(t)
        ([0, 0, 0], 0)
    """

    field: str
    label_type: str  # "detections" | "polylines" | "keypoints" (box: the points' extent)
    sample_ids: np.ndarray  # (S,) str
    filepaths: np.ndarray  # (S,) str
    width: np.ndarray  # (S,) float64 pixels, NaN unknown
    height: np.ndarray  # (S,) float64 pixels, NaN unknown
    offsets: np.ndarray  # (S+1,) int64
    sample_index: np.ndarray  # (L,) int64
    label_id: np.ndarray  # (L,) str
    label: np.ndarray  # (L,) str ("" when the label has no class)
    box: np.ndarray  # (L, 4) float64 relative xyxy (NaN when missing)
    confidence: np.ndarray  # (L,) float64, NaN when absent
    iscrowd: np.ndarray  # (L,) bool
    masks: list | None = None  # per row a 2-D bool array or None; None when not read
    polygons: list | None = None  # per row a list of (K, 2) rings or None
    attributes: dict[str, np.ndarray] = dc_field(default_factory=dict)
    tags: list | None = None  # per row the label's tags (list of str)
    # Keypoints tables only (None otherwise; see iou_audit.table.keypoints):
    points: np.ndarray | None = None  # (L, K, 2) float64 relative xy, NaN where a point is absent
    visibility: np.ndarray | None = None  # (L, K) float64 COCO flags 0/1/2, NaN where not given
    point_confidence: np.ndarray | None = None  # (L, K) float64, NaN where not given
    num_points: np.ndarray | None = None  # (L,) int64 points of each label (K pads the rest)

    def __len__(self) -> int:
        return int(len(self.label_id))

    @property
    def num_samples(self) -> int:
        return int(len(self.sample_ids))

    @property
    def counts(self) -> np.ndarray:
        """Labels per sample, (S,) int64."""
        return np.diff(self.offsets)

    @property
    def row_sample_id(self) -> np.ndarray:
        """The sample id of every row, (L,) str."""
        return self.sample_ids[self.sample_index] if len(self) else np.array([], dtype=object)

    @classmethod
    def empty(cls, field: str, label_type: str = "detections", sample_ids=()) -> "LabelTable":
        s = len(sample_ids)
        return cls(
            field=field,
            label_type=label_type,
            sample_ids=np.asarray(list(sample_ids), dtype=object),
            filepaths=np.full(s, "", dtype=object),
            width=np.full(s, np.nan),
            height=np.full(s, np.nan),
            offsets=np.zeros(s + 1, dtype=np.int64),
            sample_index=np.zeros(0, dtype=np.int64),
            label_id=np.zeros(0, dtype=object),
            label=np.zeros(0, dtype=object),
            box=np.zeros((0, 4)),
            confidence=np.zeros(0),
            iscrowd=np.zeros(0, dtype=bool),
        )

    def take(self, rows: np.ndarray) -> "LabelTable":
        """A table with the same samples and only the given rows (kept in sample order).

        Example:
            >>> t = LabelTable.empty("gt", sample_ids=["a"])
            >>> t.take(np.zeros(0, dtype=int)).offsets.tolist()
            [0, 0]
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = np.sort(rows.astype(np.int64))
        si = self.sample_index[rows]
        offsets = np.zeros(self.num_samples + 1, dtype=np.int64)
        np.cumsum(np.bincount(si, minlength=self.num_samples), out=offsets[1:])

        def pick(seq):
            return None if seq is None else [seq[i] for i in rows]

        return replace(
            self,
            offsets=offsets,
            sample_index=si,
            label_id=self.label_id[rows],
            label=self.label[rows],
            box=self.box[rows],
            confidence=self.confidence[rows],
            iscrowd=self.iscrowd[rows],
            masks=pick(self.masks),
            polygons=pick(self.polygons),
            attributes={k: v[rows] for k, v in self.attributes.items()},
            tags=pick(self.tags),
            **{name: None if getattr(self, name) is None else getattr(self, name)[rows]
               for name in ("points", "visibility", "point_confidence", "num_points")},
        )


def split_by_attribute(table: LabelTable, attr: str) -> dict[Any, LabelTable]:
    """One table per value of a label attribute (e.g. an annotator id), same samples in each.

    Labels whose attribute is missing (None/NaN) are grouped under ``None``.

    Example:
        >>> t = LabelTable.empty("gt", sample_ids=["s"])
        >>> t = t.take(np.zeros(0, dtype=int)); t.attributes["rater"] = np.zeros(0, dtype=object)
        >>> split_by_attribute(t, "rater")
        {}
    """
    if attr not in table.attributes:
        raise ValueError(
            f"attribute {attr!r} was not read for field {table.field!r}; pass "
            f"attributes=[{attr!r}] to read_label_table (read: {sorted(table.attributes)})"
        )
    values = table.attributes[attr]
    keys = [None if _is_missing(v) else v for v in values]
    out: dict[Any, LabelTable] = {}
    for key in dict.fromkeys(keys):
        rows = np.fromiter((k == key if key is not None else k is None for k in keys), bool, len(keys))
        out[key] = table.take(rows)
    return out


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def frame_sizes_known(table: LabelTable) -> np.ndarray:
    """(S,) bool: samples whose pixel width and height are known and positive."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(table.width) & np.isfinite(table.height) & (table.width > 0) & (table.height > 0)


def require_frame_sizes(table: LabelTable, why: str) -> None:
    """Raise ValueError naming the samples (with labels) whose image size is unknown.

    Call it where pixels are needed (DIoU/CIoU, pixel tolerances, mask placement).

    Example:
        >>> t = LabelTable.empty("gt", sample_ids=["a"])
        >>> require_frame_sizes(t, "mask IoU")  # no labels -> nothing needs pixels
    """
    unknown = ~frame_sizes_known(table) & (table.counts > 0)
    if unknown.any():
        ids = table.sample_ids[unknown]
        shown = ", ".join(map(str, ids[:5])) + (" ..." if len(ids) > 5 else "")
        raise ValueError(
            f"{why} needs image sizes, but {len(ids)} sample(s) of field {table.field!r} have no "
            f"metadata.width/height and their media could not be read: {shown}. Run "
            f"dataset.compute_metadata() with the media present, or set metadata manually."
        )


def check_label_ids(table: LabelTable) -> None:
    """Raise ValueError naming the sample and label when a label has no id or shares its id with
    another label of the field: results are written back by label id, so such labels could not
    be told apart (FiftyOne gives every label a unique id; raw edits or bad imports may not).

    Example:
        >>> check_label_ids(LabelTable.empty("gt", sample_ids=["a"]))  # no labels: nothing to check
    """
    if not len(table):
        return
    ids = pd.Series(table.label_id, dtype=object)
    missing = (ids == "") | ids.isna()
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        raise ValueError(
            f"field {table.field!r}: {int(missing.sum())} label(s) have no id, e.g. label {i - table.offsets[table.sample_index[i]]} "
            f"of sample {table.sample_ids[table.sample_index[i]]} (class {table.label[i]!r}); every label needs a unique _id"
        )
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        samples = sorted({str(s) for s in table.sample_ids[table.sample_index[dup]]})
        raise ValueError(
            f"field {table.field!r}: label id {table.label_id[i]} is used by {int((ids == ids[i]).sum())} labels "
            f"(sample(s) {', '.join(samples[:5])}{' ...' if len(samples) > 5 else ''}); {int(dup.sum())} labels share "
            f"ids in all. Label ids must be unique: give the copies new ids (e.g. Detection(...) instead of copying _id)"
        )


def validate_table(table: LabelTable) -> pd.DataFrame:
    """Problems of the labels in a table, one row each (columns ``PROBLEM_COLUMNS``).

    Problems: ``nan_box`` (missing or non-finite coordinates), ``degenerate_box`` (zero or
    negative width/height), ``out_of_bounds`` (outside [0, 1] beyond ``BOUNDS_TOLERANCE``),
    ``mask_shape`` (mask not 2-D, or its size does not fit the box's pixel size).

    Example:
        >>> t = LabelTable.empty("gt", sample_ids=["s"])
        >>> len(validate_table(t))
        0
    """
    b = table.box
    rows: list[tuple] = []

    def add(mask: np.ndarray, problem: str) -> None:
        for i in np.flatnonzero(mask):
            rows.append((table.sample_ids[table.sample_index[i]], table.field, table.label_id[i],
                         problem, _fmt_box(b[i])))

    finite = np.isfinite(b).all(axis=1)
    add(~finite, "nan_box")
    with np.errstate(invalid="ignore"):
        degenerate = finite & ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
        oob = finite & ((b[:, :2] < -BOUNDS_TOLERANCE).any(axis=1) | (b[:, 2:] > 1 + BOUNDS_TOLERANCE).any(axis=1))
    add(degenerate, "degenerate_box")
    add(oob, "out_of_bounds")
    if table.masks is not None:
        for i, mask_problem in _mask_problems(table):
            rows.append((table.sample_ids[table.sample_index[i]], table.field, table.label_id[i],
                         "mask_shape", mask_problem))
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)


def _mask_problems(table: LabelTable):
    known = frame_sizes_known(table)
    for i, m in enumerate(table.masks):
        if m is None:
            continue
        if m.ndim != 2:
            yield i, f"mask has shape {m.shape}, expected 2-D"
            continue
        s = table.sample_index[i]
        if not known[s] or not np.isfinite(table.box[i]).all():
            continue
        box_w = (table.box[i, 2] - table.box[i, 0]) * table.width[s]
        box_h = (table.box[i, 3] - table.box[i, 1]) * table.height[s]
        mh, mw = m.shape
        if (abs(mh - box_h) > MASK_SIZE_TOLERANCE_PX + 0.05 * box_h
                or abs(mw - box_w) > MASK_SIZE_TOLERANCE_PX + 0.05 * box_w):
            yield i, f"mask {mh}x{mw} px for a box of {box_h:.1f}x{box_w:.1f} px"


def _fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in box) + "] (xyxy)"
