"""Store audits in the dataset: label attributes, tags, per-sample counts, saved views, a custom run.

Under a user-chosen ``audit_key`` an audit writes
- label attributes ``<key>_<attr>`` and label tags ``<key>:<kind>`` (bulk, by label id),
- per-sample counts ``<key>_<kind>`` and ``<key>_findings`` on samples that have findings,
  plus any extra sample fields as ``<key>_<name>``,
- one saved view per kind, ``<key>-<kind>``,
- a FiftyOne custom run (``register_run``) whose results hold the config, the findings and the
  manifest of everything written, so :func:`delete_audit` removes exactly that.
Original labels are never modified: only new attributes and our own tags are touched.

Interrupted and concurrent runs: the run is registered with ``status="running"`` and the
manifest of what it will write *before* anything is written, and marked ``status="complete"``
only after every write and saved view succeeded. A run killed half-way is therefore never listed
by :func:`list_audits` (``include_incomplete=True`` lists it), :func:`load_audit` refuses it, and
re-running the same key (or :func:`delete_audit`) removes exactly what it may have written.
Writing under one key is serialised across processes by a lock document in the database
(collection ``iou_audit_locks``, one per dataset and key): a second process writing the same key
at the same time is refused with a ValueError; a lock left by a killed process (same host, pid
gone, or older than ``LOCK_STALE_SECONDS``) is taken over.
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import socket
import time
import zlib
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Mapping

import pandas as pd

from iou_audit import fiftyone_private as fop
from iou_audit.results.batched import LabelBatches, batch_writes
from iou_audit.results.findings import FINDING_COLUMNS, make_findings
from iou_audit.results.result import AuditResult, jsonable, jsonify
from iou_audit.table.bulk import ReadLayout, refresh_held, strip_labels
from iou_audit.table.raw_labels import RawLabelField, write_label_fields
from iou_audit.table.read import ALL_LABEL_TYPES, _gc_paused, check_label_field
from iou_audit.table.write import _check_writable, prepare_writes

logger = logging.getLogger(__name__)

#: Marker in the run config identifying runs written by iou-audit.
RUN_MARKER = "iou_audit"
#: ``status`` of a run in its config: registered before the writes, complete after the last one.
RUNNING, COMPLETE = "running", "complete"
LOCK_COLLECTION = "iou_audit_locks"
#: A write lock older than this is considered left behind by a dead process (another host).
LOCK_STALE_SECONDS = 6 * 3600
#: zlib level of the stored findings (1: fastest; ids and repeated field names compress ~3-5 x anyway).
FINDINGS_ZLIB_LEVEL = 1


@_gc_paused()  # plans and writes a few small containers per finding: GC scans would dominate
def save_audit(
    samples,
    result: AuditResult,
    label_attributes: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    sample_fields: Mapping[str, Mapping[str, Any]] | None = None,
    layout: ReadLayout | None = None,
    new_fields: Mapping[str, Mapping[str, Any]] | None = None,
    views: Mapping[str, tuple] | None = None,
    label_batches: LabelBatches | None = None,
) -> dict:
    """Write an audit's results into the dataset under ``result.audit_key``; returns the manifest.

    Args:
        samples: the dataset or view the audit ran on.
        result: the :class:`AuditResult`.
        label_attributes: ``{field: {attr: {label_id: value}}}``, stored as ``<key>_<attr>``.
        sample_fields: ``{name: {sample_id: value}}``, stored as ``<key>_<name>``.
        layout: where the audit read its labels (``iou_audit.table.bulk.ReadLayout``), so the
            write does not look them up in the view again.
        new_fields: ``{field: {sample_id: value}}``: sample fields the user named (e.g. a consensus
            label field), written as given, recorded in the manifest (``delete_audit`` removes them);
            a field given as an ``iou_audit.table.raw_labels.RawLabelField`` (stored label
            documents) is written by ``write_label_fields``: one bulk for all such fields.
        views: ``{kind: (view, description)}`` replacing the default saved view of those kinds.
        label_batches: more label attributes, produced batch by batch
            (:class:`iou_audit.results.batched.LabelBatches`): each batch is written with its labels'
            tags and its samples' values, so the write holds one batch of values at a time. The
            first batch is validated before anything is written; each later one before its write.

    Re-running with the same key first deletes the previous run's results. Everything is checked
    (fields, collisions with fields or views this run does not own) before anything is deleted or
    written, so a refused save leaves the dataset as it was.

    Example:
        >>> save_audit(ds, result, {"gt": {"iou": {lid: 0.93}}})            # doctest: +SKIP
        {'label_attributes': {'gt': ['dup_iou']}, 'tags': {'gt': ['dup:duplicate']}, ...}
    """
    dataset = _check_writable(samples)
    key = result.audit_key
    check_audit_key(key)
    with _write_lock(dataset, key):
        # another process may have written this key (or other runs) since this one loaded the dataset
        fop.reload_dataset_doc(dataset)
        return _save_locked(samples, dataset, key, result, label_attributes, sample_fields, layout, new_fields,
                            views, label_batches)


def _save_locked(samples, dataset, key, result, label_attributes, sample_fields, layout, new_fields, views,
                 label_batches=None) -> dict:
    findings = make_findings(result.findings)
    plan = _plan(samples, key, findings, label_attributes or {}, sample_fields or {})  # validates fields
    if label_batches is not None:
        if label_attributes or layout is not None:
            raise ValueError("pass label values either as label_attributes (with layout) or as label_batches")
        for field, attrs in label_batches.attributes.items():
            check_label_field(samples, field, ALL_LABEL_TYPES)
            written = plan["manifest"]["label_attributes"].setdefault(field, [])
            written[:] = sorted(set(written) | {f"{key}_{a}" for a in attrs})
    new_fields = {name: values if isinstance(values, RawLabelField) else dict(values)
                  for name, values in (new_fields or {}).items()}
    for kind, (view, description) in (views or {}).items():
        plan["views"][f"{key}-{kind}"] = (view, description)
    plan["manifest"]["saved_views"] = sorted(plan["views"])
    plan["manifest"]["new_fields"] = sorted(new_fields)
    previous = {}
    if key in dataset.list_runs():
        if not is_audit(dataset, key):
            raise ValueError(f"run key {key!r} is used by another (non iou-audit) run of {dataset.name!r}")
        previous = getattr(dataset.load_run_results(key, cache=False, load_view=False), "written", None) or {}
    _check_new_fields(dataset, new_fields, previous.get("new_fields", []))
    if key in dataset.list_runs():
        _delete_run(dataset, key)  # not delete_audit: a merge replacing the run keeps its own kept parts

    _check_collisions(dataset, plan["manifest"])
    if label_batches is None:
        # every field's attributes and tags and the per-sample counts, validated before anything is
        # written; then one schema merge and one bulk write
        writes = iter([prepare_writes(
            samples,
            labels={f: {"attributes": plan["attributes"].get(f, {}), "tags": plan["tags"].get(f, {})}
                    for f in sorted(set(plan["attributes"]) | set(plan["tags"]))},
            sample_values=plan["sample_values"],
            layout=layout,
        )])
    else:
        writes = batch_writes(samples, key, label_batches, plan["tags"], plan["sample_values"], prepare_writes)
    first = next(writes, None)  # validated before anything is written

    # Register first, as "running" with the full manifest, so a failure or kill half-way can still
    # be cleaned up and is never taken for a complete run.
    config = samples.init_run(
        method=f"iou_audit.{result.audit}", **{RUN_MARKER: _version()},
        audit=result.audit, audit_key=key, params=jsonify(result.config),
        counts={k: int(n) for k, n in findings["kind"].value_counts().sort_index().items()},
        metrics=jsonify(result.metrics), status=RUNNING, written=plan["manifest"],
    )
    samples.register_run(key, config)
    _save_results(samples, key, result, findings, plan["manifest"])

    if first is not None:
        first.run()
    for prepared in writes:  # the next batch is built and validated only once this one is written
        prepared.run()
    raw = {name: values for name, values in new_fields.items() if isinstance(values, RawLabelField)}
    if raw:  # label documents built by the audit: one bulk for all of them
        write_label_fields(samples, raw)
    for name, values in new_fields.items():
        if name not in raw:
            samples.set_values(name, values, key_field="id")
    for name, (view, description) in plan["views"].items():
        dataset.save_view(name, view, description=description)
    # when the last write landed (naive UTC, ISO): a sample modified later changed after this run
    # saw it (the review queue tells stale findings from fresh ones by it)
    config.completed_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat()
    config.status = COMPLETE  # last: only now does the run count as written
    dataset.update_run_config(key, config)
    logger.info("audit %r (%s): %d findings written to %r", key, result.audit, len(findings), dataset.name)
    return plan["manifest"]


def list_audits(dataset, include_incomplete: bool = False) -> list[str]:
    """Keys of the complete iou-audit runs stored on the dataset (``include_incomplete``: also
    runs that were interrupted while writing; re-run or :func:`delete_audit` them)."""
    return [k for k in dataset.list_runs() if is_audit(dataset, k) and (include_incomplete or is_complete(dataset, k))]


def is_complete(dataset, key: str) -> bool:
    """Whether the audit ``key`` finished writing (runs saved before ``status`` existed count as
    complete)."""
    try:
        return getattr(dataset.get_run_info(key).config, "status", COMPLETE) == COMPLETE
    except Exception:
        return False


def audit_info(dataset, key: str) -> dict:
    """``{audit, audit_key, timestamp, completed_at, config, counts, metrics}`` of a stored audit,
    without loading its findings (counts = findings per kind; ``completed_at``: naive UTC datetime
    of its last write, None for runs stored before it was recorded)."""
    info = _info(dataset, key, complete=True)
    return {
        "audit": info.config.audit,
        "audit_key": key,
        "timestamp": info.timestamp,
        "completed_at": _parse_time(getattr(info.config, "completed_at", None)),
        "config": info.config.params,
        "counts": dict(getattr(info.config, "counts", {}) or {}),
        "metrics": dict(getattr(info.config, "metrics", {}) or {}),
    }


def _parse_time(text):
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def load_audit(dataset, key: str) -> AuditResult:
    """Reload a stored audit as an :class:`AuditResult`."""
    info = _info(dataset, key, complete=True)
    res = dataset.load_run_results(key, cache=False, load_view=False)
    return AuditResult(
        audit=info.config.audit,
        audit_key=key,
        config=info.config.params or {},
        findings=make_findings(pd.DataFrame(_stored_findings(res), columns=FINDING_COLUMNS)),
        tables={k: pd.DataFrame(**v) for k, v in _stored_tables(res).items()},
        metrics=getattr(res, "metrics", None) or {},
    )


def delete_audit(dataset, key: str) -> dict:
    """Remove exactly what the audit wrote (attributes, tags, sample fields, saved views, run) and
    the parts kept for its incremental re-runs (``keep_parts``, ``iou_audit.shards``)."""
    manifest = _delete_run(dataset, key)
    from iou_audit.shards.run import drop_merged_plans

    drop_merged_plans(dataset, key)
    return manifest


def _delete_run(dataset, key: str) -> dict:
    dataset = fop.root_dataset(dataset)
    info = _info(dataset, key)
    try:
        res = dataset.load_run_results(key, cache=False, load_view=False)
    except Exception:  # a run interrupted before its results were stored: the config has the manifest
        res = None
    manifest = getattr(res, "written", None) or getattr(info.config, "written", None) or {}
    attrs_by_field, tags_by_field = manifest.get("label_attributes", {}), manifest.get("tags", {})
    schema_paths = []
    for field in sorted(set(attrs_by_field) | set(tags_by_field)):
        if dataset.get_field(field) is None:
            continue
        _, list_path = check_label_field(dataset, field, ALL_LABEL_TYPES)
        attrs = attrs_by_field.get(field, [])
        # one server-side update per field, matching only the samples that hold our attributes/tags
        strip_labels(dataset, field, attributes=attrs, tags=tags_by_field.get(field, []))
        schema_paths += [f"{list_path}.{a}" for a in attrs if dataset.get_field(f"{list_path}.{a}") is not None]
    if schema_paths:
        # schema only: the data is already gone (delete_sample_field would rewrite every sample)
        dataset.remove_dynamic_sample_fields(schema_paths)
    names = [n for n in manifest.get("sample_fields", []) + manifest.get("new_fields", [])
             if dataset.get_field(n) is not None]
    if names:
        # dataset.delete_sample_fields would reload every in-memory sample one by one (~16 ms each);
        # the same deletion, then only the held samples' last_modified_at read back in one query
        fop.delete_sample_fields(dataset, names)
        refresh_held(dataset, None, [])
    for name in manifest.get("saved_views", []):
        if dataset.has_saved_view(name):
            dataset.delete_saved_view(name)
    dataset.delete_run(key)
    return manifest


def is_audit(dataset, key: str) -> bool:
    try:
        return hasattr(dataset.get_run_info(key).config, RUN_MARKER)
    except Exception:  # an unreadable foreign run is not ours
        return False


def _info(dataset, key: str, complete: bool = False):
    if not isinstance(key, str) or key not in dataset.list_runs() or not is_audit(dataset, key):
        raise ValueError(f"no iou-audit run with key {key!r} on {dataset.name!r}; audits: {list_audits(dataset)}")
    if complete and not is_complete(dataset, key):
        raise ValueError(f"audit {key!r} on {dataset.name!r} was interrupted while writing its results; "
                         f"re-run it with the same audit_key, or delete_audit(dataset, {key!r})")
    return dataset.get_run_info(key)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True
    return True


@contextmanager
def _write_lock(dataset, key: str):
    """Hold the database lock of ``(dataset, key)`` while writing; ValueError (the key is in use,
    as FiftyOne says for an existing run key) when another live process holds it."""
    import fiftyone.core.odm as foo
    from pymongo.errors import DuplicateKeyError

    coll = foo.get_db_conn()[LOCK_COLLECTION]
    lock_id = f"{fop.dataset_id(dataset)}:{key}"
    me = {"_id": lock_id, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
          "dataset": dataset.name, "key": key}
    for _ in range(3):
        try:
            coll.insert_one(me)
            break
        except DuplicateKeyError:
            other = coll.find_one({"_id": lock_id})
            if other is None:
                continue  # released meanwhile
            if other.get("plan_id") is not None:  # a sharded run's shards hold the key until its merge
                from iou_audit.shards.writes import lock_holder_text, plan_lock_dead

                dead, holder = plan_lock_dead(other), lock_holder_text(other)
            else:
                dead = (other.get("host") == me["host"] and not _pid_alive(other.get("pid", -1))) or (
                    time.time() - float(other.get("since", 0)) > LOCK_STALE_SECONDS)
                holder = f"another process (pid {other.get('pid')} on {other.get('host')})"
            if not dead:
                raise ValueError(
                    f"audit {key!r} of dataset {dataset.name!r} is being written by {holder}; wait for it to finish "
                    "or use another audit_key"
                ) from None
            coll.delete_one({"_id": lock_id, "pid": other.get("pid"), "since": other.get("since")})
    else:
        raise RuntimeError(f"could not take the write lock of audit {key!r} of dataset {dataset.name!r}")
    try:
        yield
    finally:
        coll.delete_one({"_id": lock_id, "pid": me["pid"], "since": me["since"]})


def check_audit_key(key: str) -> None:
    """Refuse a key that is not a valid FiftyOne run key (a Python identifier)."""
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"audit_key must be a valid Python identifier (FiftyOne run key), got {key!r}")


def check_new_field(dataset, name: str, audit_key: str) -> None:
    """Refuse ``name`` as a new field of an audit under ``audit_key`` unless it is free or that
    audit's previous run wrote it (checked before an audit computes, and again when it saves)."""
    owned = []
    if audit_key in dataset.list_runs() and is_audit(dataset, audit_key):
        res = dataset.load_run_results(audit_key, cache=False, load_view=False)
        owned = (getattr(res, "written", None) or {}).get("new_fields", [])
    _check_new_fields(dataset, {name: None}, owned)


