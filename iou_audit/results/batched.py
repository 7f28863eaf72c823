"""Per-label values handed to ``save_audit`` batch by batch: the write's memory is O(batch), not O(labels).

An audit that writes a value on every label (agreement: 4.5 million labels at 100,000 samples)
would otherwise build ``{field: {attr: {label_id: value}}}`` for all of them, plus the
:class:`iou_audit.table.ReadLayout` of every label: about 250 bytes of Python objects per label
and attribute. :class:`LabelBatches` instead names the attributes up front (for the manifest and
the collision checks) and yields each batch of samples' values and layout when the write asks for
it; :func:`batch_writes` merges each batch's share of the run's tags and per-sample values into
the same bulk write, so every touched sample is still rewritten once.

Example:
    >>> from iou_audit.table import ReadLayout
    >>> def batches():
    ...     layout = ReadLayout()
    ...     layout.add("gt", ["a" * 24], ["s" * 24])
    ...     yield {"gt": {"iou": {"a" * 24: 0.5}}}, layout
    >>> lb = LabelBatches({"gt": ("iou",)}, batches)
    >>> [values for values, _ in lb.batches()]
    [{'gt': {'iou': {'aaaaaaaaaaaaaaaaaaaaaaaa': 0.5}}}]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from iou_audit.table.bulk import ReadLayout


@dataclass(frozen=True)
class LabelBatches:
    """``attributes``: ``{field: (attr, ...)}`` every batch may write; ``batches()``: an iterator of
    ``({field: {attr: {label_id: value}}}, ReadLayout of those labels and their samples)``, one per
    batch of samples, built lazily (nothing is built when the run is not saved)."""

    attributes: Mapping[str, tuple]
    batches: Callable[[], Iterable[tuple[dict, ReadLayout]]]


def plain_values(values) -> list:
    """Python values for the database: numpy scalars unboxed, NaN -> None (no value).

    >>> plain_values(np.array([0.5, np.nan])), plain_values(np.array([2, 3]))
    ([0.5, None], [2, 3])
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return np.where(np.isnan(arr), None, arr.astype(object)).tolist()
    return arr.tolist()


def table_batches(tables: list, fields: list[str], values: list[Mapping[str, Any]], batch_size: int,
                  convert: Callable[[Any], list] = plain_values) -> LabelBatches:
    """:class:`LabelBatches` of per-row values of label tables over the same samples.

    ``tables[k]`` has ``offsets`` (S+1), ``label_id`` (``str``, or ASCII bytes) and ``sample_ids``; ``values[k]`` maps an
    attribute to a (L_k,) array (or list) row-aligned with ``tables[k]``; several tables may share
    a field (one field holding every annotator). Each batch covers ``batch_size`` samples.

    Example:
        >>> from types import SimpleNamespace as T
        >>> t = T(offsets=np.array([0, 1, 2]), label_id=np.array(["a" * 24, "b" * 24], dtype=object),
        ...       sample_ids=np.array(["s" * 24, "t" * 24], dtype=object))
        >>> lb = table_batches([t], ["gt"], [{"iou": np.array([0.5, np.nan])}], batch_size=1)
        >>> [v["gt"]["iou"] for v, _ in lb.batches()]
        [{'aaaaaaaaaaaaaaaaaaaaaaaa': 0.5}, {'bbbbbbbbbbbbbbbbbbbbbbbb': None}]
    """
    attributes: dict[str, tuple] = {}
    for field, vals in zip(fields, values):
        attributes[field] = tuple(dict.fromkeys([*attributes.get(field, ()), *vals]))
    n_samples = len(tables[0].offsets) - 1 if tables else 0

    def batches() -> Iterator[tuple[dict, ReadLayout]]:
        for s0 in range(0, n_samples, max(int(batch_size), 1)):
            s1 = min(s0 + batch_size, n_samples)
            out: dict[str, dict[str, dict]] = {}
            layout = ReadLayout()
            for t, field, vals in zip(tables, fields, values):
                offsets = np.asarray(t.offsets)
                lo, hi = int(offsets[s0]), int(offsets[s1])
                ids = _ids(t.label_id[lo:hi])
                attrs = out.setdefault(field, {})
                for name, arr in vals.items():
                    attrs.setdefault(name, {}).update(zip(ids, convert(arr[lo:hi])))
                layout.add_table(field, _Slice(offsets[s0:s1 + 1] - lo, ids, np.asarray(t.sample_ids, dtype=object)[s0:s1]))
            yield out, layout

    return LabelBatches(attributes, batches)


def _ids(ids) -> list:
    """Label ids as ``str`` (compact tables keep ASCII ids as fixed-width bytes)."""
    ids = np.asarray(ids)
    return ids.astype(str).tolist() if ids.dtype.kind == "S" else ids.astype(object).tolist()


@dataclass
class _Slice:
    offsets: np.ndarray
    label_id: list
    sample_ids: np.ndarray


def batch_writes(samples, key: str, label_batches: LabelBatches, tags: Mapping[str, Mapping[str, list]],
                 sample_values: Mapping[str, Mapping[str, Any]]) -> Iterator:
    """One :class:`iou_audit.table.write.PreparedWrites` per batch (validated when it is built):
    the batch's attributes as ``<key>_<attr>``, the tags of its labels and the per-sample values of
    its samples; then one more for tags and sample values of labels and samples no batch held."""
    from iou_audit.table.write import prepare_writes

    tags = {f: dict(by_id) for f, by_id in tags.items()}  # taken out batch by batch
    sample_values = {name: dict(col) for name, col in sample_values.items()}
    for values, layout in label_batches.batches():
        labels: dict[str, dict] = {}
        for field, attrs in values.items():
            labels[field] = {"attributes": {f"{key}_{a}": v for a, v in attrs.items()}, "tags": {}}
        for field, by_id in tags.items():
            if not by_id:
                continue
            batch = {lid: by_id.pop(lid) for lid in layout.labels.get(field, ()) if lid in by_id}
            if batch:
                labels.setdefault(field, {"attributes": {}})["tags"] = batch
        batch_values = {}
        for name, col in sample_values.items():
            got = {sid: col.pop(sid) for sid in layout.samples if sid in col}
            if got:
                batch_values[name] = got
        yield prepare_writes(samples, labels, batch_values, layout)
    rest_tags = {f: {"attributes": {}, "tags": by_id} for f, by_id in tags.items() if by_id}
    rest_values = {name: col for name, col in sample_values.items() if col}
    if rest_tags or rest_values:
        yield prepare_writes(samples, rest_tags, rest_values)
