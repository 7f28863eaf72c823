"""Where the relabel actions keep their records: one FiftyOne execution store per dataset
(``ExecutionStore``, the same store an operator reaches as ``ctx.store(STORE_NAME)``), one key per
record, so records are written one at a time (no read-modify-write of a shared document such as
``dataset.info``) and a state change can be a compare-and-set."""
from __future__ import annotations

import datetime
import getpass
import hashlib
import json

from iou_audit import fiftyone_private as fop

STORE_NAME = "iou_audit_relabel"


def relabel_store(dataset):
    """The dataset's relabel store (created on first use)."""
    from bson import ObjectId
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, ObjectId(fop.dataset_id(fop.root_dataset(dataset))))


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def db_now() -> datetime.datetime:
    """UTC now as FiftyOne stores ``last_modified_at``: naive, millisecond precision."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def default_user(user: str | None = None) -> str:
    """Who acted: the given name, else the OS user running the process (FiftyOne OSS has no
    user accounts)."""
    if user:
        return str(user)
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


def content_fingerprint(label: dict) -> str:
    """sha1 of a label's class and geometry (``label``, ``bounding_box``, ``points``, ``closed``,
    ``filled``, mask bytes) from its database dict: what an annotator's fix changes.

    Example:
        >>> a = content_fingerprint({"label": "cat", "bounding_box": [0, 0, .5, .5], "tags": []})
        >>> a == content_fingerprint({"label": "cat", "bounding_box": [0, 0, .5, .5], "tags": ["x"]})
        True
        >>> a == content_fingerprint({"label": "dog", "bounding_box": [0, 0, .5, .5]})
        False
    """
    parts = {k: label.get(k) for k in ("label", "bounding_box", "points", "closed", "filled")}
    mask = label.get("mask")
    if mask is not None:
        parts["mask"] = hashlib.sha1(bytes(mask)).hexdigest()
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
