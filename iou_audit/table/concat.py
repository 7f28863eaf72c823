"""Join LabelTables of consecutive samples into one (what one read of all their samples gives), and
keep label ids compactly while a table is held whole."""
from __future__ import annotations

import dataclasses

import numpy as np


def concat_tables(tables: list):
    """Consecutive samples' LabelTables (same field) as one table, as one read of them all gives
    (the batches of one read, or the shards of a sharded run).

    Example:
        >>> from iou_audit.table import LabelTable
        >>> t = concat_tables([LabelTable.empty("gt", sample_ids=["a"]), LabelTable.empty("gt", sample_ids=["b"])])
        >>> t.sample_ids.tolist(), t.offsets.tolist()
        (['a', 'b'], [0, 0, 0])
    """
    first = tables[0]
    n_samples = np.cumsum([0] + [t.num_samples for t in tables])
    n_rows = np.cumsum([0] + [len(t) for t in tables])

    def cat(name):
        return np.concatenate([getattr(t, name) for t in tables])

    def cat_list(name):
        values = [getattr(t, name) for t in tables]
        return None if any(v is None for v in values) else [x for v in values for x in v]

    keys = set(first.attributes)
    for i, t in enumerate(tables):
        if set(t.attributes) != keys:
            raise ValueError(f"tables of field {first.field!r} differ in attributes: {sorted(keys)} vs "
                             f"{sorted(t.attributes)} (part {i})")
    return dataclasses.replace(
        first,
        sample_ids=cat("sample_ids"), filepaths=cat("filepaths"), width=cat("width"), height=cat("height"),
        offsets=np.concatenate([[0]] + [t.offsets[1:] + n_rows[i] for i, t in enumerate(tables)]).astype(np.int64),
        sample_index=np.concatenate([t.sample_index + n_samples[i] for i, t in enumerate(tables)]).astype(np.int64),
        label_id=concat_ids([t.label_id for t in tables]), label=cat("label"), box=np.concatenate([t.box.reshape(-1, 4) for t in tables]),
        confidence=cat("confidence"), iscrowd=cat("iscrowd"), masks=cat_list("masks"), polygons=cat_list("polygons"),
        attributes={k: np.concatenate([t.attributes[k] for t in tables]) for k in first.attributes},
        tags=cat_list("tags"))


def compact_ids(ids) -> np.ndarray:
    """Label ids as fixed-width bytes when they are ASCII (24 bytes for an ObjectId instead of an
    81-byte ``str`` and its pointer), else as they are (objects); :func:`str_ids` gives them back.

    Example:
        >>> compact_ids(np.array(["a" * 24], dtype=object)).dtype, compact_ids(np.array(["é"], dtype=object)).dtype
        (dtype('S24'), dtype('O'))
    """
    ids = np.asarray(ids, dtype=object)
    try:
        return ids.astype("S") if len(ids) else ids
    except (UnicodeEncodeError, TypeError, ValueError):  # not ASCII text: kept as objects
        return ids


def str_ids(ids) -> np.ndarray:
    """Label ids (as :func:`compact_ids` keeps them) as an object array of ``str``.

    Example:
        >>> str_ids(np.array([b"ab", b""])).tolist(), str_ids(np.array(["é"], dtype=object)).tolist()
        (['ab', ''], ['é'])
    """
    ids = np.asarray(ids)
    return ids.astype(str).astype(object) if ids.dtype.kind == "S" else ids.astype(object)


def concat_ids(ids: list) -> np.ndarray:
    """Joined label-id columns; bytes of different widths stay bytes (the widest), bytes mixed with
    objects become objects of ``str``.

    Example:
        >>> concat_ids([np.array([b"a"]), np.array(["é"], dtype=object)]).tolist()
        ['a', 'é']
    """
    if all(np.asarray(x).dtype.kind == "S" for x in ids):
        return np.concatenate(ids)
    return np.concatenate([str_ids(x) for x in ids])
