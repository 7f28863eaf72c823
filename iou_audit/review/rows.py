"""Queue row ids: one stable string per thing a reviewer decides on.

- a label: its label id;
- an object a label field lacks (agreement ``missing_in_annotator``): ``missing:<field>:<id>``
  where ``<id>`` is the label of another annotator that drew the object (the reference label);
- one sample (an unreadable image, a sample carrying two split tags): its sample id;
- two samples (a leak between splits): both sample ids, sorted, joined by ``+`` (the same row
  whichever side the audit reports first).
"""
from __future__ import annotations

import re

MISSING_PREFIX = "missing:"
PAIR_SEP = "+"
ROW_TYPES = ("label", "missing", "sample", "pair")
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def is_object_id(value: str) -> bool:
    """Whether ``value`` is a 24-digit lower-case hex ObjectId string (label and sample ids).

    Example:
        >>> is_object_id("6b07" * 6), is_object_id("sample-1")
        (True, False)
    """
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def missing_row_id(field: str, reference_label_id: str) -> str:
    """Example:
        >>> missing_row_id("ann_b", "a" * 24)
        'missing:ann_b:aaaaaaaaaaaaaaaaaaaaaaaa'
    """
    return f"{MISSING_PREFIX}{field}:{reference_label_id}"


def sample_row_id(sample_id: str, other_sample_id: str | None = None) -> str:
    """Example:
        >>> sample_row_id("b" * 24, "a" * 24) == sample_row_id("a" * 24, "b" * 24) == "a" * 24 + "+" + "b" * 24
        True
        >>> sample_row_id("a" * 24, "a" * 24) == "a" * 24
        True
    """
    if not other_sample_id or other_sample_id == sample_id:
        return sample_id
    return PAIR_SEP.join(sorted((sample_id, other_sample_id)))


def parse_row_id(row_id: str) -> tuple:
    """``("missing", field, reference_label_id)``, ``("pair", id_a, id_b)`` or ``("id", id)`` (a
    label or sample id: which one, only the database can tell); ValueError for anything else.

    Example:
        >>> parse_row_id("missing:ann_b:" + "a" * 24)[:2], parse_row_id("a" * 24 + "+" + "b" * 24)[0]
        (('missing', 'ann_b'), 'pair')
    """
    if not isinstance(row_id, str):
        raise ValueError(f"a queue row id must be a string, got {row_id!r}")
    if row_id.startswith(MISSING_PREFIX):
        field, _, lid = row_id[len(MISSING_PREFIX):].rpartition(":")
        if field and is_object_id(lid):
            return ("missing", field, lid)
    elif PAIR_SEP in row_id:
        a, _, b = row_id.partition(PAIR_SEP)
        if is_object_id(a) and is_object_id(b):
            return ("pair", a, b)
    elif is_object_id(row_id):
        return ("id", row_id)
    raise ValueError(f"{row_id!r} is not a queue row id (a label or sample id, 'missing:<field>:<label id>', "
                     f"or '<sample id>+<sample id>')")