def _check_new_fields(dataset, new_fields: Mapping, owned: list) -> None:
    """A new field must not exist, unless the previous run under this key wrote it."""
    for name in new_fields:
        if not isinstance(name, str) or not name or name.startswith("_") or any(c in name for c in ".$"):
            raise ValueError(f"new field name {name!r} is not a valid FiftyOne field name")
        if dataset.get_field(name) is not None and name not in owned:
            raise ValueError(f"field {name!r} already exists and was not written by this audit; choose a new name")


def _plan(samples, key, findings, label_attributes, sample_fields) -> dict:
    """Everything to write, computed and validated before anything is written."""
    attributes: dict[str, dict[str, dict]] = {}
    for field, attrs in label_attributes.items():
        check_label_field(samples, field, ALL_LABEL_TYPES)
        attributes[field] = {f"{key}_{attr}": dict(values) for attr, values in attrs.items()}

    tags: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    tag_of: dict[str, str] = {}  # one str per kind, shared by every label's list (memory)
    for field_col, id_col in (("field", "label_id"), ("other_field", "other_label_id")):
        rows = findings[(findings[field_col] != "") & (findings[id_col] != "")]
        for field, lid, kind in zip(rows[field_col], rows[id_col], rows["kind"]):
            tag = tag_of.get(kind) or tag_of.setdefault(kind, f"{key}:{kind}")
            if tag not in tags[field][lid]:
                tags[field][lid].append(tag)
    for field in tags:
        check_label_field(samples, field, ALL_LABEL_TYPES)

    sample_values: dict[str, dict[str, Any]] = {}
    with_sample = findings[findings["sample_id"] != ""]
    for kind, group in with_sample.groupby("kind", sort=True):
        sample_values[f"{key}_{kind}"] = {s: int(n) for s, n in group["sample_id"].value_counts().items()}
    if len(with_sample):
        sample_values[f"{key}_findings"] = {s: int(n) for s, n in with_sample["sample_id"].value_counts().items()}
    for name, values in sample_fields.items():
        sample_values[f"{key}_{name}"] = dict(values)

    views = {}
    for kind, group in findings.groupby("kind", sort=True):
        name = f"{key}-{kind}"
        labelled = group[(group["field"] != "") & (group["label_id"] != "")]
        if len(labelled) == len(group):
            fields = sorted(set(labelled["field"]) | set(group.loc[group["other_field"] != "", "other_field"]))
            view = samples.match_labels(tags=f"{key}:{kind}", fields=fields)
        else:
            ids = sorted((set(group["sample_id"]) | set(group["other_sample_id"])) - {""})
            view = samples.select(ids)
        views[name] = (view, f"iou-audit {key}: {kind} ({len(group)} findings)")

    manifest = {
        "label_attributes": {f: sorted(a) for f, a in attributes.items()},
        "tags": {f: sorted({t for ts in by_id.values() for t in ts}) for f, by_id in tags.items()},
        "sample_fields": sorted(sample_values),
        "saved_views": sorted(views),
    }
    return {
        "attributes": attributes,
        "tags": {f: dict(v) for f, v in tags.items()},
        "sample_values": sample_values,
        "views": views,
        "manifest": manifest,
    }


