"""Where a sharded run lives between its shards and its merge: plan documents and GridFS parts.

A plan is one document of the ``iou_audit_shard_plans`` collection in FiftyOne's database (the
one ``database_uri`` points at, so every worker process sees it); each shard's part (its
sufficient statistics, pickled) is a GridFS file of the ``iou_audit_shard_parts`` bucket, so a
part may exceed MongoDB's 16 MB document limit. Parts are written and read only by this library
in the same database FiftyOne trusts with the dataset itself.
"""
from __future__ import annotations

import datetime as _dt
import io
import pickle
from typing import Any

PLANS = "iou_audit_shard_plans"
BUCKET = "iou_audit_shard_parts"


def _db():
    from fiftyone.core.odm.database import get_db_conn

    return get_db_conn()


def plans():
    """The pymongo collection of plan documents."""
    return _db()[PLANS]


def _fs():
    import gridfs

    return gridfs.GridFS(_db(), collection=BUCKET)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def put_part(plan_id, index: int, part: Any) -> tuple[Any, int]:
    """Store one shard's part; ``(file_id, size in bytes)``."""
    buf = io.BytesIO()
    pickle.dump(part, buf, protocol=pickle.HIGHEST_PROTOCOL)
    data = buf.getvalue()
    file_id = _fs().put(data, filename=f"{plan_id}/{index}", plan_id=plan_id, shard=int(index))
    return file_id, len(data)


def get_part(file_id) -> Any:
    """A shard's part back from GridFS, unpickled as its chunks stream in (the pickled bytes are
    never held whole next to the objects they become)."""
    return pickle.load(_fs().get(file_id))


def delete_part(file_id) -> None:
    if file_id is not None:
        _fs().delete(file_id)


def delete_parts_of(plan_id, keep=()) -> None:
    """Every part file written for a plan (including those of retried shards), except ``keep``."""
    fs = _fs()
    keep = set(keep)
    for f in _db()[f"{BUCKET}.files"].find({"plan_id": plan_id}, {"_id": 1}):
        if f["_id"] not in keep:
            fs.delete(f["_id"])
