"""Labels as the database holds them: read a label's exact BSON document and its position in its
sample's list, in one aggregation, so a fix can be undone byte for byte."""
from __future__ import annotations

from dataclasses import dataclass

from iou_audit import fiftyone_private as fop
from iou_audit.table import check_label_field


@dataclass(frozen=True)
class RawLabel:
    """One label's database document (``raw``: its BSON bytes) at ``index`` in ``db_list`` of
    sample ``sample_id``."""

    sample_id: str
    label_id: str
    index: int
    raw: bytes
    db_list: str

    def as_dict(self) -> dict:
        import bson

        return bson.decode(self.raw)


def db_list_path(dataset, field: str) -> str:
    """The database path of ``field``'s label list, e.g. ``"gt.detections"``."""
    _, list_path = check_label_field(dataset, field)
    return fop.handle_db_field(dataset, list_path)


def read_raw_labels(dataset, field: str, label_ids) -> dict[str, RawLabel]:
    """``{label_id: RawLabel}`` of the labels of ``field`` with these ids (absent ids are absent)."""
    from bson import ObjectId
    from bson.raw_bson import RawBSONDocument

    dataset = fop.root_dataset(dataset)
    db_list = db_list_path(dataset, field)
    oids = []
    for i in label_ids:
        if not isinstance(i, str) or not ObjectId.is_valid(i):
            raise ValueError(f"label id {i!r} is not a FiftyOne label id (24 hex digits)")
        oids.append(ObjectId(i))
    coll = fop.raw_sample_collection(dataset, RawBSONDocument)
    wanted = {str(o) for o in oids}
    out = {}
    for doc in coll.find({f"{db_list}._id": {"$in": oids}}, {db_list: 1}):
        labels = doc
        for part in db_list.split("."):
            labels = labels.get(part) if labels is not None else None
        for index, label in enumerate(labels or []):
            lid = str(label["_id"])
            if lid in wanted:
                out[lid] = RawLabel(str(doc["_id"]), lid, index, bytes(label.raw), db_list)
    return out


def read_raw_label(dataset, field: str, label_id: str) -> RawLabel:
    """The label ``label_id`` of ``field``; a clear error when it is not there."""
    found = read_raw_labels(dataset, field, [label_id])
    if label_id not in found:
        raise ValueError(f"label {label_id!r} not found in field {field!r} of {fop.root_dataset(dataset).name!r}")
    return found[label_id]