def _check_collisions(dataset, manifest: dict) -> None:
    """Refuse to overwrite fields or views that this audit did not create."""
    for field, attrs in manifest["label_attributes"].items():
        _, list_path = check_label_field(dataset, field, ALL_LABEL_TYPES)
        for attr in attrs:
            if dataset.get_field(f"{list_path}.{attr}") is not None:
                raise ValueError(f"label attribute {list_path}.{attr} already exists and was not written by this audit")
    for name in manifest["sample_fields"]:
        if dataset.get_field(name) is not None:
            raise ValueError(f"sample field {name!r} already exists and was not written by this audit")
    for name in manifest["saved_views"]:
        if dataset.has_saved_view(name):
            raise ValueError(f"saved view {name!r} already exists and was not written by this audit")


def _save_results(samples, key, result, findings, manifest) -> None:
    # Findings as one compressed JSON text of columns: FiftyOne serializes run results value by
    # value in Python (about 25 us per value, 0.4 s for 15,000 findings); the C json encoder takes
    # ~1/20 of it. Compressed, because FiftyOne encodes the results again (``json_util.dumps``,
    # every quote escaped, then ``.encode()``): a plain JSON string of 0.67 million findings (100,000
    # samples) was held three times over, about +0.5 GB at the write.
    results = samples.init_run_results(
        key,
        findings_zjson=findings_zjson(findings),
        tables_json=json.dumps({k: v.to_dict(orient="split") for k, v in result.tables.items()}, default=jsonable),
        metrics=jsonify(result.metrics),
        written=manifest,
    )
    samples.save_run_results(key, results, cache=False)


def findings_json(findings) -> str:
    """``json.dumps({column: values})`` of the findings, built one column at a time: the same text,
    with one column's Python values alive at a time instead of all of them (0.67 million
    findings x 12 columns at 100,000 samples).

    >>> import pandas as pd
    >>> f = pd.DataFrame({c: ["x"] for c in FINDING_COLUMNS})
    >>> findings_json(f) == json.dumps({c: f[c].tolist() for c in FINDING_COLUMNS})
    True
    """
    return "{" + ", ".join(_findings_json_chunks(findings)) + "}"


def _findings_json_chunks(findings):
    for c in FINDING_COLUMNS:
        yield f"{json.dumps(c)}: {json.dumps(findings[c].tolist())}"


def findings_zjson(findings) -> str:
    """:func:`findings_json`, zlib-compressed and base64-encoded (ASCII: FiftyOne's own JSON
    encoding of the run results copies it without escapes), compressed one column at a time so
    the uncompressed text is never whole. ``json.loads(zlib.decompress(base64.b64decode(...)))``
    gives the columns back (:func:`_stored_findings`).

    >>> import pandas as pd
    >>> f = pd.DataFrame({c: ["x"] for c in FINDING_COLUMNS})
    >>> zlib.decompress(base64.b64decode(findings_zjson(f))).decode() == findings_json(f)
    True
    """
    z = zlib.compressobj(FINDINGS_ZLIB_LEVEL)
    parts = [z.compress(b"{")]
    for i, chunk in enumerate(_findings_json_chunks(findings)):
        parts.append(z.compress(((", " if i else "") + chunk).encode()))
    parts.append(z.compress(b"}"))
    parts.append(z.flush())
    packed = b"".join(parts)
    del parts
    return base64.b64encode(packed).decode("ascii")


def _stored_tables(res) -> dict:
    """The stored tables (``tables_json``; runs saved before it hold ``tables``), each as the
    keyword arguments of ``pd.DataFrame`` (``to_dict(orient="split")``)."""
    text = getattr(res, "tables_json", None)
    if text:
        return json.loads(text)
    return getattr(res, "tables", None) or {}


def _stored_findings(res) -> dict:
    """The stored findings columns (``findings_zjson``; runs saved before it hold ``findings_json``,
    older ones ``findings``)."""
    packed = getattr(res, "findings_zjson", None)
    if packed:
        return json.loads(zlib.decompress(base64.b64decode(packed)))
    text = getattr(res, "findings_json", None)
    if text:
        return json.loads(text)
    return getattr(res, "findings", None) or {}


def _version() -> str:
    import iou_audit

    return getattr(iou_audit, "__version__", "0")
